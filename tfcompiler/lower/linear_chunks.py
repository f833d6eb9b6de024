"""ONNX lowering of causal linear attention in chunks: exact, with memory linear in the length and
independent of the feature and value widths' product.

The running sums S_t = Σ_{j<=t} w_tj φ(k_j) v_jᵀ are never stored per position (CumSum of outer
products costs S·F·Dv). The sequence is padded to whole chunks of c positions; inside a chunk the
weights w_tj (causal, and with a gate exp(L_t - L_j)(1 - g_j) where L is the chunk's running sum
of log g) multiply the chunk's scores φ(q_t)·φ(k_j) directly (S·c); each chunk's keys are summed
into one F x Dv state, and the states reach later chunks through an n x n matrix of chunk decays
(strictly lower triangular; exp of differences of running log-gate sums, never of the sums
themselves, so nothing overflows), decayed to each position by exp(L_t). All without a loop:
MatMul, CumSum, Exp. From past sums (a decoder's cache) every chunk also receives them, decayed by
the gates since the call's start, and the sums after the last position are returned too; chunks are
then min(S, 64) long, so a decoding step computes its one position, and the gate logits pad the last
chunk with a large value, whose steps keep the sums (σ = 1) and admit nothing.
"""
from __future__ import annotations

import numpy as np

from .common import length_of, pad_end, padding_to, reduce

CHUNK = 64
KEEP_ALL = 1e4  # a gate logit whose step keeps the sums whole in fp32: log σ and 1 - σ round to 0


