"""The textbook formulas every reference shares (float64 NumPy): Ba et al. 2016 LayerNorm, Zhang &
Sennrich 2019 RMSNorm, Hendrycks & Gimpel 2016 GELU, Shazeer 2020 GLU variants, Cho et al. 2014's GRU
cell, and Vaswani et al.
2017's scaled dot-product attention with multi-query / grouped-query heads (Shazeer 2019, Ainslie et
al. 2023), RealFormer's residual scores and talking heads (Shazeer et al. 2020)."""
from __future__ import annotations

import collections
import math

import numpy as np

NEG = np.finfo(np.float32).min  # additive bias of a masked key, as Hugging Face models use

Norm = collections.namedtuple("Norm", "kind epsilon")
LAYER_NORM = Norm("layer_norm", 1e-5)  # a LayerNorm the spec does not configure: PyTorch's default ε


def layer_norm(x, gamma, beta, eps):
    mu = x.mean(-1, keepdims=True)
    sigma2 = ((x - mu) ** 2).mean(-1, keepdims=True)
    return gamma * (x - mu) / np.sqrt(sigma2 + eps) + beta


def rms_norm(x, gamma, eps):
    return gamma * x / np.sqrt((x ** 2).mean(-1, keepdims=True) + eps)


def gelu(x):
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def silu(x):
    return x / (1 + np.exp(-x))


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def gru_cell(w, x, h):
    """Cho et al. 2014's GRU, one step as torch.nn.GRUCell(x, h), weights w[weight_ih|weight_hh|bias_ih|bias_hh]
    in torch's layout (gates r, z, n stacked, a leading axis of one)."""
    d = h.shape[-1]
    gi = x @ w["weight_ih"][0].T + w["bias_ih"][0]
    gh = h @ w["weight_hh"][0].T + w["bias_hh"][0]
    r, z = sigmoid(gi[..., :d] + gh[..., :d]), sigmoid(gi[..., d:2 * d] + gh[..., d:2 * d])
    n = np.tanh(gi[..., 2 * d:] + r * gh[..., 2 * d:])
    return (1 - z) * n + z * h


ACTIVATIONS = {"relu": lambda x: np.maximum(x, 0), "gelu": gelu, "gelu_tanh": gelu_tanh, "silu": silu,
               "swiglu": silu, "geglu": gelu, "geglu_tanh": gelu_tanh}
GATED = {"swiglu", "geglu", "geglu_tanh"}  # GLU variants: act(x W) ⊙ (x V)


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def relative_positions(s: int, t: int):
    """(i', j) grids of query and key positions, queries at the end of the keys (i' = i + T - S)."""
    return np.arange(t - s, t)[:, None], np.arange(t)[None, :]


def repeat_kv(q, *tensors):
    """Key/value heads (B, Hkv, T, d) repeated so each serves its H/Hkv consecutive query heads."""
    return [np.repeat(x, q.shape[1] // x.shape[1], axis=1) for x in tensors]


def pooled_rows(x, mask, pooling: str):
    """(B, S, D) -> (B, D): the first row, the mean of the real rows, or the last real row (zeros
    for a row with none)."""
    if pooling == "first":
        return x[:, 0]
    out = np.zeros((x.shape[0], x.shape[2]))
    for n in range(len(x)):
        real = np.flatnonzero(mask[n])
        if len(real):
            out[n] = x[n, real].mean(0) if pooling == "mean" else x[n, real[-1]]
    return out


def attention(q, k, v, scale, key_bias=None, causal=False, head_bias=None, softcap=None,
              previous=None, pre_mix=None, post_mix=None, value_term=None):
    """softmax(scale · Q Kᵀ + M) V per head. q (B,H,S,d), k/v (B,Hkv,T,d): each key/value head serves
    H/Hkv consecutive query heads. key_bias (B,T) is added to every query's row; causal hides key j
    from query i when j > i + (T - S). RealFormer adds the previous layer's scores; talking heads
    (Shazeer et al. 2020) mix heads: J'[g] = Σ_h J[h] P[h, g], before (pre) and after (post) the
    softmax; value_term(α) adds Shaw et al.'s Σ_j α_ij a^V_ij. Returns (output, scores to carry)."""
    k, v = repeat_kv(q, k, v)
    scores = scale * q @ k.swapaxes(-1, -2)
    if softcap:  # Gemma 2: logits squashed into (-c, c) before any bias or mask
        scores = softcap * np.tanh(scores / softcap)
    if previous is not None:
        scores = scores + previous
    if pre_mix is not None:
        scores = np.einsum("bhij,hg->bgij", scores, pre_mix)
    if head_bias is not None:
        scores = scores + head_bias
    carried = scores
    if key_bias is not None:
        scores = scores + key_bias[:, None, None, :]
    if causal:
        s, t = scores.shape[-2:]
        future = np.arange(t)[None, :] > np.arange(s)[:, None] + (t - s)
        scores = np.where(future, NEG, scores)
    probs = softmax(scores)
    if post_mix is not None:
        probs = np.einsum("bhij,hg->bgij", probs, post_mix)
    out = probs @ v
    if value_term is not None:
        out = out + value_term(probs)
    return out, carried
