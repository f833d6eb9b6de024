"""Token chunks on ONNX: a position-wise region (tfcompiler.ir.ops.token_chunks) emitted once as the
body of a `Loop` over blocks of `chunk` tokens. The input is padded to whole blocks; iteration i
runs the region on tokens [i·chunk, (i+1)·chunk); the Loop stacks the blocks' outputs, which are put
back in token order and cut to the input's length. Only one block's hidden activations are live at a
time, so a 4096-token FFN of width 1024 keeps 1 MiB of them at 256 tokens per chunk instead of 16.
"""
from __future__ import annotations

from .common import block_rows, length_of, pad_end, padding_to
from .registry import register


def runs_whole(ops) -> str | None:
    """Why a region of these IR ops must run unchunked, or None: onnxruntime fuses 4-bit
    DequantizeLinear + MatMul (the portable int4 layout) only where the weights are the graph's own,
    and refuses a model whose Loop body reads them from outside."""
    if any(op.type == "int4_matmul" and op.attrs.get("layout") == "rows" for op in ops):
        return ("onnxruntime fuses 4-bit DequantizeLinear + MatMul only where the weights are the graph's own, "
                "not a Loop body's: the FFN runs whole")
    return None


def emit_token_chunks(e, x: str, rank: int, chunk: int, emit_region) -> str:
    """`emit_region(block)` emits the region's nodes reading `block` (x's tokens of one chunk, axis 1)
    in place of x and returns its output's name."""
    s = length_of(e, x, 1)
    pad = padding_to(e, s, chunk)
    padded = pad_end(e, x, pad, 1, rank)
    count = e.node1("Div", e.node1("Add", s, pad), e.const(chunk))

    def one_chunk(index):
        return emit_region(block_rows(e, padded, index, chunk, 1))

    stacked = e.loop(count, one_chunk, "TokenChunks")  # (chunks, B, chunk, ...)
    tokens = e.node1("Transpose", stacked, perm=[1, 0] + list(range(2, rank + 1)))
    merged = e.node1("Reshape", tokens, e.node1("Concat", e.const([0, -1]), e.node1("Shape", tokens, start=3), axis=0))
    return e.node1("Slice", merged, e.const([0]), e.node1("Reshape", s, e.const([1])), e.const([1]))


# chunks_begin only marks where a region starts: the region is lowered at its chunks_end (lower/to_onnx.py)
register("chunks_begin", lambda e, attrs, inputs, types, label: inputs)
