"""Bounds on what building a spec may take. A size in a spec can ask for more than any machine holds (a
table of a billion rows, a loop unrolled a billion times). The loader refuses what its formulas foresee
(language/size.py, the kinds' own rules); these bounds catch the rest while the graph is built, naming
the spec entry that asked for it, instead of a MemoryError or a build that never ends:

- nodes: a build stops past NODE_LIMIT IR nodes and a lowering past ONNX_NODE_LIMIT ONNX nodes (an
  op whose iterations unroll). The largest shipped spec has about 1,500 IR nodes and a 400-layer
  decoder about 14,000, so only a size past any real model reaches them, within seconds;
- memory: an allocation that fails while a spec entry is built (a random table, an index constant)
  or lowered is reported at that entry;
- weights: once the graph is built, its declared weights' bytes are exact; more than this machine's
  memory is refused before one is drawn or read.

The builder's context counts nodes and names memory errors (builders/context.py), the lowering names
them too (lower/to_onnx.py), and compile_spec checks the weights.
"""
from __future__ import annotations

import math
from contextlib import contextmanager

from .errors import TfcError
from .language.size import FP32_BYTES, GIB, physical_memory

NODE_LIMIT = 500_000
ONNX_NODE_LIMIT = 2_000_000  # an IR op lowers to up to tens of ONNX nodes (a loop an op unrolls: more)


class TooLarge(TfcError):
    """A spec whose graph or weights cannot be built on this machine."""


def check_node_count(nodes: int, origin: str, onnx: bool = False) -> None:
    """Past the IR's (or with ``onnx``, the ONNX graph's) node limit, a TooLarge at ``origin``."""
    limit, graph = (ONNX_NODE_LIMIT, "ONNX graph") if onnx else (NODE_LIMIT, "graph")
    if nodes > limit:
        raise TooLarge(f"{origin or 'the model'}: the {graph} passes {limit:,} nodes while this entry is made: "
                       "a size or count in the spec (layers, iterations, a window) is past any model that can run")


@contextmanager
def out_of_memory_at(origin, doing: str):
    """Report a MemoryError inside as a TooLarge at ``origin()`` (the spec entry being handled then)."""
    try:
        yield
    except MemoryError:
        where = origin() or "the model"
        raise TooLarge(f"{where}: out of memory while {doing} it: a size in the spec asks for more than this "
                       f"machine's {physical_memory() / GIB:,.1f} GiB") from None


def check_weight_bytes(params: dict[str, tuple[tuple[int, ...], str]], memory: int | None = None) -> None:
    """Refuse declared weights {name: (shape, init)} that take more than ``memory`` bytes (physical
    memory by default), naming the largest: its name is the spec path that sizes it."""
    memory = physical_memory() if memory is None else memory
    sizes = {name: math.prod(shape) * FP32_BYTES for name, (shape, _) in params.items()}
    total = sum(sizes.values())
    if memory and total > memory:
        largest = max(sizes, key=sizes.get)
        raise TooLarge(f"{largest}: the weights would take {total / GIB:,.1f} GiB in fp32, more than this machine's "
                       f"{memory / GIB:,.1f} GiB of memory; the largest is this one, {list(params[largest][0])} "
                       f"({sizes[largest] / GIB:,.1f} GiB)")
