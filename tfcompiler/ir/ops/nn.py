"""Canonical neural-network ops the spec names directly: softmax, layer_norm, rms_norm, skip_norm, attention,
padding_bias. Kept whole in the IR so lowering can pick fused kernels per target.

Attention also has an explicit form for the variants that act on its scores or probabilities
(talking heads, residual scores, Shaw's value term): attention_scores -> (biases, masks) ->
softmax -> attention_context. `attention` equals that chain with one additive bias."""
from __future__ import annotations

import numpy as np

from ..types import TensorType, broadcast_shapes
from .registry import OpTypeError, register

MASKED = np.finfo(np.float32).min  # the additive bias of a masked key (HF convention, never -inf)


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    shifted = x - x.max(axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=axis, keepdims=True)


def spaced_real(real: np.ndarray, count: int) -> np.ndarray:
    """(B, S) bool -> (B, count) the positions of the ⌊r·n/count⌋-th real entries (n real in a
    row): evenly spaced over what is not padding (position 0 in a row without any)."""
    targets = (np.arange(count) * real.sum(-1, keepdims=True)) // count
    return np.argmax(np.cumsum(real, -1)[:, None, :] > targets[:, :, None], axis=-1)


def rows_of(x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """x (B,H,S,D), rows (B|1, N) -> (B,H,N,D): the same rows for every head."""
    index = np.broadcast_to(rows[:, None, :, None], x.shape[:2] + (rows.shape[1], x.shape[3]))
    return np.take_along_axis(x, index, axis=2)


def _norm_infer(attrs, types):
    x, *params = types
    for p in params:
        if p.shape != x.shape[-1:]:
            raise OpTypeError(f"norm parameter {p} does not match the last dim of {x}")
    return [x]


def _layer_norm(attrs, x, scale, bias=None):
    x64 = x.astype(np.float64)
    mean = x64.mean(-1, keepdims=True)
    var = ((x64 - mean) ** 2).mean(-1, keepdims=True)
    y = (x64 - mean) / np.sqrt(var + attrs["epsilon"]) * scale
    return [(y if bias is None else y + bias).astype(x.dtype)]


def _rms_norm(attrs, x, scale):
    x64 = x.astype(np.float64)
    y = x64 / np.sqrt((x64 ** 2).mean(-1, keepdims=True) + attrs["epsilon"]) * scale
    return [y.astype(x.dtype)]


def _skip_norm_infer(attrs, types):
    x, skip, *params = types
    if x != skip:
        raise OpTypeError(f"skip_norm adds equal types, got {x} and {skip}")
    return _norm_infer(attrs, [x, *params]) * 2


def _skip_norm(attrs, x, skip, *params):
    total = x + skip
    norm = _layer_norm if attrs["kind"] == "layer_norm" else _rms_norm
    return [*norm(attrs, total, *params), total]


def attention_infer(attrs, types):
    """q (B,H,S,Dh), k (B,Hkv,T,Dh), v (B,Hkv,T,Dv), optional additive bias broadcastable to
    (B,H,S,T) -> (B,H,S,Dv). H must be a multiple of Hkv (grouped-query)."""
    q, k, v, *bias = types
    if q.rank != 4 or k.rank != 4 or v.rank != 4:
        raise OpTypeError("attention takes 4-D q, k, v")
    heads, kv_heads = q.shape[1], k.shape[1]
    if isinstance(heads, int) and isinstance(kv_heads, int) and heads % kv_heads:
        raise OpTypeError(f"{heads} query heads are not a multiple of {kv_heads} key/value heads")
    if q.shape[3] != k.shape[3] or k.shape[:3] != v.shape[:3]:
        raise OpTypeError(f"attention shapes do not fit: q {q}, k {k}, v {v}")
    if bias:
        broadcast_shapes(bias[0].shape, (q.shape[0], heads, q.shape[2], k.shape[2]))
    return [q.with_shape(q.shape[:3] + v.shape[3:])]


def attention_scores(q, k, scale=None, softcap=0.0):
    """cap(scale · q kᵀ) over grouped-query heads, in float64; cap(s) = softcap·tanh(s/softcap)."""
    k = np.repeat(k, q.shape[1] // k.shape[1], axis=1)
    scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q.astype(np.float64) @ np.swapaxes(k, -1, -2).astype(np.float64)) * scale
    return softcap * np.tanh(scores / softcap) if softcap else scores


def causal_mask(scores):
    """Hide key j from query i when j > i + (T - S) (bottom-right aligned)."""
    s, t = scores.shape[-2:]
    return np.where(np.tril(np.ones((s, t), dtype=bool), k=t - s), scores, MASKED)


def attention_context(probs, v):
    """probs (B,H,S,T) @ v (B,Hkv,T,Dv), each key/value head serving H/Hkv query heads."""
    v = np.repeat(v, probs.shape[1] // v.shape[1], axis=1)
    return probs.astype(np.float64) @ v.astype(np.float64)


def attention_reference(q, k, v, bias=None, scale=None, causal=False, softcap=0.0, pattern=None):
    """softmax(cap(scale · q kᵀ) + bias) v, grouped-query, bottom-right causal, keys outside a
    sparse ``pattern`` (tfcompiler.ir.patterns) masked."""
    scores = attention_scores(q, k, scale, softcap)
    if bias is not None:
        scores = scores + bias
    if causal:
        scores = causal_mask(scores)
    if pattern is not None:
        scores = pattern_masked(scores, pattern)
    return attention_context(softmax(scores), v).astype(q.dtype)


def pattern_masked(scores, pattern):
    """(.., S, T) scores masked outside a sparse pattern, plus the log counts of keys it counts more
    than once."""
    s, t = scores.shape[-2:]
    counted = pattern.score_bias(s, t)
    return np.where(pattern.mask(s, t), scores if counted is None else scores + counted, MASKED)


def _scores_infer(attrs, types):
    q, k = types
    if q.rank != 4 or k.rank != 4 or q.shape[3] != k.shape[3]:
        raise OpTypeError(f"attention scores need 4-D q and k of one head width: q {q}, k {k}")
    if isinstance(q.shape[1], int) and isinstance(k.shape[1], int) and q.shape[1] % k.shape[1]:
        raise OpTypeError(f"{q.shape[1]} query heads are not a multiple of {k.shape[1]} key heads")
    return [q.with_shape(q.shape[:3] + k.shape[2:3])]


def _context_infer(attrs, types):
    probs, v = types
    if probs.rank != 4 or v.rank != 4 or probs.shape[3] != v.shape[2]:
        raise OpTypeError(f"attention context needs probs (B,H,S,T) and v (B,Hkv,T,Dv): {probs}, {v}")
    return [probs.with_shape(probs.shape[:3] + v.shape[3:])]


def _padding_bias_infer(attrs, types):
    (mask,) = types
    if mask.rank != 2:
        raise OpTypeError(f"padding mask must be (batch, keys), got {mask}")
    return [TensorType("float32", (mask.shape[0], 1, 1, mask.shape[1]))]


def _padding_bias(attrs, mask):
    return [np.where(mask[:, None, None, :] != 0, 0.0, MASKED).astype(np.float32)]


def _global_pattern_bias(attrs, global_mask):
    """(B, S) 1 = global -> (B, 1, S, S) bias: 0 inside the pattern, at global keys and (rows_see_all)
    in global rows; the masked value elsewhere."""
    s = global_mask.shape[1]
    chosen = global_mask != 0
    allowed = attrs["pattern"].mask(s, s)[None] | chosen[:, None, :]
    if attrs["rows_see_all"]:
        allowed = allowed | chosen[:, :, None]
    return [np.where(allowed[:, None], 0.0, MASKED).astype(np.float32)]


def _compressed_causal_bias(attrs, q, k):
    """(S, T') bias of a decoder's queries (positions 0..S-1) over `leading` always-visible keys and
    then compressed slots of `stride` positions: slot c is visible once its last position
    c·stride + stride - 1 - front is not after the query, where front is the padding in front of the
    first position when the compression padded the front (attr `front`), else 0."""
    s, t = q.shape[2], k.shape[2]
    slot = np.arange(t)[None, :] - attrs["leading"]
    front = (t - attrs["leading"]) * attrs["stride"] - s if attrs.get("front", False) else 0
    visible = (slot < 0) | (slot * attrs["stride"] + attrs["stride"] - 1 - front <= np.arange(s)[:, None])
    return [np.where(visible, 0.0, MASKED).astype(np.float32)]


def _compressed_causal_infer(attrs, types):
    q, k = types
    return [TensorType("float32", (q.shape[2], k.shape[2]))]


def _global_pattern_infer(attrs, types):
    (mask,) = types
    if mask.rank != 2:
        raise OpTypeError(f"global attention mask must be (batch, sequence), got {mask}")
    return [TensorType("float32", (mask.shape[0], 1, mask.shape[1], mask.shape[1]))]


register("softmax", (1, 1), lambda attrs, t: [t[0]],
         lambda attrs, x: [softmax(x, attrs.get("axis", -1)).astype(x.dtype)])
# layer_norm(x, scale, bias?) attrs epsilon; normalises the last axis
register("layer_norm", (2, 3), _norm_infer, _layer_norm)
# skip_norm(x, skip, scale, bias?) attrs kind (layer_norm | rms_norm), epsilon -> (norm(x + skip), x + skip):
# a residual sum and the norm that reads it, as one op (onnxruntime's Skip(Simplified)LayerNormalization)
register("skip_norm", (3, 4), _skip_norm_infer, _skip_norm)
# rms_norm(x, scale) attrs epsilon
register("rms_norm", (2, 2), _norm_infer, _rms_norm)
# attention(q, k, v, bias?) attrs scale (float), causal (bool), softcap (float, 0 = none),
# pattern (a static sparse Pattern, or absent: dense)
register("attention", (3, 4), attention_infer,
         lambda attrs, q, k, v, bias=None: [attention_reference(q, k, v, bias, attrs["scale"],
                                                                attrs.get("causal", False),
                                                                attrs.get("softcap", 0.0),
                                                                attrs.get("pattern"))])
# attention_scores(q, k) attrs scale, softcap: the (B, H, S, T) scores of the explicit form
register("attention_scores", (2, 2), _scores_infer,
         lambda attrs, q, k: [attention_scores(q, k, attrs["scale"], attrs.get("softcap", 0.0)).astype(q.dtype)])
# causal_mask(scores): masked where the key lies after the query
register("causal_mask", (1, 1), lambda attrs, t: [t[0]], lambda attrs, x: [causal_mask(x).astype(x.dtype)])
# pattern_mask(scores) attrs pattern: scores (B, H, S, T) masked outside the pattern (plus its repeats' log counts)
register("pattern_mask", (1, 1), lambda attrs, t: [t[0]],
         lambda attrs, x: [pattern_masked(x, attrs["pattern"]).astype(x.dtype)])
# attention_context(probs, v): probs (B, H, S, T) @ v (B, Hkv, T, Dv)
register("attention_context", (2, 2), _context_infer,
         lambda attrs, p, v: [attention_context(p, v).astype(p.dtype)])
# global_pattern_bias(global_mask) attrs pattern, rows_see_all: a static pattern widened by global
# positions given as data (Longformer's global_attention_mask) -> (B, 1, S, S) additive bias
register("global_pattern_bias", (1, 1), _global_pattern_infer, _global_pattern_bias)
# compressed_causal_bias(q, k) attrs stride, leading: causality over compressed keys -> (S, T')
register("compressed_causal_bias", (2, 2), _compressed_causal_infer, _compressed_causal_bias)
# padding_bias(mask): (B, T) 1 = keep / 0 = pad  ->  additive float bias (B, 1, 1, T)
register("padding_bias", (1, 1), _padding_bias_infer, _padding_bias)
