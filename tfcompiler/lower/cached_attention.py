"""ONNX lowering of cached_attention (tfcompiler.ir.ops.cached_attention): onnxruntime's
GroupQueryAttention where the target lists it, else the chain the op stands for, op by op.

GroupQueryAttention takes the keys' padding as `attention_bias` (B, 1, S, T) and counts every cached
position as filled (`seqlens_k` = T - 1 for each row, `query_seqlens` = S), so a left-padded row is
exact and a chunk after a past works at any batch size; it applies the causal mask itself. Rotary
positions go through com.microsoft RotaryEmbedding on the token-major (B, S, H·Dh) tensors first: the
kernel's own rotary counts a prompt's positions from its first column, which a left-padded row does
not. The kernel writes the new keys after the past ones into `present`, in the past's own buffer when
the caller binds both to one preallocated tensor (tfc_runtime does: a step then copies no cache).
"""
from __future__ import annotations

from onnx import TensorProto

from ..ir.ops import infer_types
from .positions import rope_tables
from .registry import EMITTERS, lowers

HEADS_FIRST = [0, 2, 1, 3]


@lowers("cached_attention")
def cached_attention(e, attrs, inputs, types, label):
    if e.can("GroupQueryAttention"):
        return group_query_attention(e, attrs, inputs, types, label)
    return standard_chain(e, attrs, inputs, types, label)


def group_query_attention(e, attrs, inputs, types, label):
    q, k, v, past_key, past_value, bias, *positions = inputs
    if attrs["rope"] is not None:
        rope = dict(attrs["rope"])
        cos, sin = rope_tables(e, rope)
        width = types[3].shape[3]

        def rotate(x, heads, name):
            return e.node1("RotaryEmbedding", x, positions[0], cos, sin, domain="com.microsoft", label=name,
                           interleaved=int(rope["interleaved"]), num_heads=heads,
                           rotary_embedding_dim=rope["rotary_dim"] if rope["rotary_dim"] < width else 0)

        q, k = rotate(q, attrs["heads"], "RotaryQuery"), rotate(k, attrs["kv_heads"], "RotaryKey")
    lengths = kernel_lengths(e, q, bias)
    return e.node("GroupQueryAttention", [q, k, v, past_key, past_value, lengths["seqlens_k"], lengths["total"], "",
                                          "", "", lengths["bias"], "", "", "", "", "", lengths["query_seqlens"]],
                  n_outputs=3, domain="com.microsoft", label=label or "GroupQueryAttention",
                  num_heads=attrs["heads"], kv_num_heads=attrs["kv_heads"], scale=float(attrs["scale"]))


def kernel_lengths(e, q: str, bias: str) -> dict[str, str]:
    """The kernel's length inputs and its (B, 1, S, T) bias, made once for every layer."""
    key = ("group query lengths", bias)  # every layer's queries have the same (B, S)
    if key in e.memo:
        return e.memo[key]
    int32 = TensorProto.INT32
    batch, length = e.node1("Shape", q, start=0, end=1), e.node1("Shape", q, start=1, end=2)
    total = e.node1("Shape", bias, start=3, end=4)  # (1,): past + new
    seqlens = e.node1("Expand", e.node1("Cast", e.node1("Sub", total, e.const([1])), to=int32), batch)
    whole = e.node1("Concat", e.node1("Shape", bias, start=0, end=2), length, total, axis=0)
    e.memo[key] = {"seqlens_k": seqlens, "total": e.node1("Cast", e.node1("Squeeze", total, e.const([0])), to=int32),
                   "query_seqlens": e.node1("Expand", e.node1("Cast", length, to=int32), batch),
                   "bias": e.node1("Expand", bias, whole, label="PaddingBiasRows")}
    return e.memo[key]


def standard_chain(e, attrs, inputs, types, label):
    """The chain cached_attention replaced: split heads, rotate, append to the past, attend, merge."""
    q, k, v, past_key, past_value, bias, *positions = inputs
    q_type, k_type, v_type, past_type, _, bias_type, *position_types = types
    width = past_type.shape[3]

    def emit(op, attrs_, values, value_types, name=""):
        (out,) = EMITTERS[op](e, attrs_, values, value_types, name)
        return out, infer_types(op, attrs_, value_types)[0]

    def heads(x, x_type, count, name):
        reshape = {"shape": (0, 0, count, width)}
        x, x_type = emit("reshape", reshape, [x], [x_type])
        x, x_type = emit("transpose", {"perm": tuple(HEADS_FIRST)}, [x], [x_type])
        if attrs["rope"] is not None and name:
            x, x_type = emit("rope", dict(attrs["rope"]), [x, positions[0]], [x_type, position_types[0]], name)
        return x, x_type

    q, q_heads = heads(q, q_type, attrs["heads"], "RotaryQuery")
    k, k_heads = heads(k, k_type, attrs["kv_heads"], "RotaryKey")
    v, v_heads = heads(v, v_type, attrs["kv_heads"], "")
    keys, keys_type = emit("concat", {"axis": 2}, [past_key, k], [past_type, k_heads], "CacheKey")
    values, values_type = emit("concat", {"axis": 2}, [past_value, v], [past_type, v_heads], "CacheValue")
    attention = {"causal": True, "scale": attrs["scale"], "softcap": 0.0}
    context, context_type = emit("attention", attention, [q, keys, values, bias],
                                 [q_heads, keys_type, values_type, bias_type], label)
    context, context_type = emit("transpose", {"perm": tuple(HEADS_FIRST)}, [context], [context_type])
    merged, _ = emit("reshape", {"shape": (0, 0, attrs["heads"] * width)}, [context], [context_type])
    return [merged, keys, values]
