"""Weights for a built graph: seeded initialisation, or a safetensors file with tfcompiler's
canonical names (checked all at once: missing, unexpected and misshapen names in one error).

Canonical names follow the spec path (``encoder.layers.3.attention.query.weight``); matrices are
stored (in_features, out_features) so they lower to MatMul without a transpose.
"""
from __future__ import annotations

import os
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..errors import WeightsError
from ..ir.graph import Graph
from ..spec.model import Init


def declared_params(graph: Graph) -> dict[str, tuple[tuple[int, ...], str]]:
    """name -> (shape, init) for every param of the graph, in build order."""
    return {op.attrs["name"]: (tuple(op.attrs["shape"]), op.attrs["init"])
            for op in (graph.op(n) for n in sorted(graph.nodes())) if op.type == "param"}


def init_weight(name: str, shape, init: str, scheme: Init, seed: int) -> np.ndarray:
    """One weight, seeded by (seed, name) so it does not depend on which other weights exist."""
    if init == "zeros":
        return np.zeros(shape, np.float32)
    if init == "ones":
        return np.ones(shape, np.float32)
    # Philox draws normals about a third faster than the default PCG64 here; init dominates compile time
    rng = np.random.Generator(np.random.Philox(np.random.SeedSequence([seed, zlib.crc32(name.encode())])))
    if init == "matrix" and scheme.scheme == "xavier_uniform":
        limit = np.sqrt(6.0 / (shape[0] + shape[-1]))
        return rng.uniform(-limit, limit, size=shape).astype(np.float32)
    weight = rng.standard_normal(size=shape, dtype=np.float32)
    weight *= np.float32(scheme.std)
    return weight


def init_weights(graph: Graph, scheme: Init, seed: int = 0) -> dict[str, np.ndarray]:
    """Every declared weight; drawn on all cores (NumPy's generators release the GIL), yet each
    weight depends only on (seed, name), so the result is the same on any machine."""
    declared = declared_params(graph)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        arrays = pool.map(lambda item: init_weight(item[0], *item[1], scheme, seed), declared.items())
        return dict(zip(declared, arrays))


def check_weights(graph: Graph, weights: dict[str, np.ndarray], source: str) -> None:
    """Raise one WeightsError that lists every missing, unexpected and misshapen name."""
    declared = declared_params(graph)
    missing = [n for n in declared if n not in weights]
    unexpected = sorted(n for n in weights if n not in declared)
    misshapen = [f"{n}: expected {list(declared[n][0])}, got {list(weights[n].shape)}"
                 for n in declared if n in weights and tuple(weights[n].shape) != declared[n][0]]
    wrong_dtype = [f"{n}: expected float32, got {weights[n].dtype}"
                   for n in declared if n in weights and weights[n].dtype != np.float32]
    lines = []
    for title, names in (("missing", missing), ("unexpected", unexpected), ("wrong shape", misshapen),
                         ("wrong dtype", wrong_dtype)):
        if names:
            lines.append(f"  {title} ({len(names)}):")
            lines.extend(f"    {n}" for n in names)
    if lines:
        raise WeightsError(f"{source}: weights do not fit the spec\n" + "\n".join(lines) +
                           "\n  (`tfc init-weights SPEC -o W.safetensors` writes the expected names)")


def load_weights(graph: Graph, path: str) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        weights = load_file(path)
    except (OSError, SafetensorError) as e:
        raise WeightsError(f"{path}: cannot read safetensors weights: {e}") from None
    check_weights(graph, weights, path)
    return weights


def save_weights(weights: dict[str, np.ndarray], path: str, metadata: dict | None = None) -> None:
    from safetensors.numpy import save_file

    from ..atomic import atomic_path

    with atomic_path(path) as temp:
        save_file({k: np.ascontiguousarray(v) for k, v in weights.items()}, str(temp), metadata=metadata)
