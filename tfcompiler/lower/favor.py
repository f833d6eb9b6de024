"""ONNX lowering of FAVOR+ attention (tfcompiler.ir.ops.favor). Bidirectional, it takes the keys and
then the queries by chunks of FAVOR_CHUNK tokens, one chunk per `Loop` iteration: each key chunk's
features give its share of Σ φ(k) vᵀ and Σ φ(k) (summed after the Loop), each query chunk's features
read them; each key chunk is stabilised by its own maximum and its shares rescaled to the maximum of
all after the Loop. So the (B,H,S,m) features and projections never exist for the whole sequence.
Causal, the features are computed whole and the causal linear attention lowering takes them
(chunked sums, or onnxruntime's LinearAttention); stateful (a decoder's cache), per query head, the keys
stabilised by the running maximum and the past sums rescaled to it. Low-precision models compute it in fp32.
The conventions (tfcompiler.ir.ops.favor): the kernel ε is added to the whole features, and bidirectionally,
the chunks' features being stabilised each by its own maximum, as ε Σ v and ε T after the Loop; with padded
keys in the normaliser their values are zeroed instead of their features; the normaliser's δ is added to
Σ φ(k) bidirectionally, and causal, it starts the running key sum (zeros else).
"""
from __future__ import annotations

import math

import numpy as np

from ..ir.ops.favor import EMPTY, PAPER_CONVENTIONS, split_inputs
from .common import ONNX_DTYPES, block_rows, length_of, pad_end, padding_to, reduce, repeat_heads, unstack_blocks
from .linear_attention import emit_linear_attention
from .registry import lowers

# Tokens per Loop iteration: at 4096 tokens (width 256, 4 heads, 256 features, FFN chunked) a layer
# peaks at 27 MiB against 67 MiB with the features of all tokens at once, in 64 against 66 ms (27 MiB
# and 66 ms for 256, 31 MiB and 65 ms for 1024); each iteration costs about 0.3 ms here
FAVOR_CHUNK = 512


