"""Fuse a cached decoder's self-attention chain into one canonical cached_attention op:

    x ─ reshape ─ transpose ─ [rope] ─────────────────────┐
    y ─ reshape ─ transpose ─ [rope] ─ concat(past_key) ──┼─ attention ─ transpose ─ reshape ─ out
    z ─ reshape ─ transpose ───────── concat(past_value) ─┘  (causal, key padding bias)
                                        └─ present.N.key / .value
  =>
    x, y, z, past_key, past_value, bias[, positions] ─ cached_attention ─ out, present key, present value

The op lowers to onnxruntime's GroupQueryAttention where the target's capability table lists it (one
kernel that appends to the cache, in place when the caller binds the past and the present to one
buffer, and attends), and to the chain's own standard ops elsewhere. Only the exact chain fuses:
dense causal attention whose one bias is the key padding, the cache not cut to a window, the queries
and keys rotated alike or not at all, nothing else reading the intermediate values. Ensures: no
attention that matches is left.
"""
from __future__ import annotations

from ..ir.graph import Graph, Value
from .base import ContractError, Pass, PassResult
from .matching import Match, misses
from .report import span

HEADS_FIRST = (0, 2, 1, 3)


def match_cached_attention(graph: Graph, node: int) -> Match:
    """An attention at the end of the chain in the module docstring: binds its parts."""
    op = graph.op(node)
    inputs = graph.inputs_of(node)
    if not op.attrs.get("causal") or op.attrs.get("softcap") or op.attrs.get("pattern") is not None:
        return Match.fail("not dense causal attention")
    if len(inputs) != 4 or graph.op(inputs[3].node).type != "padding_bias":
        return Match.fail("its scores take a bias besides the key padding")
    q, keys, values, bias = inputs
    pasts, news = [], []
    for total, role in ((keys, "past_key"), (values, "past_value")):
        concat = graph.op(total.node)
        if concat.type != "concat" or concat.attrs.get("axis") != 2:
            return Match.fail("its keys and values are not a cache's past followed by the new ones")
        past, new = graph.inputs_of(total.node)
        if graph.op(past.node).type != "input" or graph.op(past.node).attrs.get("role") != role:
            return Match.fail("its keys and values are not a cache's past followed by the new ones")
        if any(user != node for user, _ in graph.users(total)):
            return Match.fail("its cache is read by more than the attention (a window cuts it)")
        pasts.append(past)
        news.append(new)
    rope_q, query = rotated(graph, q)
    rope_k, key = rotated(graph, news[0])
    value = split_from(graph, news[1])
    if rope_q != rope_k or None in (query, key, value) or query[1] != key[1]:
        return Match.fail("its queries and keys are not split heads rotated alike")
    output = merged_by(graph, Value(node, 0))
    if output is None:
        return Match.fail("its result is read before its heads are merged")
    return Match.of(q=query[0], k=key[0], v=value, pasts=pasts, bias=bias, rope=rope_q, output=output,
                    positions=query[1], heads=graph.type_of(q).shape[1], kv_heads=graph.type_of(keys).shape[1])


def rotated(graph: Graph, value: Value):
    """(rope attrs or None, ((B, S, H·Dh) before the split, positions) or None)."""
    op = graph.op(value.node)
    if op.type != "rope":
        split = split_from(graph, value)
        return None, (split, None) if split is not None else None
    attrs = tuple(sorted(op.attrs.items()))
    if len(graph.users(value)) != 1:
        return attrs, None
    x, positions = graph.inputs_of(value.node)
    split = split_from(graph, x)
    return attrs, (split, positions) if split is not None else None


def split_from(graph: Graph, value: Value) -> Value | None:
    """The (B, S, H·Dh) value that reshape + transpose split into heads to make `value`, or None."""
    transpose = graph.op(value.node)
    if transpose.type != "transpose" or tuple(transpose.attrs["perm"]) != HEADS_FIRST:
        return None
    (reshaped,) = graph.inputs_of(value.node)
    reshape = graph.op(reshaped.node)
    if reshape.type != "reshape" or len(reshape.attrs["shape"]) != 4 or tuple(reshape.attrs["shape"][:2]) != (0, 0):
        return None
    if len(graph.users(value)) != 1 or len(graph.users(reshaped)) != 1:
        return None
    return graph.inputs_of(reshaped.node)[0]


def merged_by(graph: Graph, value: Value) -> Value | None:
    """The (B, S, H·Dh) value that transpose + reshape merge `value`'s heads into, or None."""
    users = graph.users(value)
    if len(users) != 1 or graph.op(users[0][0]).type != "transpose":
        return None
    transpose = users[0][0]
    if tuple(graph.op(transpose).attrs["perm"]) != HEADS_FIRST:
        return None
    users = graph.users(Value(transpose, 0))
    if len(users) != 1 or graph.op(users[0][0]).type != "reshape" or len(graph.op(users[0][0]).attrs["shape"]) != 3:
        return None
    return Value(users[0][0], 0)


class FuseCachedAttention(Pass):
    name = "fuse_cached_attention"
    description = "a cached decoder's split heads, rotary, cache append and attention as one op"
    after = {"pack_projections": "it splits the packed projection the fused op reads"}
    before = {"eliminate_dead_code": "the chain it replaces is left dead for it"}

    def rewrite(self, graph: Graph) -> PassResult:
        fused, failed = [], []
        for node in graph.by_type("attention"):
            if graph.op(graph.inputs_of(node)[1].node).type != "concat":
                continue  # keys not appended to a past: no cache, nothing this pass is for
            match = match_cached_attention(graph, node)
            if match:
                fuse(graph, node, match.bound)
                fused.append(graph.op(node).origin)
            else:
                failed.append((graph.op(node).origin, match.reason))
        if not fused:
            why = misses(failed, "attention(s)") if failed else ["no attention reads a KV cache"]
            return PassResult(graph, False, ["nothing to fuse: no cached attention chain"] + why)
        return PassResult(graph, True, [f"fused {len(fused)} cached attention chain(s) at {span(fused)}"]
                          + misses(failed, "attention(s)"))

    def ensures(self, graph: Graph) -> None:
        for node in graph.by_type("attention"):
            if match_cached_attention(graph, node):
                raise ContractError("a cached attention chain is left unfused", graph.op(node).origin)


def fuse(graph: Graph, node: int, bound: dict) -> None:
    """Put cached_attention in the chain's place; the presents and the merged output move to it."""
    op = graph.op(node)
    keys, values = graph.inputs_of(node)[1:3]
    inputs = [bound["q"], bound["k"], bound["v"], *bound["pasts"], bound["bias"]]
    if bound["rope"] is not None:
        inputs.append(bound["positions"])
    outputs = graph.add("cached_attention", inputs,
                        dict(heads=bound["heads"], kv_heads=bound["kv_heads"], scale=op.attrs["scale"],
                             rope=bound["rope"]), op.origin, "CachedAttention", op.rewritten_by)
    graph.replace_all_uses(bound["output"], outputs[0])
    graph.replace_all_uses(keys, outputs[1])
    graph.replace_all_uses(values, outputs[2])
