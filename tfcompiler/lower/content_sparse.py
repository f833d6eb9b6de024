"""ONNX lowering of the attentions that group positions by content: Reformer's LSH attention
(chunks of positions sorted by hash bucket), the Routing Transformer's attention (the positions
nearest each centroid) and clustered attention (queries grouped by a Hamming k-means). Sorting and
top-k are TopK over the whole length, rows are moved with GatherElements and put back with
ScatterElements, clusters are one-hot MatMuls, so any length works.
"""
from __future__ import annotations

import numpy as np

from .common import gather_rows, length_of, pad_end, padding_to, reduce, repeat_heads, spaced_real
from .registry import lowers


@lowers("lsh_attention")
def lsh_attention(e, attrs, inputs, types, label):
    """Per hashing round: buckets (MatMul by the rotations, ArgMax), the sort by (bucket, position)
    as TopK over the whole padded length, GatherElements into sorted order, chunks with the chunk
    before (Slice/Concat; with look_back "rolled" the last chunk of the round before; other neighbours
    by rolling every round's chunks laid end to end, Slice/Concat per shift), masked softmax keeping
    its log-sum-exp, ScatterElements back; rounds combined by a Softmax over their log-sum-exps."""
    qk, v, rotations, *bias = inputs
    chunk, rounds, half = attrs["chunk"], types[2].shape[2], types[2].shape[3]
    width, value_width = types[0].shape[3], types[1].shape[3]
    rolled, same_bucket = attrs.get("look_back", "round") == "rolled", attrs.get("same_bucket", True)
    s = length_of(e, qk, 2)
    pad = padding_to(e, s, attrs.get("multiple", chunk))
    padded = e.node1("Add", s, pad)
    square = reduce(e, "ReduceSum", e.node1("Mul", qk, qk), [-1])
    if attrs.get("key_epsilon"):
        square = e.node1("Add", square, e.const(width * attrs["key_epsilon"], np.float32))
    keys = e.node1("Div", qk, e.node1("Max", e.node1("Sqrt", square), e.const(1e-12, np.float32)))
    positions = e.node1("Range", e.const(0), s, e.const(1))
    bias3 = per_head_bias(e, bias[0], qk, s) if bias else None
    own_bucket = bias and not attrs.get("hash_padding", False)  # else padding is hashed and only hidden as keys
    padding = e.node1("LessOrEqual", bias3, e.mask_threshold()) if own_bucket else None
    has_chunk_before = None
    if not rolled:  # the first chunk has no chunk before it: the rolled-in keys of its first half are hidden
        chunk_ids = e.node1("Range", e.const(0), e.node1("Div", padded, e.const(chunk)), e.const(1))
        first = e.node1("Reshape", e.node1("Equal", chunk_ids, e.const(0)), e.const([-1, 1, 1]))
        rolled_in = e.const((np.arange(2 * chunk) < chunk)[None, None], bool)
        has_chunk_before = e.node1("Not", e.node1("And", first, rolled_in))

    def chunks(x, last):  # sorted (B,H,P[,last]) -> (B,H,n,chunk[,last])
        return e.node1("Reshape", x, e.const([0, 0, -1, chunk] + ([last] if last is not None else [])))

    def sorted_round(r):  # the round's order and its chunks of queries, keys, values, buckets, positions, bias
        rotated = e.node1("MatMul", qk, e.node1("Gather", rotations, e.const(r), axis=2))  # (B,H,S,n/2)
        bucket = e.node1("ArgMax", e.node1("Concat", rotated, e.node1("Neg", rotated), axis=-1), axis=-1, keepdims=0)
        if padding is not None:  # padding: one more bucket, after the others
            bucket = e.node1("Where", padding, e.const(2 * half), bucket)
        sort_key = e.node1("Add", e.node1("Mul", bucket, padded), positions)
        sort_key = pad_end(e, sort_key, pad, 2, 3, e.const(np.iinfo(np.int64).max // 2))
        order = e.node(
            "TopK", [sort_key, e.node1("Reshape", padded, e.const([1]))], n_outputs=2, axis=-1, largest=0, sorted=1)[1]

        def sort(x, last, fill=None):  # (B,H,S[,last]) -> sorted (B,H,P[,last])
            x = pad_end(e, x, pad, 2, 3 if last is None else 4, fill)
            return e.node1("GatherElements", x, row_index(e, order, last), axis=2)

        parts = [chunks(sort(qk, width), width), chunks(sort(keys, width), width),
                 chunks(sort(v, value_width), value_width), chunks(sort(bucket, None, e.const(-1)), None),
                 chunks(e.node1("Where", e.node1("Less", order, s), order, e.const(-1)), None)]
        return order, parts + ([chunks(sort(bias3, None), None)] if bias3 is not None else [])

    def with_previous(x, previous):  # (B,H,n,chunk,...) -> (B,H,n,2·chunk,...): the last chunk of `previous` first
        before = e.node1("Concat", e.node1("Slice", previous, e.const([-1]), e.const([2 ** 62]), e.const([2])),
                         e.node1("Slice", x, e.const([0]), e.const([-1]), e.const([2])), axis=2)
        return e.node1("Concat", before, x, axis=3)

    def unsort(x, order, last):  # sorted (B,H,P[,last]) -> original order, (B,H,S[,last])
        back = e.node1("ScatterElements", x, row_index(e, order, last), x, axis=2)
        return e.node1("Slice", back, e.const([0]), e.node1("Reshape", s, e.const([1])), e.const([2]))

    by_round = [sorted_round(r) for r in range(rounds)]
    neighbours = (attrs.get("before", 1), attrs.get("after", 0))
    widened = [around(e, [parts[i] for _, parts in by_round], *neighbours) for i in range(1, len(by_round[0][1]))] \
        if neighbours != (1, 0) else None
    n = e.node1("Div", padded, e.const(chunk)) if widened is not None else None
    outputs, sums = [], []
    for r, (order, (cq, ck, cv, cb, cp, *cbias)) in enumerate(by_round):
        if widened is None:
            before = by_round[r - 1][1] if rolled else by_round[r][1]  # r - 1 wraps to the last round
            wk, wv, wb, wp, *wbias = (with_previous(x, y) for x, y in zip((ck, cv, cb, cp, *cbias), before[1:]))
        else:  # round r's chunks of the sequence of every round's
            start, end = (e.node1("Reshape", e.node1("Mul", n, e.const(i)), e.const([1])) for i in (r, r + 1))
            wk, wv, wb, wp, *wbias = (e.node1("Slice", x, start, end, e.const([2])) for x in widened)
        scores = e.node1("Mul", e.node1("MatMul", cq, e.node1("Transpose", wk, perm=[0, 1, 2, 4, 3])),
                         e.const(attrs["scale"], np.float32))
        if wbias:
            scores = e.node1("Add", scores, e.node1("Unsqueeze", wbias[0], e.const([3])))
        qp, kp = e.node1("Unsqueeze", cp, e.const([4])), e.node1("Unsqueeze", wp, e.const([3]))
        visible = e.node1("LessOrEqual", e.const(0), kp)
        if same_bucket:
            visible = e.node1("And", visible, e.node1("Equal", e.node1("Unsqueeze", wb, e.const([3])),
                                                      e.node1("Unsqueeze", cb, e.const([4]))))
        if has_chunk_before is not None:
            visible = e.node1("And", visible, has_chunk_before)
        if attrs["causal"]:
            visible = e.node1("And", visible, e.node1("LessOrEqual", kp, qp))
        scores = e.node1("Where", visible, scores, e.mask())
        scores = e.node1("Where", e.node1("Equal", kp, qp), e.self_mask(), scores)
        top = reduce(e, "ReduceMax", scores, [-1])
        weights = e.node1("Exp", e.node1("Sub", scores, top))
        total = reduce(e, "ReduceSum", weights, [-1])
        out = e.node1("MatMul", e.node1("Div", weights, total), wv)  # (B,H,n,chunk,Dv)
        lse = e.node1("Squeeze", e.node1("Add", e.node1("Log", total), top), e.const([4]))  # (B,H,n,chunk)
        outputs.append(e.node1("Unsqueeze", unsort(e.node1("Reshape", out, e.const([0, 0, -1, value_width])), order,
                                                   value_width), e.const([0])))
        sums.append(e.node1("Unsqueeze", unsort(e.node1("Reshape", lse, e.const([0, 0, -1])), order, None),
                            e.const([0])))
    weights = e.node1("Softmax", e.node1("Concat", *sums, axis=0) if rounds > 1 else sums[0], axis=0)
    stacked = e.node1("Concat", *outputs, axis=0) if rounds > 1 else outputs[0]
    combined = e.node1("Mul", stacked, e.node1("Unsqueeze", weights, e.const([4])))
    return [reduce(e, "ReduceSum", combined, [0], keepdims=False, label=label or "LSHAttention")]


def around(e, per_round: list[str], before: int, after: int) -> str:
    """Each round's chunks (B,H,n,chunk,...) -> all rounds' as one sequence of N chunks, each with its
    neighbours (B,H,N,(before+1+after)·chunk,...): shift k is x[k:] ++ x[:k] along the chunks, as
    Hugging Face's `_look_adjacent` slices (a shift of N or more is none)."""
    whole = e.node1("Concat", *per_round, axis=2) if len(per_round) > 1 else per_round[0]
    shifted = [whole if k == 0 else
               e.node1("Concat", e.node1("Slice", whole, e.const([k]), e.const([2 ** 62]), e.const([2])),
                       e.node1("Slice", whole, e.const([0]), e.const([k]), e.const([2])), axis=2)
               for k in range(-before, after + 1)]
    return e.node1("Concat", *shifted, axis=3) if len(shifted) > 1 else shifted[0]


def row_index(e, index: str, last: int | None) -> str:
    """Row numbers (B,H,N) -> the element index GatherElements / ScatterElements need for rows of
    `last` values along axis 2, (B,H,N,last); unchanged for rows of one value (last None)."""
    if last is None:
        return index
    return e.node1("Expand", e.node1("Unsqueeze", index, e.const([3])),
                   e.node1("Concat", e.node1("Shape", index), e.const([last]), axis=0))


def unit(e, x: str) -> str:
    """Vectors (..., D) -> x / max(‖x‖, 1e-12), as torch's F.normalize."""
    norm = e.node1("Sqrt", reduce(e, "ReduceSum", e.node1("Mul", x, x), [-1]))
    return e.node1("Div", x, e.node1("Max", norm, e.const(1e-12, np.float32)))


def per_head_bias(e, bias: str, q: str, s: str) -> str:
    """Key bias (B|1,1,1,S) -> (B,H,S), one row per head of q, to be sorted or gathered with the keys."""
    return e.node1("Expand", e.node1("Squeeze", bias, e.const([2])),
                   e.node1("Concat", e.node1("Shape", q, start=0, end=2), e.node1("Reshape", s, e.const([1])), axis=0))


def take_rows(e, x: str, index: str, last: int) -> str:
    """x (B,H,S,last), index int64 (B,H,N) -> (B,H,N,last): the rows `index` names."""
    return e.node1("GatherElements", x, row_index(e, index, last), axis=2)


def add_rows(e, shape: str, index: str, rows: str, last: int | None) -> str:
    """Zeros of `shape` (B,H,S[,last]) with `rows` (B,H,N[,last]) added at `index` (B,H,N), summed in
    fp32 in a low-precision model (a sum over many rows outgrows fp16's step, and onnxruntime's CPU
    ScatterElements has no fp16 reduction)."""
    zeros = e.node1("Expand", e.const(0.0, np.float32), shape)
    return e.node1("ScatterElements", zeros, row_index(e, index, last), e.fp32(rows), axis=2, reduction="add")


@lowers("routing_attention")
def routing_attention(e, attrs, inputs, types, label):
    """Routing by TopK of the unit vectors' centroid scores, the chosen rows gathered per centroid,
    masked softmax within each centroid, outputs and serve counts added back with
    ScatterElements(reduction=add), then averaged."""
    q, k, v, centroids, *bias = inputs
    heads, kv_heads, clusters = types[0].shape[1], types[1].shape[1], types[3].shape[1]
    width, value_width = types[0].shape[3], types[2].shape[3]
    if kv_heads != heads:
        k = repeat_heads(e, k, heads // kv_heads, heads, width)
        v = repeat_heads(e, v, heads // kv_heads, heads, value_width)
    s = length_of(e, q, 2)
    window = e.node1("Reshape", e.node1("Div", e.node1("Add", s, e.const(clusters - 1)), e.const(clusters)),
                     e.const([1]))
    to_centroids = e.node1("Transpose", centroids, perm=[0, 2, 1])
    by_content = attrs.get("padding_routing", "last") == "content"  # padding routed like any position
    padded = e.node1("LessOrEqual", bias[0], e.mask_threshold()) if bias and not by_content else None

    def route(x):  # (B,H,S,D) -> (B,H,C·w): each centroid's positions, best first, padding last
        scores = e.node1("Transpose", e.node1("MatMul", unit(e, x), to_centroids), perm=[0, 1, 3, 2])
        if padded is not None:
            scores = e.node1("Where", padded, e.mask(), scores)
        chosen = e.node("TopK", [scores, window], n_outputs=2, axis=-1, largest=1, sorted=1)[1]
        return e.node1("Reshape", chosen, e.const([0, 0, -1]))

    def per_centroid(x, last):  # (B,H,C·w[,last]) -> (B,H,C,w[,last])
        return e.node1("Reshape", x, e.const([0, 0, clusters, -1] + ([last] if last else [])))

    shared = attrs.get("shared_qk", False)
    if shared:  # the keys are the unit queries, taken where the queries are
        k = unit(e, k)
    queries = route(q)
    keys = queries if shared else route(k)
    scores = e.node1("MatMul", per_centroid(take_rows(e, q, queries, width), width),
                     e.node1("Transpose", per_centroid(take_rows(e, k, keys, width), width), perm=[0, 1, 2, 4, 3]))
    scores = e.node1("Mul", scores, e.const(attrs["scale"], np.float32))  # (B,H,C,w,w)
    visible = None
    if bias:
        key_bias = e.node1("Unsqueeze", per_centroid(e.node1("GatherElements", per_head_bias(e, bias[0], q, s), keys,
                                                             axis=2), None),
                           e.const([3]))  # (B,H,C,1,w)
        scores = e.node1("Add", scores, key_bias)
        visible = e.node1("Greater", key_bias, e.mask_threshold())
    if shared or attrs["causal"]:
        key_index, query_index = (e.node1("Unsqueeze", per_centroid(keys, None), e.const([3])),
                                  e.node1("Unsqueeze", per_centroid(queries, None), e.const([4])))
    if shared:  # a query's own key only where it sees nothing else
        scores = e.node1("Where", e.node1("Equal", key_index, query_index), e.self_mask(), scores)
    if attrs["causal"]:
        ahead = e.node1("LessOrEqual", key_index, query_index)
        visible = ahead if visible is None else e.node1("And", visible, ahead)
    values = per_centroid(take_rows(e, v, keys, value_width), value_width)
    if visible is None:
        out, served = e.node1("MatMul", e.node1("Softmax", scores, axis=-1), values), None
    elif by_content and not attrs["causal"]:  # a row with no real key: all its scores equal, the Softmax averages
        scores = e.node1("Where", visible, scores, e.mask())
        out, served = e.node1("MatMul", e.node1("Softmax", scores, axis=-1), values), None
    else:
        scores = e.node1("Where", visible, scores, e.mask())
        served = e.node1("Cast", e.node1("Greater", reduce(e, "ReduceMax", scores, [-1]),
                                         e.mask_threshold()), to=1)  # (B,H,C,w,1)
        out = e.node1("Mul", e.node1("MatMul", e.node1("Softmax", scores, axis=-1), values), served)
    rows = e.node1("Reshape", out, e.const([0, 0, -1, value_width]))
    sequence = e.node1("Shape", q, start=0, end=3)
    total = add_rows(e, e.node1("Concat", sequence, e.const([value_width]), axis=0), queries, rows, value_width)
    counts = (e.node1("Reshape", served, e.const([0, 0, -1]))
              if served is not None else e.node1("Expand", e.const(1.0, np.float32), e.node1("Shape", queries)))
    count = add_rows(e, sequence, queries, counts, None)
    count = e.node1("Unsqueeze", e.node1("Max", count, e.const(1.0, np.float32)), e.const([3]))
    return [e.node1("Div", total, count, label=label or "RoutingAttention")]


@lowers("clustered_attention")
def clustered_attention(e, attrs, inputs, types, label):
    """Hashes by MatMul and a sign, the Hamming k-means unrolled (MatMul agreements, ArgMax, one-hot
    memberships, MatMul votes), mean cluster queries by MatMul, one attention per cluster, and each
    query's cluster output taken by a one-hot MatMul."""
    q, k, v, planes, *bias = inputs
    heads, kv_heads = types[0].shape[1], types[1].shape[1]
    width, value_width = types[0].shape[3], types[2].shape[3]
    clusters, iterations = attrs["clusters"], attrs["iterations"]
    if kv_heads != heads:
        k = repeat_heads(e, k, heads // kv_heads, heads, width)
        v = repeat_heads(e, v, heads // kv_heads, heads, value_width)
    one, minus_one = e.const(1.0, np.float32), e.const(-1.0, np.float32)
    hashes = e.node1("Where", e.node1("GreaterOrEqual", e.node1("MatMul", q, planes), e.const(0.0, np.float32)),
                     one, minus_one)  # (B,H,S,bits)
    real = (e.node1("Cast", e.node1("Greater", e.node1("Transpose", bias[0], perm=[0, 1, 3, 2]),
                                    e.mask_threshold()), to=1) if bias else None)  # (B|1,1,S,1)
    if real is None:
        starts = e.node1("Div", e.node1("Mul", e.const(np.arange(clusters)), length_of(e, q, 2)), e.const(clusters))
        centroids = e.node1("Gather", hashes, starts, axis=2)  # (B,H,C,bits)
    else:  # evenly spaced real queries
        starts = spaced_real(e, e.node1("Cast", e.node1("Squeeze", real, e.const([1, 3])), to=7), clusters)
        centroids = gather_rows(e, hashes, starts, types[3].shape[1])  # (B,H,C,bits)
    ids = e.const(np.arange(clusters))

    def assign(centroids):  # -> (B,H,S,C) one-hot nearest centroid, the first of equals
        agreement = e.node1("MatMul", hashes, e.node1("Transpose", centroids, perm=[0, 1, 3, 2]))
        nearest = e.node1("ArgMax", agreement, axis=-1, keepdims=1)
        return e.node1("Cast", e.node1("Equal", nearest, ids), to=1)

    def real_members(assignment):
        return assignment if real is None else e.node1("Mul", assignment, real)

    for _ in range(iterations):
        members = real_members(assign(centroids))
        votes = e.node1("MatMul", e.node1("Transpose", members, perm=[0, 1, 3, 2]), hashes)  # (B,H,C,bits)
        majority = e.node1("Where", e.node1("GreaterOrEqual", votes, e.const(0.0, np.float32)), one, minus_one)
        counts = e.node1("Transpose", reduce(e, "ReduceSum", members, [2]), perm=[0, 1, 3, 2])  # (B,H,C,1)
        centroids = e.node1("Where", e.node1("Greater", counts, e.const(0.0, np.float32)), majority, centroids)
    assignment = assign(centroids)
    members = real_members(assignment)
    counts = e.node1("Transpose", reduce(e, "ReduceSum", members, [2]), perm=[0, 1, 3, 2])
    cluster_queries = e.node1("Div", e.node1("MatMul", e.node1("Transpose", members, perm=[0, 1, 3, 2]), q),
                              e.node1("Max", counts, one))  # (B,H,C,Dh)
    scores = e.node1("Mul", e.node1("MatMul", cluster_queries, e.node1("Transpose", k, perm=[0, 1, 3, 2])),
                     e.const(attrs["scale"], np.float32))
    if bias:
        scores = e.node1("Add", scores, bias[0])
    out = e.node1("MatMul", e.node1("Softmax", scores, axis=-1), v)  # (B,H,C,Dv)
    return [e.node1("MatMul", assignment, out, label=label or "ClusteredAttention")]
