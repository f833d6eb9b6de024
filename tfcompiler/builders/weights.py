"""Weights for a built graph: seeded initialisation, or a safetensors file with tfcompiler's
canonical names (checked all at once: missing, unexpected, misshapen and non-finite weights in one error);
float16 and bfloat16 files widen to float32 exactly as they are read.

Canonical names follow the spec path (``encoder.layers.3.attention.query.weight``); matrices are
stored (in_features, out_features) so they lower to MatMul without a transpose.
"""
from __future__ import annotations

import os
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..errors import WeightsError
from ..ir.graph import Graph
from ..ir.recipes import Recipe
from ..language.model import Init


def declared_params(graph: Graph) -> dict[str, tuple[tuple[int, ...], str]]:
    """name -> (shape, init) for every param of the graph, in build order."""
    return {op.attrs["name"]: (tuple(op.attrs["shape"]), op.attrs["init"])
            for op in (graph.op(n) for n in sorted(graph.nodes())) if op.type == "param"}


@dataclass(frozen=True)
class SeededWeight(Recipe):
    """A weight that is a recipe until an array is needed: ``np.asarray(weight)`` draws it. The model
    writer draws recipes on all cores while it writes earlier weights, so drawing and writing
    overlap. Seeded by (seed, name) alone, so a weight does not change when other weights are
    added or removed."""

    name: str
    shape: tuple[int, ...]
    init: str
    scheme: Init
    seed: int
    dtype = np.dtype(np.float32)

    def __array__(self, dtype=None, copy=None):
        out = np.empty(self.shape, np.float32)
        if self.init in ("zeros", "ones"):
            out.fill(0.0 if self.init == "zeros" else 1.0)
        elif self.init.startswith("fill="):
            out.fill(float(self.init[len("fill="):]))
        elif self.init == "identity":  # (..., n, n) identities: head mixing that starts as no mixing
            out[...] = np.eye(self.shape[-1], dtype=np.float32)
        else:
            # Philox draws normals about a third faster than the default PCG64 here
            seeds = np.random.SeedSequence([self.seed, zlib.crc32(self.name.encode())])
            rng = np.random.Generator(np.random.Philox(seeds))
            if self.init == "matrix" and self.scheme.scheme == "xavier_uniform":
                limit = np.float32(np.sqrt(6.0 / (self.shape[0] + self.shape[-1])))
                rng.random(out=out, dtype=np.float32)
                out *= 2 * limit
                out -= limit
            else:
                rng.standard_normal(out=out, dtype=np.float32)
                out *= np.float32(self.scheme.std)
        return out if dtype is None else out.astype(dtype)


def init_weights(graph: Graph, scheme: Init, seed: int = 0) -> dict[str, SeededWeight]:
    """Every declared weight as a :class:`SeededWeight` recipe (``np.asarray`` draws one)."""
    return {name: SeededWeight(name, shape, init, scheme, seed)
            for name, (shape, init) in declared_params(graph).items()}


def materialize(weights: dict, threads: int | None = None) -> dict[str, np.ndarray]:
    """Arrays for every weight, drawn on all cores (NumPy's generators release the GIL)."""
    with ThreadPoolExecutor(max_workers=threads or os.cpu_count() or 1) as pool:
        return dict(zip(weights, pool.map(np.asarray, weights.values())))


def check_weights(graph: Graph, weights: dict[str, np.ndarray], source: str, whole: Graph | None = None) -> None:
    """Raise one WeightsError that lists every missing, unexpected and misshapen name, and every weight
    that holds a NaN or an infinity; ``whole``: the one-graph model of which ``graph`` is a part (weights
    of its other part are expected too)."""
    declared = declared_params(graph)
    missing = [n for n in declared if n not in weights]
    unexpected = sorted(n for n in weights if n not in declared_params(whole or graph))
    misshapen = [f"{n}: expected {list(declared[n][0])}, got {list(weights[n].shape)}"
                 for n in declared if n in weights and tuple(weights[n].shape) != declared[n][0]]
    wrong_dtype = [f"{n}: expected float32, got {weights[n].dtype}"
                   for n in declared if n in weights and weights[n].dtype != np.float32]
    not_finite = [f"{n}: {non_finite(weights[n])}" for n in declared
                  if n in weights and weights[n].dtype.kind == "f" and not np.isfinite(weights[n]).all()]
    lines = []
    for title, names in (("missing", missing), ("unexpected", unexpected), ("wrong shape", misshapen),
                         ("wrong dtype", wrong_dtype), ("not finite", not_finite)):
        if names:
            lines.append(f"  {title} ({len(names)}):")
            lines.extend(f"    {n}" for n in names)
    if lines:
        raise WeightsError(f"{source}: weights do not fit the spec\n" + "\n".join(lines) +
                           "\n  (`tfc init-weights SPEC -o W.safetensors` writes the expected names)")


def non_finite(array: np.ndarray) -> str:
    """What is not finite in ``array``, in words: a model would output NaN from the first call."""
    counts = {"NaN": int(np.isnan(array).sum()), "+inf": int(np.isposinf(array).sum()),
              "-inf": int(np.isneginf(array).sum())}
    return ", ".join(f"{count:,} {what}" for what, count in counts.items() if count) + f" of {array.size:,} values"


def load_weights(graph: Graph, path: str, whole: Graph | None = None) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError

    from ..tensor_files import NarrowFloats, read_tensors

    if os.path.isdir(path):
        raise WeightsError(f"{path}: a folder, not a safetensors file (`tfc import-hf` reads a checkpoint folder)")
    try:
        weights = read_tensors(path)
    except (OSError, SafetensorError) as e:
        raise WeightsError(f"{path}: cannot read safetensors weights: {e}") from None
    except NarrowFloats as e:
        raise WeightsError(f"{path}: weights do not fit the spec\n  wrong dtype ({len(e.tensors)}):\n"
                           + "\n".join(f"    {name}: expected float32, got {dtype}" for name, dtype in e.tensors))
    check_weights(graph, weights, path, whole)
    declared = declared_params(graph)
    return {name: array for name, array in weights.items() if name in declared}


def save_weights(weights: dict[str, np.ndarray], path: str, metadata: dict | None = None) -> None:
    from safetensors.numpy import save_file

    from ..atomic import atomic_path

    arrays = materialize(weights)
    with atomic_path(path) as temp:
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(temp), metadata=metadata)