@lowers("favor_attention")
def emit_favor_attention(e, attrs, inputs, types, label):
    (q, k, v, features), bias, past = split_inputs(attrs, inputs)
    epsilon, padded_keys, delta = (attrs.get(name, paper) for name, paper in PAPER_CONVENTIONS.items())
    # in fp16 the features exp(w·k - c) of keys far below the stabiliser c underflow (below e^-17), and
    # a causal prefix whose keys all do has a zero normaliser: the kernel computes in fp32
    q, k, v = e.fp32(q), e.fp32(k), e.fp32(v)
    past = [e.fp32(x) for x in past]  # the sums too, or adding them would bring the region back to fp16
    (_, heads, _, width), kv_heads, value_width = types[0].shape, types[1].shape[1], types[2].shape[3]
    m = types[3].shape[0]
    if kv_heads != heads and (past or not attrs["causal"]):
        k = repeat_heads(e, k, heads // kv_heads, heads, width)
        v = repeat_heads(e, v, heads // kv_heads, heads, value_width)
    # x' = x / Dh^¼ folded into the weights, (Dh, m), and into the half squared norm
    weights = e.node1("Mul", e.node1("Transpose", features, perm=[1, 0]), e.const(width ** -0.25, np.float32))

    def phi(x, projected, stabiliser):  # exp(W x' - |x'|²/2 - c) / √m for x (.., Dh)
        half_norm = e.const(0.5 / math.sqrt(width), np.float32)
        shift = e.node1("Mul", reduce(e, "ReduceSum", e.node1("Mul", x, x), [-1]), half_norm)
        shift = e.node1("Add", e.node1("Add", shift, stabiliser), e.const(0.5 * math.log(m), np.float32))
        return e.node1("Exp", e.node1("Sub", projected, shift))

    def with_epsilon(phi_x):  # + ε/√m, the kernel ε after the stabiliser
        return e.node1("Add", phi_x, e.const(epsilon / math.sqrt(m), np.float32)) if epsilon else phi_x

    def query_features(x):
        projected = e.node1("MatMul", x, weights)
        return with_epsilon(phi(x, projected, reduce(e, "ReduceMax", projected, [-1])))

    keep = None
    if bias:  # (B|1,1,1,T) -> (B|1,1,T,1): 1 for a real key
        real = e.node1("Cast", e.node1("Equal", bias[0], e.const(0.0, np.float32)), to=ONNX_DTYPES["float32"])
        keep = e.node1("Transpose", real, perm=[0, 1, 3, 2])
    if keep is not None and padded_keys == "normaliser":  # values dropped, features still counted in Σ φ(k)
        v, keep = e.node1("Mul", v, keep), None
    if attrs["causal"]:
        projected = e.node1("MatMul", k, weights)
        stabiliser = reduce(e, "ReduceMax", projected, [2, 3])  # (B,H,1,1)
        if past:  # the running maximum; the past sums rescaled to it
            last_max = e.node1("Unsqueeze", past[2], e.const([2, 3]))
            stabiliser = e.node1("Max", stabiliser, last_max)
            rescale = e.node1("Exp", e.node1("Sub", last_max, stabiliser))
            past = [e.node1("Mul", past[0], rescale),
                    e.node1("Mul", past[1], e.node1("Squeeze", rescale, e.const([3])))]
        phi_k = with_epsilon(phi(k, projected, stabiliser))
        if keep is not None:
            phi_k = e.node1("Mul", phi_k, keep)
        if delta:  # δ starts the running key sum, the past sums of the one call (never a cache's: see the op)
            phi_k, v, kv_heads = (repeat_heads(e, phi_k, heads // kv_heads, heads, m),
                                  repeat_heads(e, v, heads // kv_heads, heads, value_width), heads)
            past = zero_sums(e, q, heads, m, value_width)
            past[1] = e.node1("Add", past[1], e.const(delta, np.float32))
        key_heads = heads if past else kv_heads  # stateful, the keys and values were repeated per query head
        key_types = [t.with_shape(t.shape[:1] + (key_heads,) + t.shape[2:3] + last) for t, last in
                     ((types[1], (m,)), (types[2], types[2].shape[3:]))]
        out = emit_linear_attention(e, {"causal": True, "eps": EMPTY, "stateful": bool(past)},
                                    [query_features(q), phi_k, v, *past],
                                    [types[0].with_shape(types[0].shape[:3] + (m,))] + key_types,
                                    label or "FavorAttention")
        if not attrs.get("stateful"):
            return out[:1]
        return out + [e.node1("Squeeze", stabiliser, e.const([2, 3]))]

    def rows(x, index):  # chunk `index` of x along axis 2 (the last one may be shorter)
        return block_rows(e, x, index, FAVOR_CHUNK, 2)

    def chunks(length):
        return e.node1("Div", e.node1("Add", length, e.const(FAVOR_CHUNK - 1)), e.const(FAVOR_CHUNK))

    # each key chunk stabilised by its own maximum c_j, then rescaled by exp(c_j - c) to the maximum over
    # every key and feature (the same features: exp(p - c) = exp(p - c_j) exp(c_j - c))
    def key_chunk(index):  # its share of Σ φ(k) vᵀ (B,H,m,Dv) and of Σ φ(k) (B,H,m,1), and c_j (B,H,1,1)
        chunk = rows(k, index)
        projected = e.node1("MatMul", chunk, weights)
        local_max = reduce(e, "ReduceMax", projected, [2, 3])
        phi_k = phi(chunk, projected, local_max)
        if keep is not None:
            phi_k = e.node1("Mul", phi_k, rows(keep, index))
        phi_t = e.node1("Transpose", phi_k, perm=[0, 1, 3, 2])
        return [e.node1("MatMul", phi_t, rows(v, index)), reduce(e, "ReduceSum", phi_t, [3]), local_max]

    kv_parts, z_parts, maxima = e.loop(chunks(length_of(e, k, 2)), key_chunk, "FavorKeys", results=3)
    rescale = e.node1("Exp", e.node1("Sub", maxima, reduce(e, "ReduceMax", maxima, [0])))  # (n, B,H,1,1)
    kv, z = (reduce(e, "ReduceSum", e.node1("Mul", x, rescale), [0], keepdims=False) for x in (kv_parts, z_parts))
    if epsilon:  # each key's ε/√m on every feature: ε/√m Σ v to Σ φ(k) vᵀ, ε/√m (keys counted) to Σ φ(k)
        share = e.const(epsilon / math.sqrt(m), np.float32)
        counted = reduce(e, "ReduceSum", keep, [2]) if keep is not None else e.node1(
            "Cast", length_of(e, k, 2), to=ONNX_DTYPES["float32"])
        real_values = v if keep is None else e.node1("Mul", v, keep)
        kv = e.node1("Add", kv, e.node1("Mul", reduce(e, "ReduceSum", real_values, [2]), share))
        z = e.node1("Add", z, e.node1("Mul", counted, share))
    if delta:
        z = e.node1("Add", z, e.const(delta, np.float32))

    s = length_of(e, q, 2)  # the queries padded to whole chunks: the Loop stacks equal chunks
    q_rows = pad_end(e, q, padding_to(e, s, FAVOR_CHUNK), 2, 4)

    def query_chunk(index):
        phi_q = query_features(rows(q_rows, index))
        return e.node1("Div", e.node1("MatMul", phi_q, kv), e.node1("MatMul", phi_q, z))

    out = e.loop(chunks(s), query_chunk, "FavorQueries")  # (n, B, H, chunk, Dv)
    return [unstack_blocks(e, out, value_width, s, label or "FavorAttention")]


def zero_sums(e, q, heads: int, m: int, value_width: int) -> list:
    """Zero running sums Σ φ(k) vᵀ (B,H,m,Dv) and Σ φ(k) (B,H,m) for the batch of q."""
    batch = e.node1("Shape", q, start=0, end=1)
    return [e.node1("ConstantOfShape", e.node1("Concat", batch, e.const(list(shape)), axis=0))
            for shape in ((heads, m, value_width), (heads, m))]