def causal_linear_attention(e, q, k, v, gate, eps, widths: tuple[int, int], label: str, past: list = ()):
    """q, k (B,H,S,F), v (B,H,S,Dv), gate logits (B,H,S) or None -> (B,H,S,Dv); from ``past`` sums
    [S (B,H,F,Dv), z (B,H,F)], (output, S, z) with the sums after the last position."""
    features, value_width = widths
    s = length_of(e, q, 2)
    tril = np.tril(np.ones((CHUNK, CHUNK), bool))  # key j <= query t inside a chunk
    if past:  # a decoding step computes its own positions, not a chunk of 64: chunks of min(S, 64)
        c = e.node1("Max", e.node1("Min", s, e.const(CHUNK)), e.const(1))
        pad = e.node1("Mod", e.node1("Sub", c, e.node1("Mod", s, c)), c)
        c_1d = e.node1("Reshape", c, e.const([1]))
    else:
        c = CHUNK
        pad = padding_to(e, s, c)

    def chunks(x, last, value=None):  # (B,H,S[,last]) -> (B,H,n,c[,last]), padded with zeros or `value`
        padded = pad_end(e, x, pad, 2, 3 if last is None else 4, value)
        tail = [] if last is None else [last]
        shape = e.node1("Concat", e.const([0, 0, -1]), c_1d, *([e.const(tail)] if tail else []), axis=0) if past \
            else e.const([0, 0, -1, c] + tail)
        return e.node1("Reshape", padded, shape)

    def transpose(x):  # swap the last two axes of a 5-D tensor
        return e.node1("Transpose", x, perm=[0, 1, 2, 4, 3])

    qc, kc, vc = chunks(q, features), chunks(k, features), chunks(v, value_width)
    up_to = e.const(tril, bool)
    if past:
        up_to = e.node1("Slice", up_to, e.const([0, 0]), e.node1("Concat", c_1d, c_1d, axis=0), e.const([0, 1]))
    n = e.node1("Div", e.node1("Add", s, pad), c if past else e.const(c))
    blocks = e.node1("Range", e.const(0), n, e.const(1))
    earlier = e.node1("Less", e.node1("Unsqueeze", blocks, e.const([0])), e.node1("Unsqueeze", blocks, e.const([1])))
    if gate is None:
        weights = e.node1("Cast", up_to, to=1)
        carried = e.node1("Cast", earlier, to=1)  # chunk b' < b reaches chunk b undecayed
        summed_keys, entry_decay = kc, None
    else:
        logits = chunks(gate, None, e.const(KEEP_ALL, np.float32) if past else None)
        log_gate = e.node1("Neg", e.node1("Softplus", e.node1("Neg", logits)))  # log σ(a)
        admit = e.node1("Sigmoid", e.node1("Neg", logits))  # 1 - σ(a)
        running = e.node1("CumSum", log_gate, e.const(3))  # L_t, (B,H,n,c)
        minus_inf = e.const(-np.inf, np.float32)
        pair = e.node1("Sub", e.node1("Unsqueeze", running, e.const([4])), e.node1("Unsqueeze", running, e.const([3])))
        weights = e.node1("Mul", e.node1("Exp", e.node1("Where", up_to, pair, minus_inf)),
                          e.node1("Unsqueeze", admit, e.const([3])))
        last = e.node1("Slice", running, e.const([-1]), e.const([2 ** 62]), e.const([3]))  # (B,H,n,1)
        to_end = e.node1("Mul", e.node1("Exp", e.node1("Sub", last, running)), admit)  # key j to its chunk's end
        summed_keys = e.node1("Mul", kc, e.node1("Unsqueeze", to_end, e.const([4])))
        chunk_log = e.node1("Squeeze", last, e.const([3]))  # (B,H,n)
        ends = e.node1("CumSum", chunk_log, e.const(2))
        between = e.node1("Sub", e.node1("Unsqueeze", e.node1("Sub", ends, chunk_log), e.const([3])),
                          e.node1("Unsqueeze", ends, e.const([2])))  # from chunk b''s end to chunk b's start
        carried = e.node1("Exp", e.node1("Where", earlier, between, minus_inf))
        entry_decay = e.node1("Unsqueeze", e.node1("Exp", running), e.const([4]))  # chunk start to t
    scores = e.node1("Mul", e.node1("MatMul", qc, transpose(kc)), weights)  # (B,H,n,c,c)
    numerator = e.node1("MatMul", scores, vc)
    denominator = reduce(e, "ReduceSum", scores, [-1])
    chunk_states = e.node1("MatMul", transpose(summed_keys), vc)  # (B,H,n,F,Dv)
    states = e.node1("Reshape", e.node1("MatMul", carried, e.node1("Reshape", chunk_states, e.const([0, 0, 0, -1]))),
                     e.const([0, 0, 0, features, value_width]))
    chunk_normalisers = reduce(e, "ReduceSum", summed_keys, [3], keepdims=False)  # (B,H,n,F)
    normalisers = e.node1("MatMul", carried, chunk_normalisers)
    if past:  # the past sums reach chunk b decayed by the gates before it: exp(ends_b - log_b)
        start_decay = None if gate is None else e.node1("Exp", e.node1("Sub", ends, chunk_log))  # (B,H,n)
        states = e.node1("Add", states, decayed(e, past[0], start_decay, 2))
        normalisers = e.node1("Add", normalisers, decayed(e, past[1], start_decay, 1))
    from_before = e.node1("MatMul", qc, states)
    before_total = e.node1("MatMul", qc, e.node1("Unsqueeze", normalisers, e.const([4])))
    if entry_decay is not None:
        from_before = e.node1("Mul", from_before, entry_decay)
        before_total = e.node1("Mul", before_total, entry_decay)
    out = e.node1("Div", e.node1("Add", numerator, from_before),
                  e.node1("Add", e.node1("Add", denominator, before_total), eps))
    out = e.node1("Reshape", out, e.const([0, 0, -1, value_width]))
    out = e.node1("Slice", out, e.const([0]), e.node1("Reshape", s, e.const([1])), e.const([2]),
                  label=label or "LinearAttention")
    if not past:
        return out
    # the sums after the last position: each chunk's own decayed from its end to the last one's, and
    # the past ones decayed over the whole call
    own, past = [chunk_states, chunk_normalisers], list(past)
    if gate is not None:
        total = e.node1("Slice", ends, e.const([-1]), e.const([2 ** 62]), e.const([2]))  # (B,H,1)
        to_end = e.node1("Exp", e.node1("Sub", total, ends))  # (B,H,n)
        own = [e.node1("Mul", chunk_states, e.node1("Unsqueeze", to_end, e.const([3, 4]))),
               e.node1("Mul", chunk_normalisers, e.node1("Unsqueeze", to_end, e.const([3])))]
        whole = e.node1("Exp", total)
        past = [e.node1("Mul", past[0], e.node1("Unsqueeze", whole, e.const([3]))), e.node1("Mul", past[1], whole)]
    sums, normalisers = (e.node1("Add", p, reduce(e, "ReduceSum", x, [2], keepdims=False)) for p, x in zip(past, own))
    return out, sums, normalisers


def decayed(e, past, decay, trailing: int):
    """Past sums (B,H,F[,Dv]) as every chunk's (B,H,1|n,F[,Dv]): times decay (B,H,n) when gated."""
    past = e.node1("Unsqueeze", past, e.const([2]))
    if decay is None:
        return past
    return e.node1("Mul", past, e.node1("Unsqueeze", decay, e.const(list(range(3, 3 + trailing)))))
