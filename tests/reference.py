"""NumPy reference transformers, written from the papers, not from tfcompiler's IR.

Each function is the textbook formula (Vaswani et al. 2017 for attention, residual blocks, sinusoidal
positions; Ba et al. 2016 LayerNorm; Zhang & Sennrich 2019 RMSNorm; Hendrycks & Gimpel 2016 GELU;
Shazeer 2020 GLU variants; Shazeer 2019 / Ainslie et al. 2023 multi-query and grouped-query heads).
``forward`` wires them as the spec says, reading weights by tfcompiler's canonical names. Everything
runs in float64 so the reference's own rounding does not eat into the test tolerance.
"""
from __future__ import annotations

import math

import numpy as np

NEG = np.finfo(np.float32).min  # additive bias of a masked key, as Hugging Face models use


# --- the formulas ----------------------------------------------------------------------------------
def sinusoidal_table(length: int, width: int, layout: str = "interleaved", base: float = 10000.0):
    """PE(p, 2i) = sin(p / base^(2i/d)), PE(p, 2i+1) = cos(p / base^(2i/d)); 'concatenated' puts all
    sines first, then all cosines (tensor2tensor / fairseq)."""
    p = np.arange(length)[:, None]
    i = np.arange(width // 2)[None, :]
    angle = p / base ** (2 * i / width)
    table = np.zeros((length, width))
    if layout == "interleaved":
        table[:, 0::2], table[:, 1::2] = np.sin(angle), np.cos(angle)
    else:
        table[:, : width // 2], table[:, width // 2:] = np.sin(angle), np.cos(angle)
    return table


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


ACTIVATIONS = {"relu": lambda x: np.maximum(x, 0), "gelu": gelu, "gelu_tanh": gelu_tanh, "silu": silu,
               "swiglu": silu, "geglu": gelu}


def rotary(x, positions, rotary_dim, base=10000.0, interleaved=False, position_scale=1.0):
    """RoPE (Su et al. 2021) in its complex form: feature pairs are complex numbers z_i, multiplied by
    e^{i·m·θ_i}, θ_i = base^(-2i/R), for the token at position m. Pairs are (x_2i, x_2i+1) when
    interleaved, (x_i, x_{i+R/2}) otherwise; features past R pass through."""
    r = rotary_dim
    theta = base ** (-np.arange(r // 2) * 2 / r)
    turn = np.exp(1j * np.outer(positions * position_scale, theta))  # (S, R/2)
    head, tail = x[..., :r], x[..., r:]
    if interleaved:
        z = (head[..., 0::2] + 1j * head[..., 1::2]) * turn
        out = np.stack([z.real, z.imag], axis=-1).reshape(head.shape)
    else:
        z = (head[..., : r // 2] + 1j * head[..., r // 2:]) * turn
        out = np.concatenate([z.real, z.imag], axis=-1)
    return np.concatenate([out, tail], axis=-1)


def alibi_slopes(n: int) -> np.ndarray:
    """Press et al. 2022: the geometric sequence starting at 2^(-8/n) with that ratio, for n a power
    of two; else the closest smaller power's slopes followed by every other slope of twice it."""
    if math.log2(n).is_integer():
        start = 2 ** (-8 / n)
        return start ** np.arange(1, n + 1)
    k = 2 ** int(math.log2(n))
    return np.concatenate([alibi_slopes(k), alibi_slopes(2 * k)[::2][: n - k]])


def alibi_bias(heads: int, s: int, t: int, symmetric: bool) -> np.ndarray:
    """(H, S, T) penalties -m_h·(i - j) with queries at the end of the keys; |i - j| if symmetric."""
    i = np.arange(t - s, t)[:, None]
    j = np.arange(t)[None, :]
    distance = np.abs(i - j) if symmetric else i - j
    return -alibi_slopes(heads)[:, None, None] * distance


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def attention(q, k, v, scale, key_bias=None, causal=False, head_bias=None, softcap=None):
    """softmax(scale · Q Kᵀ + M) V per head. q (B,H,S,d), k/v (B,Hkv,T,d): each key/value head serves
    H/Hkv consecutive query heads. key_bias (B,T) is added to every query's row; causal hides key j
    from query i when j > i + (T - S)."""
    group = q.shape[1] // k.shape[1]
    k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)
    scores = scale * q @ k.swapaxes(-1, -2)
    if softcap:  # Gemma 2: logits squashed into (-c, c) before any bias or mask
        scores = softcap * np.tanh(scores / softcap)
    if key_bias is not None:
        scores = scores + key_bias[:, None, None, :]
    if head_bias is not None:
        scores = scores + head_bias
    if causal:
        s, t = scores.shape[-2:]
        future = np.arange(t)[None, :] > np.arange(s)[:, None] + (t - s)
        scores = np.where(future, NEG, scores)
    return softmax(scores) @ v


# --- wiring by the spec ----------------------------------------------------------------------------
class Reference:
    """The forward pass of a spec with the given weights (canonical names)."""

    def __init__(self, spec, weights: dict[str, np.ndarray]):
        self.spec = spec
        self.w = {k: v.astype(np.float64) for k, v in weights.items()}

    def linear(self, x, name, bias=None):
        """x W + b; attention and FFN projections follow `model.bias`, heads always have a bias."""
        y = x @ self.w[f"{name}.weight"]
        bias = self.spec.model.bias if bias is None else bias
        return y + self.w[f"{name}.bias"] if bias else y

    def norm(self, x, norm, name, eps=None):
        eps = norm.epsilon if eps is None else eps
        if norm.kind == "rms_norm":
            return rms_norm(x, self.w[f"{name}.weight"], eps)
        return layer_norm(x, self.w[f"{name}.weight"], self.w.get(f"{name}.bias", 0.0), eps)

    def embed(self, stack, ids, token_types):
        spec, m = self.spec, self.spec.model
        scope = "embeddings" if len(spec.stacks()) == 1 else f"{stack}.embeddings"
        shared = spec.topology != "encoder-decoder" or spec.embedding.shared
        table = self.w["embeddings.tokens.weight" if shared else f"{scope}.tokens.weight"]
        x = table[ids]
        if spec.embedding.scale is not False:
            x = x * (math.sqrt(m.width) if spec.embedding.scale is True else spec.embedding.scale)
        if token_types is not None:
            x = x + self.w[f"{scope}.token_types.weight"][token_types]
        kind = type(spec.positional).KIND
        length = ids.shape[1]
        if kind == "learned":
            x = x + self.w[f"{scope}.positions.weight"][:length]
        elif kind == "sinusoidal":
            x = x + sinusoidal_table(m.max_length, m.width, spec.positional.layout,
                                     spec.positional.base)[:length]
        if spec.embedding.norm:
            from tfcompiler.spec.model import Norm
            x = self.norm(x, Norm(kind=spec.embedding.norm), f"{scope}.norm", spec.embedding.norm_epsilon)
        return x

    def mha(self, x, memory, key_bias, causal, block, name):
        m = self.spec.model
        b, s, _ = x.shape
        t = memory.shape[1]
        q = self.linear(x, f"{name}.query").reshape(b, s, m.heads, m.dh).transpose(0, 2, 1, 3)
        k = self.linear(memory, f"{name}.key").reshape(b, t, m.kv, m.dh).transpose(0, 2, 1, 3)
        v = self.linear(memory, f"{name}.value").reshape(b, t, m.kv, m.dh).transpose(0, 2, 1, 3)
        options = block.attention
        if options.qk_norm:  # per head, over the head width, before positions
            from tfcompiler.spec.model import Norm
            norm = Norm(kind=options.qk_norm, epsilon=options.qk_norm_epsilon)
            q, k = self.norm(q, norm, f"{name}.query_norm"), self.norm(k, norm, f"{name}.key_norm")
        positional = self.spec.positional
        if type(positional).KIND == "rope" and memory is x:  # self-attention only
            rotary_dim = positional.rotary_dim or m.dh
            base = positional.base * (positional.factor ** (rotary_dim / (rotary_dim - 2))
                                      if positional.scaling == "ntk" else 1.0)
            scale_positions = 1 / positional.factor if positional.scaling == "linear" else 1.0
            args = (np.arange(s), rotary_dim, base, positional.layout == "interleaved", scale_positions)
            q, k = rotary(q, *args), rotary(k, *args)
        head_bias = None
        if type(positional).KIND == "alibi" and memory is x:
            head_bias = alibi_bias(m.heads, s, t, positional.form == "symmetric")
        scale = block.attention.scale if block.attention.scale is not None else 1 / math.sqrt(m.dh)
        out = attention(q, k, v, scale, key_bias, causal, head_bias, options.softcap)
        return self.linear(out.transpose(0, 2, 1, 3).reshape(b, s, m.heads * m.dh), f"{name}.output")

    def ffn(self, x, ffn, name):
        act = ACTIVATIONS[ffn.activation]
        if ffn.gated:
            hidden = act(self.linear(x, f"{name}.gate")) * self.linear(x, f"{name}.up")
        else:
            hidden = act(self.linear(x, f"{name}.up"))
        return self.linear(hidden, f"{name}.down")

    def sublayer(self, x, block, name, f):
        """Pre-norm: x + f(LN(x)); post-norm: LN(x + f(x))."""
        if block.placement == "pre":
            return x + f(self.norm(x, block.norm, f"{name}_norm"))
        return self.norm(x + f(x), block.norm, f"{name}_norm")

    def stack(self, name, stack, blocks, ids, mask, token_types=None, encoder=None):
        x = self.embed(name, ids, token_types)
        key_bias = None if mask is None else np.where(mask != 0, 0.0, NEG)
        causal = name == "decoder"
        for i, block in enumerate(blocks):
            p = f"{name}.layers.{i}"
            x = self.sublayer(x, block, f"{p}.attention",
                              lambda h: self.mha(h, h, key_bias, causal, block, f"{p}.attention"))
            if encoder is not None:
                memory, memory_bias = encoder
                x = self.sublayer(x, block, f"{p}.cross_attention",
                                  lambda h: self.mha(h, memory, memory_bias, False, block,
                                                     f"{p}.cross_attention"))
            x = self.sublayer(x, block, f"{p}.ffn", lambda h: self.ffn(h, block.ffn, f"{p}.ffn"))
        final = stack.final_norm if stack.final_norm is not None else blocks[-1].placement == "pre"
        if final:
            x = self.norm(x, blocks[-1].norm, f"{name}.final_norm")
        return x, key_bias

    def head(self, x):
        head = self.spec.head
        if head.kind == "none":
            return {"last_hidden_state": x}
        if head.kind == "lm":
            matrix = self.w["embeddings.tokens.weight"].T if head.tied else self.w["lm_head.weight"]
            logits = x @ matrix
            return {"logits": logits + self.w["lm_head.bias"] if head.bias else logits}
        pooled = np.tanh(self.linear(x[:, 0], "pooler.dense", bias=True))
        if head.kind == "pooler":
            return {"last_hidden_state": x, "pooler_output": pooled}
        return {"logits": self.linear(pooled, "classifier", bias=True)}

    def __call__(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        spec = self.spec
        outputs = {}
        encoder = None
        if spec.encoder is not None:
            hidden, bias = self.stack("encoder", spec.encoder, spec.encoder_blocks, feeds["input_ids"],
                                      feeds.get("attention_mask"), feeds.get("token_type_ids"))
            encoder = (hidden, bias)
        if spec.decoder is not None:
            prefix = "decoder_" if spec.encoder is not None else ""
            hidden, _ = self.stack("decoder", spec.decoder, spec.decoder_blocks, feeds[f"{prefix}input_ids"],
                                   feeds.get(f"{prefix}attention_mask"), feeds.get(f"{prefix}token_type_ids"),
                                   encoder)
            if encoder is not None and spec.head.kind == "none":
                outputs["encoder_last_hidden_state"] = encoder[0]
        outputs.update(self.head(hidden))
        return outputs
