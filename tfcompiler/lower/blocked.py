"""ONNX lowering of the blocked attention forms the sparsity pass produces: banded attention (each
query block with the span of key blocks around it, plus global tokens) and block-sparse attention
(each query block with key blocks gathered by a constant index, plus dense leading rows).

Both pad the sequence to whole blocks inside the graph (Mod/Pad, so any length works), attend per
block with one mask for the pattern, causality, key padding and the sequence end, reshape back and
Slice the padding off: memory and FLOPs grow with S·(keys per block), not S².
"""
from __future__ import annotations

import numpy as np

from .attention import emit_attention
from .common import length_of, padding_to, reduce, repeat_heads, token_major
from .patterns import OnnxGrid
from .registry import lowers

# Most queries per Loop iteration of fused blocked attention. One layer, width 256, FFN chunked, 4096
# tokens: the sliding window (128) peaks at 40 MiB against 95 MiB for all blocks at once (36 MiB for
# 256, 48 MiB for 1024), at the same speed; BigBird 49 MiB against 138 MiB, and 9% slower at 256
GROUP_QUERIES = 512


class Blocked:
    """The block grid of one attention: queries, keys and values with key/value heads repeated,
    the scalar length, the padding to whole blocks and the block count.

    `fused` grids (opset 23, no soft-cap) keep their blocks token-major, (B, n, rows, H·d) as the
    projections made them, and run every block through one `Attention` op; the others keep them
    head-major, (B, H, n, rows, d), for the explicit MatMul / Softmax / MatMul form. `axis` is the
    block axis either way."""

    def __init__(self, e, attrs, inputs, types, block: int, fused: bool = False):
        self.e, self.attrs, self.block = e, attrs, block
        q, k, v, *bias = inputs
        self.heads, kv_heads = types[0].shape[1], types[1].shape[1]
        self.width, self.value_width = types[0].shape[3], types[2].shape[3]
        if kv_heads != self.heads:
            k = repeat_heads(e, k, self.heads // kv_heads, self.heads, self.width)
            v = repeat_heads(e, v, self.heads // kv_heads, self.heads, self.value_width)
        self.q, self.k, self.v, self.bias, self.types = q, k, v, bias, types
        self.fused = fused and e.opset >= 23 and not attrs.get("softcap")
        self.axis = 1 if self.fused else 2
        self._sequences: dict[str, str] = {}
        self.s = length_of(e, q, 2)
        self.pad = padding_to(e, self.s, block)
        self.blocks = e.node1("Div", e.node1("Add", self.s, self.pad), e.const(block))
        self.block_ids = e.node1("Range", e.const(0), self.blocks, e.const(1))  # (nb,)
        self.q_blocks = self.cut(self.padded(q, self.width, e.const(0), self.pad), self.width)

    def row(self, last: int) -> int:
        """The last axis of a block in this grid's layout."""
        return self.heads * last if self.fused else last

    def sequence(self, x: str, last: int) -> str:
        """(B, H, S, last) in this grid's layout: itself, or token-major (B, S, H·last) when fused."""
        if not self.fused:
            return x
        if x not in self._sequences:
            self._sequences[x] = token_major(self.e, x, self.heads, last)
        return self._sequences[x]

    def padded(self, x: str, last: int, before: str, after: str) -> str:
        """(B, H, S, last) in this grid's layout, its sequence axis padded."""
        e = self.e  # the sequence axis is `axis` in both layouts, followed by one more axis
        pads = e.node1("Concat", e.const([0] * self.axis), e.node1("Reshape", before, e.const([1])),
                       e.const([0] * (1 + self.axis)), e.node1("Reshape", after, e.const([1])), e.const([0]), axis=0)
        return e.node1("Pad", self.sequence(x, last), pads)

    def bias_pads(self, before: str, after: str) -> str:
        """Pad amounts for the last axis of a 4-D key bias."""
        e, zero = self.e, self.e.const([0, 0, 0])
        return e.node1("Concat", zero, e.node1("Reshape", before, e.const([1])), zero,
                       e.node1("Reshape", after, e.const([1])), axis=0)

    def cut(self, x: str, last: int) -> str:
        """A padded sequence into blocks: (B, H, n·block, last) -> (B, H, n, block, last), or
        (B, n·block, H·last) -> (B, n, block, H·last) when fused."""
        return self.e.node1("Reshape", x, self.e.const([0] * (self.axis - 1) + [0, -1, self.block, self.row(last)]))

    def scores(self, q_blocks: str, k_blocks: str, rank: int = 5) -> str:
        e = self.e
        last_two = [rank - 1, rank - 2]
        scores = e.node1("MatMul", q_blocks, e.node1("Transpose", k_blocks, perm=list(range(rank - 2)) + last_two))
        scores = e.node1("Mul", scores, e.const(self.attrs["scale"], np.float32))
        if self.attrs.get("softcap"):
            cap = e.const(self.attrs["softcap"], np.float32)
            scores = e.node1("Mul", e.node1("Tanh", e.node1("Div", scores, cap)), cap)
        return scores

    def query_positions(self, ids: str | None = None) -> str:
        """int64 (n, block, 1): the position of every query of blocks `ids` (default: all) on the grid."""
        e = self.e
        n = e.node1("Unsqueeze", self.block_ids if ids is None else ids, e.const([1, 2]))
        return e.node1("Add", e.node1("Mul", n, e.const(self.block)), e.const(np.arange(self.block)[None, :, None]))

    def mask_bias(self, i: str, j: str, key_bias: str | None = None, first_key: int = 0) -> str:
        """The additive float bias (B|1, 1, nb, block, K) of query i and key j: `key_bias`
        (B|1, 1, nb, 1, K) or 0 where the pattern allows the key, the mask outside it, before
        `first_key`, past the end and (causal) ahead. One bias, so the scores take one Add."""
        e, grid = self.e, OnnxGrid(self.e, self.s)
        allowed = self.attrs["pattern"].allowed(grid, i, j)
        allowed = grid.and_(allowed, grid.and_(grid.le(first_key, j), grid.lt(j, self.s)))
        if self.attrs["causal"]:
            allowed = grid.and_(allowed, grid.le(j, i))
        masked = e.mask()
        if key_bias is not None:
            return e.node1("Where", allowed, key_bias, masked)
        return e.node1("Unsqueeze", e.node1("Where", allowed, e.const(0.0, np.float32), masked), e.const([0, 1]))

    def unfused(self, why: str) -> None:
        """Record that these blocks take the explicit form: below opset 23, or for `why`."""
        if self.e.opset < 23:
            self.e.miss_below("Attention", 23)
        else:
            self.e.miss("Attention", f"blocked attention with {why}")

    def attend(self, blocks, keys: int, dense_rows: int, label: str) -> str:
        """Each query block over its `keys` keys, back to (B,H,S,Dv). `blocks(ids)` emits, for the
        query blocks `ids` (int64 (n,)), their key and value blocks (.., n, keys, ..) in the grid's
        layout and their additive bias (B|1, 1, n, block, keys). A fused grid takes GROUP_QUERIES
        queries' blocks per `Loop` iteration, each group through one `Attention` op (its blocks folded
        into the op's batch, heads split inside it), so only one group's keys, bias and scores are live
        at a time; otherwise every block at once in the explicit MatMul / Softmax / MatMul form."""
        e = self.e
        if not self.fused:
            self.unfused("a soft-cap (the op caps after the mask)")
            k_blocks, v_blocks, bias = blocks(self.block_ids)
            scores = e.node1("Add", self.scores(self.q_blocks, k_blocks), bias)
            return self.finish(scores, v_blocks, dense_rows, label)
        # ceil(nb / count) blocks in each of count = ceil(nb / most) groups: the last group repeats the last
        # block fewer than `count` times (its rows fall past the end), however the length divides
        most = max(1, GROUP_QUERIES // self.block)
        count = e.node1("Div", e.node1("Add", self.blocks, e.const(most - 1)), e.const(most))
        size = e.node1("Div", e.node1("Add", self.blocks, e.node1("Sub", count, e.const(1))), count)
        offsets = e.node1("Range", e.const(0), size, e.const(1))
        last = e.node1("Sub", self.blocks, e.const(1))
        batch = e.node1("Shape", self.q, start=0, end=1)
        expand = e.node1("Concat", batch, e.const([1, 1, 1, 1]), axis=0)
        tokens_shape = e.node1("Concat", batch, e.const([-1, self.heads * self.value_width]), axis=0)

        def fold(x, rows, width):  # (B, n, rows, H·width) -> (B·n, rows, H·width)
            return e.node1("Reshape", x, e.const([-1, rows, self.heads * width]))

        def one_group(index):
            ids = e.node1("Min", e.node1("Add", e.node1("Mul", index, size), offsets), last)
            k_blocks, v_blocks, bias = blocks(ids)
            bias = e.node1("Reshape", e.node1("Expand", bias, expand), e.const([-1, 1, self.block, keys]))
            out = e.node1("Attention", fold(e.node1("Gather", self.q_blocks, ids, axis=1), self.block, self.width),
                          fold(k_blocks, keys, self.width), fold(v_blocks, keys, self.value_width), bias,
                          scale=float(self.attrs["scale"]), q_num_heads=self.heads, kv_num_heads=self.heads)
            return e.node1("Reshape", out, tokens_shape)  # (B, n·block, H·Dv)

        stacked = e.loop(count, one_group, "BlockGroups")  # (groups, B, n·block, H·Dv)
        tokens = e.node1("Transpose", stacked, perm=[1, 0, 2, 3])
        by_head = e.node1("Concat", batch, e.const([-1, self.heads, self.value_width]), axis=0)
        heads = e.node1("Reshape", tokens, by_head)
        return self.close(e.node1("Transpose", heads, perm=[0, 2, 1, 3]), dense_rows, label)

    def finish(self, scores: str, v_blocks: str, dense_rows: int, label: str) -> str:
        """Softmax, weighted values, back to (B, H, S, Dv); the first `dense_rows` queries replaced
        by dense attention over every key."""
        out = self.e.node1("MatMul", self.e.node1("Softmax", scores, axis=-1), v_blocks)
        return self.close(self.e.node1("Reshape", out, self.e.const([0, 0, -1, self.value_width])), dense_rows, label)

    def attend_with_columns(self, blocks, columns, label: str) -> str:
        """Each query block over its band and its strided columns under one softmax, one block per
        `Loop` iteration: `blocks(ids)` emits the band's key and value blocks and bias of that block
        (as for `attend`), `columns` = (column_scores(a), values (B,H,block,nb,Dv)) from
        strided_columns, so the band's and the columns' scores stay one block's and memory linear."""
        e = self.e
        self.unfused("strided columns (one softmax over two key sets)")
        column_scores, column_values = columns

        def one_block(index):
            k_blocks, v_blocks, bias = (e.node1("Squeeze", x, e.const([2]))
                                        for x in blocks(e.node1("Unsqueeze", index, e.const([0]))))
            queries = e.node1("Gather", self.q_blocks, index, axis=2)
            band = e.node1("Add", self.scores(queries, k_blocks, rank=4), bias)  # (B,H,block,W)
            width = e.node1("Shape", band, start=3, end=4)
            probs = e.node1("Softmax", e.node1("Concat", band, column_scores(index), axis=-1), axis=-1)
            out = e.node1("MatMul", e.node1("Slice", probs, e.const([0]), width, e.const([3])), v_blocks)
            strided = e.node1("Unsqueeze", e.node1("Slice", probs, width, e.const([2 ** 62]), e.const([3])),
                              e.const([3]))  # (B,H,block,1,nb)
            return e.node1("Add", out, e.node1("Squeeze", e.node1("MatMul", strided, column_values), e.const([3])))

        out = e.loop(self.blocks, one_block, "StridedBlocks")  # (nb, B,H,block,Dv)
        out = e.node1("Transpose", out, perm=[1, 2, 0, 3, 4])  # (B,H,nb,block,Dv)
        return self.close(e.node1("Reshape", out, e.const([0, 0, -1, self.value_width])), 0, label)

    def close(self, out: str, dense_rows: int, label: str) -> str:
        """(B,H,S',Dv) on whole blocks -> (B,H,S,Dv): the padding sliced off, the first
        `dense_rows` queries replaced by dense attention over every key."""
        e = self.e
        end = e.node1("Reshape", self.s, e.const([1]))
        if dense_rows:
            rest = e.node1("Slice", out, e.const([dense_rows]), end, e.const([2]))
            out = e.node1("Concat", self.dense_leading_rows(dense_rows), rest, axis=2)
        return e.node1("Slice", out, e.const([0]), end, e.const([2]), label=label)

    def dense_rows_from(self, start: str) -> str:
        """The queries from `start` (int64 (1,)) to the end over every key (global blocks at the input's
        end; never causal)."""
        e = self.e
        q_rows = e.node1("Slice", self.q, start, e.node1("Reshape", self.s, e.const([1])), e.const([2]))
        return self.dense_rows(q_rows, "trailing_rows", list(self.bias), list(self.types[3:]))

    def dense_leading_rows(self, rows: int) -> str:
        """The first `rows` queries over every key (causality top-left: they are the first rows)."""
        e, types = self.e, self.types
        q_rows = e.node1("Slice", self.q, e.const([0]), e.const([rows]), e.const([2]))
        if not self.attrs["causal"]:
            return self.dense_rows(q_rows, "dense_rows", list(self.bias), list(types[3:]))
        future = e.node1("Less", e.const(np.arange(rows)[:, None]),
                         e.node1("Unsqueeze", e.node1("Range", e.const(0), self.s, e.const(1)), e.const([0])))
        future = e.node1("Slice", future, e.const([0]), e.node1("Reshape", self.s, e.const([1])), e.const([0]))
        hide = e.node1("Where", future, e.mask(), e.const(0.0, np.float32))
        return self.dense_rows(q_rows, "dense_rows", [e.node1("Add", self.bias[0], hide) if self.bias else hide],
                               [types[0].with_shape((1, 1, "dense_rows", types[0].shape[2]))])

    def dense_rows(self, q_rows: str, rows: str, bias: list, bias_types: list) -> str:
        """Queries `q_rows` (B, H, `rows`, d) over every key with `bias` (causality, if any, in it)."""
        types = self.types
        attrs = {"scale": self.attrs["scale"], "causal": False, "softcap": self.attrs.get("softcap", 0.0)}
        rows_type = types[0].with_shape(types[0].shape[:2] + (rows,) + types[0].shape[3:])
        value_type = types[2].with_shape(types[0].shape[:3] + types[2].shape[3:])  # heads already repeated
        return emit_attention(self.e, attrs, [q_rows, self.k, self.v, *bias],
                              [rows_type, types[0], value_type, *bias_types], "DenseRows")[0]


@lowers("banded_attention")
def banded_attention(e, attrs, inputs, types, label):
    """Keys and values padded by the back and ahead blocks; each query block's span of key blocks
    gathered by block id; global tokens are extra key columns of every block and dense leading rows."""
    block, back_blocks, ahead_blocks = attrs["block"], attrs["back_blocks"], attrs["ahead_blocks"]
    g = attrs.get("global_tokens", 0)
    grid = Blocked(e, attrs, inputs, types, block, fused=not attrs.get("stride_columns"))
    span = back_blocks + ahead_blocks + 1
    front, back = e.const(back_blocks * block), e.node1("Add", grid.pad, e.const(ahead_blocks * block))
    k_all, v_all = (grid.cut(grid.padded(x, last, front, back), last)
                    for x, last in ((grid.k, grid.width), (grid.v, grid.value_width)))
    key_rows = None
    if grid.bias:  # key padding (B|1, 1, 1, S) -> (B|1, 1, nb+span-1, block, 1)
        padded = e.node1("Pad", grid.bias[0], grid.bias_pads(front, back), e.mask())
        key_rows = e.node1("Reshape", padded, e.const([0, 1, -1, block, 1]))

    def first_g(x, axis):
        return e.node1("Slice", x, e.const([0]), e.const([g]), e.const([axis]))

    def band(ids):
        # block n sees blocks n .. n+span-1
        spans = e.node1("Add", e.node1("Unsqueeze", ids, e.const([1])), e.const(np.arange(span)[None, :]))

        def windows(x, axis, last):  # blocks (.., nb+span-1 at axis, block, last) -> (.., n, span·block, last)
            picked = e.node1("Gather", x, spans, axis=axis)  # (.., n, span, block, last)
            return e.node1("Reshape", picked, e.const([0] * (axis + 1) + [span * block, last]))

        k_blocks, v_blocks = (windows(x, grid.axis, grid.row(last)) for x, last in ((k_all, grid.width),
                                                                                   (v_all, grid.value_width)))
        key_bias = None if key_rows is None else e.node1("Transpose", windows(key_rows, 2, 1), perm=[0, 1, 2, 4, 3])
        n = e.node1("Unsqueeze", ids, e.const([1, 2]))
        j = e.node1("Add", e.node1("Mul", e.node1("Sub", n, e.const(back_blocks)), e.const(block)),
                    e.const(np.arange(span * block)[None, None, :]))
        i = grid.query_positions(ids)
        bias = grid.mask_bias(i, j, key_bias, first_key=g)
        if not g:
            return k_blocks, v_blocks, bias
        # global keys: g extra key columns for every block
        def per_block(x, last):  # (B,H,S,last) -> the first g rows for every block, in the grid's layout
            shape = e.node1("Concat", e.node1("Shape", k_blocks, start=0, end=grid.axis + 1),
                            e.const([g, grid.row(last)]), axis=0)
            return e.node1("Expand", e.node1("Unsqueeze", first_g(grid.sequence(x, last), grid.axis),
                                             e.const([grid.axis])), shape)

        columns = e.const(np.arange(g)[None, None, :])
        visible = e.node1("Less", columns, e.node1("Reshape", grid.s, e.const([1, 1, 1])))
        if attrs["causal"]:
            visible = e.node1("And", visible, e.node1("LessOrEqual", columns, i))
        global_key = e.node1("Unsqueeze", first_g(grid.bias[0], 3), e.const([2])) if grid.bias \
            else e.const(0.0, np.float32)
        global_bias = e.node1("Where", visible, global_key, e.mask())
        global_bias = e.node1("Expand", global_bias,
                              e.node1("Concat", e.node1("Shape", bias, start=0, end=4), e.const([g]), axis=0))
        return (e.node1("Concat", per_block(grid.k, grid.width), k_blocks, axis=grid.axis + 1),
                e.node1("Concat", per_block(grid.v, grid.value_width), v_blocks, axis=grid.axis + 1),
                e.node1("Concat", global_bias, bias, axis=-1))

    if attrs.get("stride_columns"):
        columns = strided_columns(grid, attrs["stride_columns"], grid.query_positions())
        return [grid.attend_with_columns(band, columns, label or "BandedAttention")]
    return [grid.attend(band, span * block + g, g, label or "BandedAttention")]


def strided_columns(grid: Blocked, stride: int, i: str):
    """The Sparse Transformer's strided keys beyond the band: with blocks of `stride` positions, query
    (block a, offset r) also sees offset r of every other block (earlier ones when causal). Returns
    `column_scores(a)`, which emits query block a's scores (B,H,block,nb), the mask where the key block is
    the query's own, past the end or (causal) ahead, and the values (B,H,block,nb,Dv) in the
    offset-major layout that turns both into MatMuls."""
    e = grid.e

    def by_offset(x, last):  # (B,H,S,last) -> (B,H,block,nb,last)
        blocks = grid.cut(grid.padded(x, last, e.const(0), grid.pad), last)
        return e.node1("Transpose", blocks, perm=[0, 1, 3, 2, 4])

    keys = by_offset(grid.k, grid.width)
    per_key = None
    if grid.bias:  # (B|1,1,1,S) -> (B|1,1,block,nb): key (b, r) for query offset r
        padded = e.node1("Pad", grid.bias[0], grid.bias_pads(e.const(0), grid.pad), e.mask())
        per_key = e.node1("Transpose", e.node1("Reshape", padded, e.const([0, 1, -1, stride])), perm=[0, 1, 3, 2])
    key_block = e.node1("Unsqueeze", grid.block_ids, e.const([0, 1]))  # (1, 1, nb)
    query_block = e.node1("Div", i, e.const(stride))  # (nb, block, 1)
    j = e.node1("Add", e.node1("Mul", key_block, e.const(stride)), e.node1("Mod", i, e.const(stride)))
    visible = e.node1("And", e.node1("Not", e.node1("Equal", key_block, query_block)),
                      e.node1("Less", j, e.node1("Reshape", grid.s, e.const([1, 1, 1]))))
    if grid.attrs["causal"]:
        visible = e.node1("And", visible, e.node1("Less", key_block, query_block))  # (nb, block, nb)

    def column_scores(a):  # a: the query block's index (scalar int64)
        rows = e.node1("Unsqueeze", e.node1("Gather", grid.q_blocks, a, axis=2), e.const([3]))  # (B,H,block,1,d)
        scores = e.node1("Squeeze", grid.scores(rows, keys), e.const([3]))  # (B,H,block,nb)
        if per_key is not None:
            scores = e.node1("Add", scores, per_key)
        return e.node1("Where", e.node1("Gather", visible, a, axis=0), scores, e.mask())

    return column_scores, by_offset(grid.v, grid.value_width)


@lowers("block_sparse_attention")
def block_sparse_attention(e, attrs, inputs, types, label):
    """Keys, values and key bias cut into blocks with one empty (masked) block appended; each query
    block's K key blocks gathered by the constant table (entries past the input's block count, and
    the -1 padding, redirected to the empty block)."""
    pattern, table = attrs["pattern"], np.asarray(attrs["table"], np.int64)
    block, count = pattern.block, table.shape[1]
    grid = Blocked(e, attrs, inputs, types, block, fused=True)
    tail = e.node1("Add", grid.pad, e.const(block))  # to whole blocks, plus the empty block
    rows = e.node1("Slice", e.const(table), e.const([0]), e.node1("Reshape", grid.blocks, e.const([1])), e.const([0]))
    outside = e.node1("Or", e.node1("Less", rows, e.const(0)), e.node1("LessOrEqual", grid.blocks, rows))
    index = e.node1("Where", outside, grid.blocks, rows)  # (nb, K)
    if pattern.trailing:  # the input's last blocks, as key blocks of every row
        index, count = e.node1("Concat", index, trailing_columns(grid, index, pattern.trailing), axis=1), \
            count + pattern.trailing

    k_all, v_all = (grid.cut(grid.padded(x, last, e.const(0), tail), last)
                    for x, last in ((grid.k, grid.width), (grid.v, grid.value_width)))
    key_rows = None
    if grid.bias:
        padded = e.node1("Pad", grid.bias[0], grid.bias_pads(e.const(0), tail), e.mask())
        key_rows = e.node1("Reshape", padded, e.const([0, 1, -1, block]))

    def gathered(ids):
        rows = e.node1("Gather", index, ids, axis=0)  # (n, K) key blocks of query blocks `ids`

        def picked(x, last):  # (.., n, K·block, last) in the grid's layout
            chosen = e.node1("Gather", x, rows, axis=grid.axis)  # (.., n, K, block, last)
            return e.node1("Reshape", chosen, e.const([0] * (grid.axis + 1) + [count * block, grid.row(last)]))

        key_bias = None
        if key_rows is not None:
            key_bias = e.node1("Gather", key_rows, rows, axis=2)
            key_bias = e.node1("Reshape", key_bias, e.const([0, 1, 0, 1, count * block]))
        j = e.node1("Add", e.node1("Mul", e.node1("Unsqueeze", rows, e.const([2])), e.const(block)),
                    e.const(np.arange(block)[None, None, :]))  # (n, K, block)
        j = e.node1("Reshape", j, e.const([0, 1, count * block]))
        return (picked(k_all, grid.width), picked(v_all, grid.value_width),
                grid.mask_bias(grid.query_positions(ids), j, key_bias))

    out = grid.attend(gathered, count * block, attrs["dense_rows"] * block,
                      "" if pattern.trailing else label or "BlockSparseAttention")
    if not pattern.trailing:
        return [out]
    start = e.node1("Reshape", e.node1("Mul", e.node1("Max", e.node1("Sub", grid.blocks, e.const(pattern.trailing)),
                                                      e.const(0)), e.const(block)), e.const([1]))
    return [e.node1("Concat", e.node1("Slice", out, e.const([0]), start, e.const([2])), grid.dense_rows_from(start),
                    axis=2, label=label or "BlockSparseAttention")]


def trailing_columns(grid: Blocked, index: str, trailing: int) -> str:
    """(nb, trailing) key blocks: the input's last `trailing` blocks; one a row already gathers (or
    before the first block) redirected to the empty block, so no key is counted twice."""
    e = grid.e
    extra = e.node1("Add", e.node1("Sub", grid.blocks, e.const(trailing)), e.const(np.arange(trailing)))  # (t,)
    same = e.node1("Equal", e.node1("Unsqueeze", index, e.const([2])), e.node1("Reshape", extra, e.const([1, 1, -1])))
    seen = reduce(e, "ReduceMax", e.node1("Cast", same, to=6), [1], keepdims=False)  # (nb, t), int32
    redirect = e.node1("Or", e.node1("Cast", seen, to=9), e.node1("Less", extra, e.const(0)))
    return e.node1("Where", redirect, grid.blocks, e.node1("Unsqueeze", extra, e.const([0])))


@lowers("block_summary_attention")
def block_summary_attention(e, attrs, inputs, types, label):
    """Each query block's own keys (the blocks themselves) and the summary keys of every block (the
    last `summary` positions of each, shared by all queries) under one softmax. A fused grid takes
    the query blocks one by one in a `Loop` whose body is one `Attention` op: the scores of all
    blocks (S x S·summary/stride) never exist at once, so memory stays linear in the length."""
    stride, first = attrs["stride"], attrs["stride"] - attrs["summary"]
    grid = Blocked(e, attrs, inputs, types, stride, fused=True)

    def blocks(x, last):  # (B,H,S,last) -> (B,H,n,stride,last), or (B,n,stride,H·last) when fused
        return grid.cut(grid.padded(x, last, e.const(0), grid.pad), last)

    def summaries(x, last):  # blocks -> the summary keys, (B,H,1,n·summary,last) or (B,n·summary,H·last)
        tails = e.node1("Slice", x, e.const([first]), e.const([stride]), e.const([grid.axis + 1]))
        return e.node1("Reshape", tails, e.const([0, -1, grid.row(last)] if grid.fused else [0, 0, 1, -1, last]))

    k_blocks, v_blocks = blocks(grid.k, grid.width), blocks(grid.v, grid.value_width)
    k_summaries, v_summaries = summaries(k_blocks, grid.width), summaries(v_blocks, grid.value_width)
    per_block = None  # the key bias, (B|1, 1, n, stride)
    if grid.bias:
        padded = e.node1("Pad", grid.bias[0], grid.bias_pads(e.const(0), grid.pad), e.mask())
        per_block = e.node1("Reshape", padded, e.const([0, 1, -1, stride]))
    i = grid.query_positions()  # (n, stride, 1)
    own_j = e.node1("Transpose", i, perm=[0, 2, 1])
    starts = e.node1("Mul", grid.block_ids, e.const(stride))
    summary_j = e.node1("Reshape", e.node1("Add", e.node1("Unsqueeze", starts, e.const([1])),
                                           e.const(np.arange(first, stride)[None, :])), e.const([1, 1, -1]))
    end = e.node1("Reshape", grid.s, e.const([1, 1, 1]))
    own_ok = e.node1("Less", own_j, end)  # (n, 1, stride), or (n, stride, stride) when causal
    if attrs["causal"]:
        own_ok = e.node1("And", own_ok, e.node1("LessOrEqual", own_j, i))
    # summary keys of other blocks (the own block's are among its own keys), earlier ones when causal
    summary_block, query_block = e.node1("Div", summary_j, e.const(stride)), e.node1("Unsqueeze", grid.block_ids,
                                                                                     e.const([1, 2]))
    other = e.node1("Less", summary_block, query_block) if attrs["causal"] else \
        e.node1("Not", e.node1("Equal", summary_block, query_block))
    across_ok = e.node1("And", e.node1("Less", summary_j, end), other)  # (n, 1, n·summary)
    if grid.fused:
        return [_summary_loop(grid, k_blocks, v_blocks, k_summaries, v_summaries, own_ok, across_ok, per_block,
                              first, label)]
    grid.unfused("a soft-cap (the op caps after the mask)")
    own, across = grid.scores(grid.q_blocks, k_blocks), grid.scores(grid.q_blocks, k_summaries)
    if per_block is not None:
        own = e.node1("Add", own, e.node1("Unsqueeze", per_block, e.const([3])))
        across = e.node1("Add", across, e.node1("Reshape", e.node1(
            "Slice", per_block, e.const([first]), e.const([stride]), e.const([3])), e.const([0, 1, 1, 1, -1])))
    masked = e.mask()
    scores = e.node1("Concat", e.node1("Where", own_ok, own, masked), e.node1("Where", across_ok, across, masked),
                     axis=-1)
    probs = e.node1("Softmax", scores, axis=-1)
    out = e.node1("Add", e.node1("MatMul", e.node1("Slice", probs, e.const([0]), e.const([stride]), e.const([4])),
                                 v_blocks),
                  e.node1("MatMul", e.node1("Slice", probs, e.const([stride]), e.const([2 ** 62]), e.const([4])),
                          v_summaries))
    return [grid.close(e.node1("Reshape", out, e.const([0, 0, -1, grid.value_width])), 0,
                       label or "BlockSummaryAttention")]


def _summary_loop(grid: Blocked, k_blocks, v_blocks, k_summaries, v_summaries, own_ok, across_ok, per_block, first,
                  label):
    """Block-summary attention, one query block per Loop iteration: the block's own keys and the
    shared summary keys concatenated, the block's rows of the two masks (computed once, outside:
    O(S·stride) and O(n²·summary)) concatenated into its bias, one `Attention` op."""
    e, stride = grid.e, grid.block
    masked = e.mask()
    own_key = e.const(0.0, np.float32) if per_block is None else \
        e.node1("Reshape", per_block, e.const([0, -1, 1, stride]))  # (B|1, n, 1, stride)
    across_key = e.const(0.0, np.float32) if per_block is None else e.node1("Reshape", e.node1(
        "Slice", per_block, e.const([first]), e.const([stride]), e.const([3])), e.const([0, 1, 1, -1]))
    own_bias = e.node1("Where", own_ok, own_key, masked)  # (B|1, n, stride|1, stride)
    across_bias = e.node1("Where", across_ok, across_key, masked)  # (B|1, n, 1, n·summary)
    if per_block is None:
        own_bias, across_bias = (e.node1("Unsqueeze", x, e.const([0])) for x in (own_bias, across_bias))

    rows = e.node1("Concat", e.node1("Shape", own_bias, start=0, end=1), e.const([stride, 1]), axis=0)

    def body(block):
        def this_block(x):
            return e.node1("Gather", x, block, axis=1)

        own, across = this_block(own_bias), this_block(across_bias)  # (B|1, stride|1, stride), (B|1, 1, n·summary)
        bias = e.node1("Concat", *(e.node1("Expand", x, rows) for x in (own, across)), axis=-1)  # a row per query
        return e.node1("Attention", this_block(grid.q_blocks),
                       e.node1("Concat", this_block(k_blocks), k_summaries, axis=1),
                       e.node1("Concat", this_block(v_blocks), v_summaries, axis=1),
                       e.node1("Unsqueeze", bias, e.const([1])),
                       scale=float(grid.attrs["scale"]), q_num_heads=grid.heads, kv_num_heads=grid.heads)

    loop = e.loop(grid.blocks, body, "Blocks")  # (n, B, stride, H·Dv)
    by_head = e.const([0, -1, grid.heads, grid.value_width])
    out = e.node1("Reshape", e.node1("Transpose", loop, perm=[1, 0, 2, 3]), by_head)
    return grid.close(e.node1("Transpose", out, perm=[0, 2, 1, 3]), 0, label or "BlockSummaryAttention")
