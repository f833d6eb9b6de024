"""ONNX lowering of the position IR ops: position ids (Range over the input's length), rotary
embeddings (tfcompiler.ir.ops.rope: the opset-23 RotaryEmbedding op, or Gather of cos/sin tables and
the rotation below it) and the relative distances and their lookups (tfcompiler.ir.ops.relative)."""
from __future__ import annotations

import numpy as np

from ..ir.ops.rope import rope_angles
from .common import length_of
from .registry import lowers


@lowers("positions")
def positions(e, attrs, inputs, types, label):
    offset = attrs.get("offset", 0)
    end = e.node1("Add", length_of(e, inputs[0], attrs.get("axis", 1)), e.const(offset))
    positions = e.node1("Range", e.const(offset), end, e.const(1))
    return [e.node1("Unsqueeze", positions, e.const([0]), label=label or "Positions")]


def rope_tables(e, attrs) -> tuple[str, str]:
    """cos and sin of every angle, (max_positions, R/2), made once per distinct rope setting."""
    key = ("rope", attrs["rotary_dim"], attrs["base"], attrs.get("position_scale", 1.0), attrs["max_positions"])
    if key not in e.memo:
        angles = rope_angles(np.arange(attrs["max_positions"]), attrs["rotary_dim"], attrs["base"],
                             attrs.get("position_scale", 1.0))
        e.memo[key] = (e.const(np.cos(angles), np.float32), e.const(np.sin(angles), np.float32))
    return e.memo[key]


def _per_row(e, x: str, positions: str) -> str:
    """(1, S) positions -> (B, S), made once for every rope that reads them."""
    key = ("positions per row", positions)
    if key not in e.memo:
        batch_and_length = e.node1("Concat", e.node1("Shape", x, start=0, end=1),
                                   e.node1("Shape", x, start=2, end=3), axis=0)
        e.memo[key] = e.node1("Expand", positions, batch_and_length)
    return e.memo[key]


@lowers("rope")
def rope(e, attrs, inputs, types, label):
    x, positions = inputs
    cos, sin = rope_tables(e, attrs)
    r, width = attrs["rotary_dim"], types[0].shape[3]
    if e.opset >= 23:
        position_ids = positions if types[1].shape[0] != 1 else _per_row(e, x, positions)  # (B, S) as it wants
        return [e.node1("RotaryEmbedding", x, cos, sin, position_ids, interleaved=int(attrs["interleaved"]),
                        rotary_embedding_dim=r if r < width else 0, label=label or "Rotary")]
    e.miss_below("RotaryEmbedding", 23)

    def cut(t, start, end, axis, step=1):
        return e.node1("Slice", t, e.const([start]), e.const([end]), e.const([axis]), e.const([step]))

    cos, sin = (e.node1("Unsqueeze", e.node1("Gather", table, positions), e.const([1])) for table in (cos, sin))
    rot = cut(x, 0, r, 3) if r < width else x  # (B, H, S, R); cos/sin (1|B, 1, S, R/2)
    if attrs["interleaved"]:
        pairs = e.node1("Reshape", rot, e.const([0, 0, 0, r // 2, 2]))
        a, b = cut(pairs, 0, 1, 4), cut(pairs, 1, 2, 4)
        cos, sin = (e.node1("Unsqueeze", t, e.const([4])) for t in (cos, sin))
    else:
        a, b = cut(rot, 0, r // 2, 3), cut(rot, r // 2, r, 3)
    first = e.node1("Sub", e.node1("Mul", a, cos), e.node1("Mul", b, sin))
    second = e.node1("Add", e.node1("Mul", b, cos), e.node1("Mul", a, sin))
    rotated = e.node1("Concat", first, second, axis=-1)
    if attrs["interleaved"]:
        rotated = e.node1("Reshape", rotated, e.const([0, 0, 0, r]))
    if r < width:
        rotated = e.node1("Concat", rotated, cut(x, r, width, 3), axis=3)
    return [e.node1("Identity", rotated, label=label or "Rotary")]


@lowers("relative_distance")
def relative_distance(e, attrs, inputs, types, label):
    """n[i, j] = j - (i + T - S), from the two lengths, int64 (S, T); shared per pair of lengths."""
    key = ("distance", types[0].shape[2], types[1].shape[2])
    if key not in e.memo:
        q, k = inputs
        s, t = length_of(e, q, 2), length_of(e, k, 2)
        rows = e.node1("Add", e.node1("Range", e.const(0), s, e.const(1)), e.node1("Sub", t, s))
        cols = e.node1("Range", e.const(0), t, e.const(1))
        e.memo[key] = e.node1("Sub", cols, e.node1("Unsqueeze", rows, e.const([1])), label=label or "RelativeDistance")
    return [e.memo[key]]


@lowers("distance_range")
def distance_range(e, attrs, inputs, types, label):
    s, t = length_of(e, inputs[0], 2), length_of(e, inputs[1], 2)
    return [e.node1("Range", e.node1("Sub", e.const(1), s), t, e.const(1), label=label or "DistanceRange")]


@lowers("distance_index")
def distance_index(e, attrs, inputs, types, label):
    """S - 1 - n, from relative_distance's n."""
    (n,) = relative_distance(e, {}, inputs, types, "")
    s_minus_1 = e.node1("Sub", length_of(e, inputs[0], 2), e.const(1))
    return [e.node1("Sub", s_minus_1, n, label=label or "DistanceIndex")]


@lowers("take_relative")
def take_relative(e, attrs, inputs, types, label):
    """GatherElements along the last axis, the (S, T) index expanded over x's leading axes."""
    x, index = inputs
    lead = e.node1("Shape", x, start=0, end=types[0].rank - 2)
    shape = e.node1("Concat", lead, e.node1("Shape", index), axis=0)
    return [e.node1("GatherElements", x, e.node1("Expand", index, shape), axis=-1,
                    label=label or "TakeRelative")]
