"""NumPy reference transformers, written from the papers, not from tfcompiler's IR.

Each function is the textbook formula (Vaswani et al. 2017 for attention, residual blocks, sinusoidal
positions; Ba et al. 2016 LayerNorm; Zhang & Sennrich 2019 RMSNorm; Hendrycks & Gimpel 2016 GELU;
Shazeer 2020 GLU variants; Shazeer 2019 / Ainslie et al. 2023 multi-query and grouped-query heads).
``forward`` wires them as the spec says, reading weights by tfcompiler's canonical names. Everything
runs in float64 so the reference's own rounding does not eat into the test tolerance.
"""
from __future__ import annotations

import dataclasses
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
               "swiglu": silu, "geglu": gelu, "geglu_tanh": gelu_tanh}


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


def relative_positions(s: int, t: int):
    """(i', j) grids of query and key positions, queries at the end of the keys (i' = i + T - S)."""
    return np.arange(t - s, t)[:, None], np.arange(t)[None, :]


def t5_bucket(n, bidirectional: bool, num_buckets: int, max_distance: int):
    """Raffel et al. 2020 (mesh-tensorflow's _relative_position_bucket): n = key - query. Encoders
    give half the buckets to keys after the query; small |n| < num_buckets/4 (or /2 causal) get
    their own bucket, larger ones log-spaced buckets up to max_distance, then the last one."""
    n = np.asarray(n)
    out = np.zeros(n.shape, dtype=np.int64)
    if bidirectional:
        num_buckets //= 2
        out += (n > 0) * num_buckets
        n = np.abs(n)
    else:
        n = np.maximum(-n, 0)
    max_exact = num_buckets // 2
    with np.errstate(divide="ignore"):
        large = max_exact + np.floor(np.log(np.maximum(n, 1) / max_exact) / math.log(max_distance / max_exact)
                                     * (num_buckets - max_exact)).astype(np.int64)
    return out + np.where(n < max_exact, n, np.minimum(large, num_buckets - 1))


def deberta_bucket(d, buckets: int, max_position: int):
    """He et al. 2021 (DeBERTa-v2's make_log_bucket_position): d = query - key; |d| <= buckets/2
    kept, larger ones log-spaced: sign(d)·(mid + ceil(log(|d|/mid) / log((max-1)/mid) · (mid-1)))."""
    d = np.asarray(d)
    mid = buckets // 2
    magnitude = np.abs(d)
    logs = mid + np.ceil(np.log(np.maximum(magnitude, 1) / mid) / math.log((max_position - 1) / mid) * (mid - 1))
    return np.where(magnitude <= mid, d, np.sign(d) * logs).astype(np.int64)


def sparse_mask(options, s: int, t: int, causal: bool, max_length: int, layer: str):
    """bool (S, T): the keys each query of a position-based sparse kind sees, from the papers.
    Sliding window: |i - j| <= w·d on every d-th key; Sparse Transformer (Child et al. 2019) strided:
    i - j < l or l | i - j; fixed: same block of l, or j mod l >= l - c; Longformer: window plus the
    leading global tokens' rows and columns; BigBird: window, global (leading, and trailing at the
    input's end) and random blocks (the random layout is the compiled model's recorded constant);
    Image Transformer local 1-D: the query's block and `memory_blocks` blocks around it; local 2-D: the
    query's rectangle of the raster-scanned
    image widened by the memory flange (rows above, below when bidirectional, columns each side)."""
    kind = type(options).KIND
    i, j = relative_positions(s, t)
    d = i - j
    if kind in ("sliding_window", "longformer"):
        reach = options.window * options.dilation
        allowed = (np.abs(d) <= reach) & (d % options.dilation == 0)
        if kind == "longformer":
            allowed |= (i < options.global_tokens) | (j < options.global_tokens)
        return allowed
    if kind == "sparse_transformer":
        l = options.stride
        if options.pattern == "strided":
            return (np.abs(d) < l) | (np.abs(d) % l == 0)
        return (i // l == j // l) | (j % l >= l - options.summary)
    if kind == "block_local":
        a, b = i // options.block, j // options.block
        return (b >= a - options.memory_blocks) & (b <= a + (0 if causal else options.memory_blocks))
    if kind == "block_local_2d":  # rows and columns of the raster-scan positions
        (qh, qw), (hm, wm), width = options.query_shape, options.memory_flange, options.row_length
        ri, ci, rj, cj = i // width, i % width, j // width, j % width
        top, left = (ri // qh) * qh, (ci // qw) * qw
        below = 0 if causal else hm
        return (rj >= top - hm) & (rj < top + qh + below) & (cj >= left - wm) & (cj < left + qw + wm)
    if kind == "bigbird":
        from tfcompiler.builders.attention.bigbird import bigbird_layout
        layout = bigbird_layout(options, max_length, causal, layer)
        last = (t - 1) // options.block - options.trailing_global_blocks  # the last block that is not global
        return (layout[i // options.block, j // options.block] | (i // options.block > last)
                | (j // options.block > last))
    return None


def linearised_attention(q, k, v, key_bias, causal, options, layer: str, head_width: int, gate=None):
    """Katharopoulos et al. 2020: V'_i = φ(q_i)ᵀ Σ_j φ(k_j) v_jᵀ / (φ(q_i)ᵀ Σ_j φ(k_j) + eps), sums
    over j <= i when causal, padded keys left out. φ: elu + 1; FAVOR+ (Choromanski et al. 2021)
    exp(w·x' - |x'|²/2)/√m with x' = x/d^¼; RFA (Peng et al. 2021) √(1/D)[sin(Wx̂), cos(Wx̂)] on unit
    x̂. The random matrices are the compiled model's recorded constants."""
    import zlib

    kind = type(options).KIND
    group = q.shape[1] // k.shape[1]
    k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)
    rng = np.random.default_rng([getattr(options, "seed", 0), zlib.crc32(layer.encode())])
    if kind == "linear":
        def phi(x):
            return np.where(x > 0, x + 1, np.exp(np.minimum(x, 0)))
        eps = options.eps
    elif kind == "performer":
        from tfcompiler.builders.attention.performer import orthogonal_features
        w = orthogonal_features(options.features, head_width, rng)

        def phi(x):
            x = x / head_width ** 0.25
            return np.exp(x @ w.T - (x ** 2).sum(-1, keepdims=True) / 2) / math.sqrt(len(w))
        eps = 0.0
    else:
        w = rng.standard_normal((options.features, head_width)) / options.sigma

        def phi(x):
            angles = (x / np.linalg.norm(x, axis=-1, keepdims=True)) @ w.T
            return np.concatenate([np.sin(angles), np.cos(angles)], -1) / math.sqrt(len(w))
        eps = options.eps
    fq, fk = phi(q), phi(k)
    if key_bias is not None:
        fk = fk * (key_bias == 0)[:, None, :, None]
    if gate is not None:  # RFA-Gate (Peng et al. 2021, eq. 7), step by step
        g = 1 / (1 + np.exp(-gate))  # (B, H, S)
        state, total = 0.0, 0.0
        out = np.zeros(q.shape[:3] + (v.shape[-1],))
        for t in range(q.shape[2]):
            decay, admit = g[:, :, t, None], 1 - g[:, :, t, None]
            state = decay[..., None] * state + admit[..., None] * np.einsum("bhf,bhd->bhfd", fk[:, :, t], v[:, :, t])
            total = decay * total + admit * fk[:, :, t]
            out[:, :, t] = (np.einsum("bhf,bhfd->bhd", fq[:, :, t], state)
                            / (np.einsum("bhf,bhf->bh", fq[:, :, t], total)[..., None] + eps))
        return out
    weights = fq @ fk.swapaxes(-1, -2)  # φ(q_i)·φ(k_j)
    if causal:
        s, t = weights.shape[-2:]
        weights = weights * np.tril(np.ones((s, t)), k=t - s)
    return (weights @ v) / (weights.sum(-1, keepdims=True) + eps)


def lsh_reference(qk, v, key_bias, options, layer: str, causal: bool, rotations=None):
    """Kitaev et al. 2020, written per query over sets: in each round, position i's bucket is
    argmax([x_i R; -x_i R]) of its shared query/key vector (padding: one more bucket after the
    others); positions are ranked by (bucket, position) and cut into chunks; i attends the positions
    of its chunk and the chunk before: within its round (the paper; the first chunk has none), or,
    with look_back rolled, in the rounds' ranks laid end to end (round r's ranks after round r-1's,
    each round padded to whole chunks), the chunk before the first being the very last one; with
    same_bucket only keys of its bucket; causal ones only in decoders; itself at score -1e5; keys
    k = x / √(|x|² + d·ε); rounds weighted by exp(z^r - logsumexp_r z^r). `rotations` (H, d, R, n/2),
    else the compiled model's recorded constants, drawn again from the seed."""
    import zlib

    b, h, s, d = qk.shape
    if rotations is None:
        rng = np.random.default_rng([options.seed, zlib.crc32(layer.encode())])
        rotations = np.broadcast_to(rng.standard_normal((options.rounds, d, options.buckets // 2)).transpose(1, 0, 2),
                                    (h, d, options.rounds, options.buckets // 2))
    keys = qk / np.sqrt((qk ** 2).sum(-1, keepdims=True) + d * options.key_epsilon)
    scale = options.scale if options.scale is not None else 1 / math.sqrt(d)
    chunks = -(-s // options.chunk)  # per round
    rounds = range(options.rounds)
    out = np.zeros(qk.shape[:3] + (v.shape[-1],))
    for bi in range(b):
        for hi in range(h):
            bucket, chunk_of = {}, {}  # (round, position) -> its bucket, its chunk among all rounds' chunks
            for r in rounds:
                rotated = qk[bi, hi] @ rotations[hi, :, r]
                ids = np.argmax(np.concatenate([rotated, -rotated], -1), -1)
                if key_bias is not None:
                    ids = np.where(key_bias[bi] != 0, options.buckets, ids)
                for rank, p in enumerate(sorted(range(s), key=lambda p: (ids[p], p))):
                    bucket[r, p], chunk_of[r, p] = ids[p], r * chunks + rank // options.chunk
            results, sums = [], []
            for r in rounds:
                o, z = np.zeros((s, v.shape[-1])), np.zeros(s)
                for i in range(s):
                    c = chunk_of[r, i]
                    if options.look_back == "rolled":
                        near, among = {c, (c - 1) % (options.rounds * chunks)}, rounds
                    else:
                        near, among = {c, c - 1}, [r]
                    seen = [j for r2 in among for j in range(s) if chunk_of[r2, j] in near
                            and (not options.same_bucket or bucket[r2, j] == bucket[r, i]) and (not causal or j <= i)]
                    scores = np.array([-1e5 if j == i else qk[bi, hi, i] @ keys[bi, hi, j] * scale
                                       + (0.0 if key_bias is None else key_bias[bi, j]) for j in seen])
                    z[i] = scores.max() + np.log(np.exp(scores - scores.max()).sum())
                    o[i] = np.exp(scores - z[i]) @ v[bi, hi, seen]
                results.append(o)
                sums.append(z)
            sums = np.array(sums)
            weights = np.exp(sums - sums.max(0))
            out[bi, hi] = (np.array(results) * (weights / weights.sum(0))[..., None]).sum(0)
    return out


def routing_reference(q, k, v, key_bias, centroids, causal: bool):
    """Roy et al. 2021, per query over sets: centroid c takes the ⌈S/C⌉ queries and the ⌈S/C⌉ keys
    whose unit vectors score highest against it (earlier position first among equals; padding after
    every real position, in position order), so padding never takes a real token's place; a query
    attends, in each centroid that took it, that centroid's real keys (not after it in a decoder);
    its output is the mean over those centroids with a visible key, zero with none."""
    b, h, s, d = q.shape
    k, v = np.repeat(k, h // k.shape[1], axis=1), np.repeat(v, h // v.shape[1], axis=1)
    window = math.ceil(s / centroids.shape[1])
    real = np.ones((b, s), bool) if key_bias is None else key_bias == 0
    out = np.zeros(q.shape[:3] + (v.shape[-1],))
    for bi in range(b):
        for hi in range(h):
            def nearest(x, mu):
                score = [mu @ (x[p] / np.linalg.norm(x[p])) for p in range(s)]
                return sorted(range(s), key=lambda p: (0, -score[p], p) if real[bi, p] else (1, 0, p))[:window]
            taken = [(nearest(q[bi, hi], mu), nearest(k[bi, hi], mu)) for mu in centroids[hi]]
            for i in range(s):
                results = []
                for queries, keys in taken:
                    seen = [j for j in keys if real[bi, j] and (not causal or j <= i)]
                    if i in queries and seen:
                        scores = np.array([q[bi, hi, i] @ k[bi, hi, j] / math.sqrt(d) for j in seen])
                        weights = np.exp(scores - scores.max())
                        results.append(weights @ v[bi, hi, seen] / weights.sum())
                out[bi, hi, i] = np.mean(results, axis=0) if results else 0.0
    return out


def clustered_reference(q, k, v, key_bias, options, layer: str):
    """Vyas et al. 2020, per head over lists: hash bits sign(q·p) (≥ 0 → +1) on the recorded random
    planes; k-means on the real queries' hashes with Hamming distance, centroids starting at the
    hashes of the real queries numbered ⌊c·n/C⌋ (n of them), bitwise majority updates (+1 on ties, empty
    clusters unchanged);
    each cluster's mean real query attends all keys, its members take the result."""
    import zlib

    b, h, s, d = q.shape
    k, v = np.repeat(k, h // k.shape[1], axis=1), np.repeat(v, h // v.shape[1], axis=1)
    planes = np.random.default_rng([options.seed, zlib.crc32(layer.encode())]).standard_normal((d, options.bits))
    real = np.ones((b, s), bool) if key_bias is None else key_bias == 0
    c_count = options.clusters
    out = np.zeros(q.shape[:3] + (v.shape[-1],))
    for bi in range(b):
        for hi in range(h):
            bits = [tuple(1 if x >= 0 else -1 for x in row) for row in
                    q[bi, hi].astype(np.float32) @ planes.astype(np.float32)]

            def nearest(centroids, i):
                distance = [sum(x != y for x, y in zip(bits[i], c)) for c in centroids]
                return distance.index(min(distance))

            reals = [i for i in range(s) if real[bi, i]] or [0]
            centroids = [bits[reals[(c * len(reals)) // c_count]] for c in range(c_count)]
            for _ in range(options.iterations):
                groups = [[i for i in range(s) if real[bi, i] and nearest(centroids, i) == c] for c in range(c_count)]
                centroids = [tuple(1 if sum(bits[i][n] for i in g) >= 0 else -1 for n in range(len(bits[0])))
                             if g else centroids[c] for c, g in enumerate(groups)]
            cluster = [nearest(centroids, i) for i in range(s)]
            for c in set(cluster):
                group = [i for i in range(s) if real[bi, i] and cluster[i] == c]
                mean_query = q[bi, hi, group].mean(0) if group else np.zeros(d)
                scores = k[bi, hi] @ mean_query / math.sqrt(d) + (0 if key_bias is None else key_bias[bi])
                weights = np.exp(scores - scores.max())
                out[bi, hi, [i for i in range(s) if cluster[i] == c]] = weights @ v[bi, hi] / weights.sum()
    return out


def recurrent_reference(x, key_bias, options, w, carry=None):
    """Elman / Hochreiter & Schmidhuber / Cho et al., as torch.nn.RNN / LSTM / GRU write them (gate
    rows i,f,g,o and r,z,n; the GRU's reset after W_hn h + b_hn): each sequence runs over its real
    tokens only, the backward direction from its last one; padded positions are zero. `carry`:
    {"h": (dirs, B, H)[, "c"]} initial states ({} for zeros), replaced by the states after the last
    real tokens."""
    def sigmoid(z):
        return 1 / (1 + np.exp(-z))

    b, s, _ = x.shape
    directions, hidden = w["weight_hh"].shape[0], w["weight_hh"].shape[2]
    out, finals = np.zeros((b, s, directions, hidden)), {}
    for n in range(b):
        length = s if key_bias is None else int((key_bias[n] == 0).sum())
        for d in range(directions):
            h = np.zeros(hidden) if not carry else carry["h"][d, n].astype(np.float64)
            c = np.zeros(hidden) if not carry or "c" not in carry else carry["c"][d, n].astype(np.float64)
            for t in (range(length) if d == 0 else range(length - 1, -1, -1)):
                a = w["weight_ih"][d] @ x[n, t] + w["bias_ih"][d]
                r = w["weight_hh"][d] @ h + w["bias_hh"][d]
                if options.cell == "rnn":
                    h = np.tanh(a + r) if getattr(options, "nonlinearity", "tanh") == "tanh" else np.maximum(a + r, 0)
                elif options.cell == "lstm":
                    i, f, g, o = ((a + r)[:hidden], (a + r)[hidden:2 * hidden], (a + r)[2 * hidden:3 * hidden],
                                  (a + r)[3 * hidden:])
                    c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
                    h = sigmoid(o) * np.tanh(c)
                else:
                    reset, update = (sigmoid(a[:hidden] + r[:hidden]),
                                     sigmoid(a[hidden:2 * hidden] + r[hidden:2 * hidden]))
                    candidate = np.tanh(a[2 * hidden:] + reset * r[2 * hidden:])
                    h = (1 - update) * candidate + update * h
                out[n, t, d] = h
            if carry is not None:
                finals.setdefault("h", np.zeros((directions, b, hidden)))[d, n] = h
                if options.cell == "lstm":
                    finals.setdefault("c", np.zeros((directions, b, hidden)))[d, n] = c
    if carry is not None:
        carry.update(finals)
    return out.reshape(b, s, directions * hidden)


def informer_attention(q, k, v, key_bias, factor: int, causal: bool = False):
    """Zhou et al. 2021, ProbSparse: M(q_i) = max_j q_i·k_j − Σ_j q_i·k_j / T over U = c·⌈ln T⌉
    sampled keys (evenly spaced over the real keys: the ⌊r·n/U⌋-th of the n unpadded ones, as the
    compiled model documents); the top u = c·⌈ln S⌉ queries (real ones before padding) attend normally
    (keys up to them in the masked decoder), the rest output mean(V) over real keys,
    or in the decoder Σ_{j ≤ i} v_j over real keys (Informer's V.cumsum)."""
    b, h, s, d = q.shape
    t = k.shape[2]
    group = h // k.shape[1]
    k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)
    keep = np.ones((b, t)) if key_bias is None else (key_bias == 0).astype(float)
    count = lambda n: max(min(factor * math.ceil(math.log(n)), n), 1) if n > 1 else 1  # noqa: E731
    out = np.empty((b, h, s, v.shape[-1]))
    for bi in range(b):
        mean = (keep[bi][:, None] * v[bi]).sum(1) / max(keep[bi].sum(), 1)  # (H, d)
        reals = [j for j in range(t) if keep[bi, j]] or [0]
        samples = [reals[r * len(reals) // count(t)] for r in range(count(t))]
        for hi in range(h):
            dots = q[bi, hi] @ k[bi, hi].T  # (S, T)
            measure = dots[:, samples].max(-1) - dots[:, samples].sum(-1) / t
            ranked = sorted(range(s), key=lambda i: (0, -measure[i], i) if keep[bi, i + t - s] else (1, 0, i))
            active = set(ranked[:count(s)])
            for i in range(s):
                seen = np.arange(t) <= i + t - s if causal else np.ones(t, bool)
                if i in active:
                    bias = 0.0 if key_bias is None else key_bias[bi]
                    out[bi, hi, i] = softmax(np.where(seen, dots[i] / math.sqrt(d) + bias, NEG)) @ v[bi, hi]
                else:
                    out[bi, hi, i] = (keep[bi, seen][:, None] * v[bi, hi, seen]).sum(0) if causal else mean[hi]
    return out


def compressed_attention(q, k, v, key_bias, s: int, w, layer: str, causal: bool = False):
    """Liu et al. 2018: K' = Conv1d_{kernel s, stride s}(K), V' likewise (grouped per head), padded
    keys zeroed and the tail padded with zeros; a compressed slot is hidden when it holds no real key.
    Here k, v are (B, Hkv, T, d) heads of the projected keys; the convolution mixes one head's d
    channels over s positions."""
    b, h, t, d = k.shape
    keep = np.ones((b, t)) if key_bias is None else (key_bias == 0).astype(float)
    rows = -(-t // s)

    def conv(x, name):
        weight, bias = w[f"{layer}.{name}_compression.weight"], w[f"{layer}.{name}_compression.bias"]
        x = np.pad(x * keep[:, None, :, None], ((0, 0), (0, 0), (0, rows * s - t), (0, 0)))
        out = np.zeros((b, h, rows, d))
        for head in range(h):
            kernel = weight[head * d:(head + 1) * d]  # (out d, in d, s)
            for r in range(rows):
                window = x[:, head, r * s:(r + 1) * s]  # (B, s, d)
                out[:, head, r] = np.einsum("bsi,ois->bo", window, kernel) + bias[head * d:(head + 1) * d]
        return out

    k2, v2 = conv(k, "key"), conv(v, "value")
    slots = np.pad(keep, ((0, 0), (0, rows * s - t))).reshape(b, rows, s).max(-1)
    hidden = np.where(slots > 0, 0.0, NEG)[:, None, None, :]  # (B, 1, 1, slots)
    if causal:  # slot c once c·s + s - 1 <= i, behind a learned null key/value every query sees
        late = (np.arange(rows)[None, :] * s + s - 1) > np.arange(q.shape[2])[:, None]
        hidden = np.where(late, NEG, hidden)
        k2 = np.concatenate([np.broadcast_to(w[f"{layer}.null_key"], (b, h, 1, d)), k2], axis=2)
        v2 = np.concatenate([np.broadcast_to(w[f"{layer}.null_value"], (b, h, 1, d)), v2], axis=2)
        hidden = np.concatenate([np.zeros(hidden.shape[:-1] + (1,)), hidden], axis=-1)
    group = q.shape[1] // h
    k2, v2 = np.repeat(k2, group, axis=1), np.repeat(v2, group, axis=1)
    return softmax(q @ k2.swapaxes(-1, -2) / math.sqrt(d) + hidden) @ v2


def low_rank_attention(q, k, v, key_bias, options, w, layer: str, stack: str):
    """Linformer (Wang et al. 2020): softmax(Q (E K)ᵀ/√d) F V with E, F cut to the first T columns
    and padded keys zeroed. Nyströmformer (Xiong et al. 2021): softmax(Q K̃ᵀ/√d) Z softmax(Q̃ Kᵀ/√d) V
    with segment-mean landmarks (segments of ceil(S/m), over real tokens) and Z the Newton–Schulz
    pseudo-inverse of softmax(Q̃ K̃ᵀ/√d), plus the per-head convolution of V along the sequence."""
    d = q.shape[-1]
    group = q.shape[1] // k.shape[1]
    k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)
    keep = np.ones(k.shape[2]) if key_bias is None else (key_bias == 0).astype(float)  # (B, T) or (T,)
    keep = keep[:, None, :, None] if keep.ndim == 2 else keep[None, None, :, None]
    t = k.shape[2]
    if type(options).KIND == "linformer":
        prefix = {"layerwise": f"{stack}.linformer.projection", "key_value": f"{layer}.projection"}
        e = w[prefix.get(options.share, f"{layer}.key_projection")][:, :t]
        f = w[prefix.get(options.share, f"{layer}.value_projection")][:, :t]
        return softmax(q @ (e @ (k * keep)).swapaxes(-1, -2) / math.sqrt(d)) @ (f @ (v * keep))

    def landmarks(x, m):
        length = -(-x.shape[2] // m)
        out = np.zeros(x.shape[:2] + (m, x.shape[3]))
        for segment in range(m):
            rows = slice(segment * length, (segment + 1) * length)
            weights = np.broadcast_to(keep, x.shape[:1] + (1, x.shape[2], 1))[:, :, rows]
            out[:, :, segment] = (x[:, :, rows] * weights).sum(2) / np.maximum(weights.sum(2), 1)
        return out

    m = options.landmarks
    q_marks, k_marks = landmarks(q, m), landmarks(k, m)
    kernel1 = softmax(q @ k_marks.swapaxes(-1, -2) / math.sqrt(d))
    a = softmax(q_marks @ k_marks.swapaxes(-1, -2) / math.sqrt(d))
    bias = 0.0 if key_bias is None else key_bias[:, None, None, :]
    kernel3 = softmax(q_marks @ k.swapaxes(-1, -2) / math.sqrt(d) + bias)
    if options.pinv_scale == "global":  # Hugging Face's: the largest column sum over the batch and heads
        z = a.swapaxes(-1, -2) / (np.abs(a).sum(-2).max() * np.abs(a).sum(-1).max())
    else:
        z = a.swapaxes(-1, -2) / (np.abs(a).sum(-2).max(-1)[..., None, None]
                                  * np.abs(a).sum(-1).max(-1)[..., None, None])
    eye = np.eye(m)
    for _ in range(options.pinv_iterations):
        az = a @ z
        z = 0.25 * z @ (13 * eye - az @ (15 * eye - az @ (7 * eye - az)))
    out = kernel1 @ z @ (kernel3 @ v)
    if options.conv_kernel:
        kernel = w[f"{layer}.nystrom.conv.weight"][:, 0, :, 0]  # (H, k)
        half = options.conv_kernel // 2
        padded = np.pad(v * keep, ((0, 0), (0, 0), (half, half), (0, 0)))
        out = out + sum(padded[:, :, o:o + t] * kernel[None, :, o, None, None] for o in range(options.conv_kernel))
    return out


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


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def attention(q, k, v, scale, key_bias=None, causal=False, head_bias=None, softcap=None,
              previous=None, pre_mix=None, post_mix=None, value_term=None):
    """softmax(scale · Q Kᵀ + M) V per head. q (B,H,S,d), k/v (B,Hkv,T,d): each key/value head serves
    H/Hkv consecutive query heads. key_bias (B,T) is added to every query's row; causal hides key j
    from query i when j > i + (T - S). RealFormer adds the previous layer's scores; talking heads
    (Shazeer et al. 2020) mix heads: J'[g] = Σ_h J[h] P[h, g], before (pre) and after (post) the
    softmax; value_term(α) adds Shaw et al.'s Σ_j α_ij a^V_ij. Returns (output, scores to carry)."""
    group = q.shape[1] // k.shape[1]
    k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)
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

    def embed(self, stack, ids, token_types, mask=None):
        spec, m = self.spec, self.spec.model
        scope = "embeddings" if len(spec.stacks()) == 1 else f"{stack}.embeddings"
        shared = spec.topology != "encoder-decoder" or spec.embedding.shared
        table = self.w["embeddings.tokens.weight" if shared else f"{scope}.tokens.weight"]
        x = table[ids]
        if spec.embedding.scale is not False:
            x = x * (math.sqrt(m.width) if spec.embedding.scale is True else spec.embedding.scale)
        if token_types is not None and getattr(spec.input, "token_types", 0):  # funnel reads them in attention
            x = x + self.w[f"{scope}.token_types.weight"][token_types]
        x = self.add_positions(x, spec.positional, scope, mask)
        if spec.embedding.norm:
            from tfcompiler.language.model import Norm
            x = self.norm(x, Norm(kind=spec.embedding.norm), f"{scope}.norm", spec.embedding.norm_epsilon)
        return x

    def mha(self, x, memory, key_bias, causal, block, name, positional=None, stack=None, state=None):
        """One attention; ``positional`` is the scheme of a self-attention (None for cross)."""
        m = self.spec.model
        options = block.attention
        b, s, _ = x.shape
        t = memory.shape[1]
        kind = type(options).KIND
        if kind == "induced":  # Lee et al. 2019: H = MHA(I, X, X), out = MHA(X, H, H)
            from tfcompiler.builders.attention.multi_head import MultiHeadOptions
            import dataclasses
            plain = dataclasses.replace(block, attention=MultiHeadOptions())
            points = np.broadcast_to(self.w[f"{name}.inducing_points"],
                                     (b,) + self.w[f"{name}.inducing_points"].shape[1:])
            induced = self.mha(points, memory, key_bias, False, plain, f"{name}.induce")
            return self.mha(x, induced, None, False, plain, f"{name}.broadcast")
        if kind == "longformer" and options.global_input:
            return self.longformer_global(x, key_bias, options, name)
        if kind == "star":
            return self.star(x, key_bias, name, state)
        if kind == "recurrent":
            carry = None
            parts = ("h", "c") if options.cell == "lstm" else ("h",)
            index = state["recurrent_layers"] = state.get("recurrent_layers", -1) + 1
            if options.state:  # the k-th stateful layer reads past_states.k and writes present_states.k
                layer = state["stateful_layers"] = state.get("stateful_layers", -1) + 1
                carry = {part: self.feeds[f"past_states.{layer}.{part}"] for part in parts}
            elif options.start == "encoder":  # Sutskever et al. 2014: the encoder's last state, directions joined
                carry = {part: np.concatenate(list(v), axis=-1)[None] for part, v in self.handover[index].items()
                         if part in parts}
            elif stack == "encoder":
                carry = {}
            out = recurrent_reference(x, key_bias, options, {k: self.w[f"{name}.{k}"] for k in (
                "weight_ih", "weight_hh", "bias_ih", "bias_hh")}, carry)
            if options.state:
                self.present.update({f"present_states.{layer}.{part}": v for part, v in carry.items()})
            elif stack == "encoder":
                self.handover.append(carry)
            return out
        if kind == "collaborative":  # Cordonnier et al. 2020: shared W_Q, W_K, per-head mixing m_h
            shared_q, shared_k = self.linear(x, f"{name}.query"), self.linear(memory, f"{name}.key")
            mixing = self.w[f"{name}.mixing"]  # (H, D~)
            q = shared_q[:, None] * mixing[None, :, None, :]
            k = np.repeat(shared_k[:, None], m.heads, axis=1)
        elif kind == "lsh":  # Kitaev et al. 2020: queries and keys share one projection
            q = k = self.linear(x, f"{name}.query_key").reshape(b, s, m.heads, m.dh).transpose(0, 2, 1, 3)
        else:
            q = self.linear(x, f"{name}.query").reshape(b, s, m.heads, m.dh).transpose(0, 2, 1, 3)
            k = self.linear(memory, f"{name}.key").reshape(b, t, m.kv, m.dh).transpose(0, 2, 1, 3)
        v = self.linear(memory, f"{name}.value").reshape(b, t, m.kv, m.dh).transpose(0, 2, 1, 3)
        if getattr(options, "qk_norm", None):  # per head, over the head width, before positions
            from tfcompiler.language.model import Norm
            norm = Norm(kind=options.qk_norm, epsilon=options.qk_norm_epsilon)
            q, k = self.norm(q, norm, f"{name}.query_norm"), self.norm(k, norm, f"{name}.key_norm")
        self.gate = (self.linear(x, f"{name}.gate").transpose(0, 2, 1)
                     if getattr(options, "gate", False) is True else None)  # RFA-Gate's logits (B, H, S)
        out = self.attend(q, k, v, key_bias, causal, options, name, positional, stack, state)
        return self.linear(out.transpose(0, 2, 1, 3).reshape(b, s, -1), f"{name}.output")

    def star(self, x, key_bias, name, state):
        """Guo et al. 2019, one cycle per layer, per position: satellite i attends
        C_i = [h_{i-1}; h_i; h_{i+1}; e_i; s] (neighbours only where they exist and are real); then
        the relay s <- LN(ReLU(MultiAtt(s, [s; H]))) over the satellites' new attention outputs H.
        e is the first layer's input, s starts as the mean of the real e_i."""
        from tfcompiler.builders.attention.multi_head import MultiHeadOptions
        from tfcompiler.language.model import Norm
        import dataclasses

        m = self.spec.model
        b, s, _ = x.shape
        real = np.ones((b, s), bool) if key_bias is None else key_bias == 0
        e = state.setdefault("star_embeddings", x)
        if "star_relay" not in state:
            state["star_relay"] = np.stack([e[bi, real[bi]].mean(0) for bi in range(b)])[:, None]
        relay = state["star_relay"]

        def heads(y, part):
            return self.linear(y, f"{name}.{part}").reshape(b, y.shape[1], m.heads, m.dh)

        q, k, v = heads(x, "query"), heads(x, "key"), heads(x, "value")
        ke, ve, ks, vs = heads(e, "key"), heads(e, "value"), heads(relay, "key"), heads(relay, "value")
        out = np.zeros((b, s, m.heads, m.dh))
        for bi in range(b):
            for i in range(s):
                ring = [j for j in (i - 1, i, i + 1) if 0 <= j < s and (j == i or real[bi, j])]
                keys = [k[bi, j] for j in ring] + [ke[bi, i], ks[bi, 0]]
                values = [v[bi, j] for j in ring] + [ve[bi, i], vs[bi, 0]]
                for hi in range(m.heads):
                    scores = np.array([q[bi, i, hi] @ key[hi] for key in keys]) / math.sqrt(m.dh)
                    weights = np.exp(scores - scores.max())
                    out[bi, i, hi] = weights @ np.array([value[hi] for value in values]) / weights.sum()
        satellites = self.linear(out.reshape(b, s, -1), f"{name}.output")
        if self.spec.encoder_blocks[0].attention.update == "paper":  # h = LayerNorm(ReLU(MultiAtt(·)))
            satellites = self.norm(np.maximum(satellites, 0), Norm(), f"{name}.satellite_norm")
        plain = dataclasses.replace(self.spec.encoder_blocks[0], attention=MultiHeadOptions())
        relay_bias = None if key_bias is None else np.concatenate([np.zeros((b, 1)), key_bias], axis=1)
        updated = self.mha(relay, np.concatenate([relay, satellites], axis=1), relay_bias, False, plain,
                           f"{name}.relay")
        state["star_relay"] = self.norm(np.maximum(updated, 0), Norm(), f"{name}.relay_norm")
        return satellites

    def longformer_global(self, x, key_bias, options, name):
        """Beltagy et al. 2020 with global positions from `global_attention_mask`: every query sees
        its window (|i - j| <= w, every d-th key) and the global keys; global queries instead see
        every key through the global projections Q_g, K_g, V_g."""
        m = self.spec.model
        b, s, _ = x.shape
        chosen = self.feeds["global_attention_mask"] != 0

        def heads(suffix):
            return self.linear(x, f"{name}.{suffix}").reshape(b, s, -1, m.dh).transpose(0, 2, 1, 3)

        d = np.arange(s)[:, None] - np.arange(s)[None, :]
        reach = options.window * options.dilation
        allowed = ((np.abs(d) <= reach) & (d % options.dilation == 0))[None] | chosen[:, None, :]
        local, _ = attention(heads("query"), heads("key"), heads("value"), m.dh ** -0.5, key_bias,
                             head_bias=np.where(allowed, 0.0, NEG)[:, None])
        glob, _ = attention(heads("query_global"), heads("key_global"), heads("value_global"), m.dh ** -0.5, key_bias)
        out = np.where(chosen[:, None, :, None], glob, local)
        return self.linear(out.transpose(0, 2, 1, 3).reshape(b, s, -1), f"{name}.output")

    def attend(self, q, k, v, key_bias, causal, options, name, positional=None, stack=None, state=None,
               positions=None):
        """Heads (B,H,S,d) attend keys/values (B,Hkv,T,d), queries at the end of the keys; returns
        (B,H,S,dv). ``positions`` (S,) of the queries default to T-S .. T-1 (rotary only)."""
        m = self.spec.model
        s, t = q.shape[2], k.shape[2]
        if type(options).KIND in ("linear", "performer", "rfa"):
            return linearised_attention(q, k, v, key_bias, causal, options, name, m.dh, self.gate)
        if type(options).KIND == "lsh":
            return lsh_reference(q, v, key_bias, options, name, causal, self.w.get(f"{name}.rotations"))
        if type(options).KIND == "routing":  # the first local_heads attend |i - j| <= window
            local = options.local_heads
            routed = routing_reference(q[:, local:], k[:, local:], v[:, local:], key_bias,
                                       self.w[f"{name}.centroids"], causal)
            if not local:
                return routed
            d = np.arange(s)[:, None] - np.arange(t)[None, :]
            near = (np.abs(d) <= options.window) & ((d >= 0) if causal else True)
            windowed, _ = attention(q[:, :local], k[:, :local], v[:, :local], 1 / math.sqrt(m.dh), key_bias,
                                    causal, head_bias=np.where(near, 0.0, NEG))
            return np.concatenate([windowed, routed], axis=1)
        if type(options).KIND == "clustered":
            return clustered_reference(q, k, v, key_bias, options, name)
        if type(options).KIND == "prob_sparse":
            return informer_attention(q, k, v, key_bias, options.factor, causal)
        if type(options).KIND == "memory_compressed":
            return compressed_attention(q, k, v, key_bias, options.compression, self.w, name, causal)
        if type(options).KIND in ("linformer", "nystrom"):
            return low_rank_attention(q, k, v, key_bias, options, self.w, name, stack)
        scale = options.scale if options.scale is not None else 1 / math.sqrt(q.shape[-1])
        head_bias = np.zeros((1, m.heads, s, t))
        value_term = None
        i, j = relative_positions(s, t)
        pkind = type(positional).KIND if positional is not None else None
        if pkind == "rope":
            rotary_dim = positional.rotary_dim or m.dh
            base = positional.base * (positional.factor ** (rotary_dim / (rotary_dim - 2))
                                      if positional.scaling == "ntk" else 1.0)
            scale_positions = 1 / positional.factor if positional.scaling == "linear" else 1.0
            args = (rotary_dim, base, positional.layout == "interleaved", scale_positions)
            q = rotary(q, np.arange(t - s, t) if positions is None else positions, *args)
            k = rotary(k, np.arange(t), *args)
        elif pkind == "alibi":
            head_bias = head_bias + alibi_bias(m.heads, s, t, positional.form == "symmetric")
        elif pkind == "t5":  # one table per stack, bias Emb[bucket(j - i)] per head
            bucket = t5_bucket(j - i, not causal, positional.num_buckets, positional.max_distance)
            head_bias = head_bias + self.w[f"{stack}.relative_attention_bias.weight"][bucket].transpose(2, 0, 1)
        elif pkind == "shaw":  # e_ij = q_i·(k_j + aK_ij)/√d, z_i = Σ α_ij (v_j + aV_ij), a_ij = w[clip(j-i)]
            clipped = np.clip(j - i, -positional.max_distance, positional.max_distance) + positional.max_distance
            key_vectors = self.w[f"{name}.relative.key.weight"][clipped]  # (S, T, d)
            head_bias = head_bias + scale * np.einsum("bhid,ijd->bhij", q, key_vectors)
            if positional.value_term:
                value_vectors = self.w[f"{name}.relative.value.weight"][clipped]
                value_term = lambda probs: np.einsum("bhij,ijd->bhid", probs, value_vectors)  # noqa: E731
        elif pkind == "transformer_xl":  # (q+u)·k_j + (q+v)·W_R R_{i-j}, R = [sin | cos]
            half = np.arange(0, m.width, 2) / m.width
            angles = (i - j)[..., None] / positional.base ** half
            r = np.concatenate([np.sin(angles), np.cos(angles)], -1) @ self.w[f"{name}.relative.position.weight"]
            r = r.reshape(s, t, m.heads, -1)
            u, w_v = self.w[f"{name}.relative.content_bias"], self.w[f"{name}.relative.position_bias"]
            head_bias = head_bias + scale * np.einsum("bhid,ijhd->bhij", q + w_v, r)
            q = q + u
        elif pkind == "funnel":  # XL's terms over token distances, plus segments; none for [CLS] rows/columns
            (pq, tq), (pk, tk) = state["funnel"]["queries"], state["funnel"]["keys"]
            half = np.arange(0, m.width, 2) / m.width
            angles = (pq[:, None] - pk[None, :])[..., None] / positional.base ** half
            r = np.concatenate([np.sin(angles), np.cos(angles)], -1) @ self.w[f"{name}.relative.position.weight"]
            r = r.reshape(s, t, m.heads, -1)
            u, w_v = self.w[f"{name}.relative.content_bias"], self.w[f"{name}.relative.position_bias"]
            term = np.einsum("bhid,ijhd->bhij", q + w_v, r)
            if positional.segments:
                same = (tq[:, :, None] == tk[:, None, :]) | (tq[:, :, None] == 2) | (tk[:, None, :] == 2)
                e = np.einsum("bhid,khd->bhik", q + self.w[f"{name}.relative.segment_bias"],
                              self.w[f"{name}.relative.segment_embedding"])
                term = term + np.where(same[:, None], e[..., 1:2], e[..., 0:1])
            if state["funnel"]["separate_cls"]:
                term[:, :, 0, :] = 0
                term[:, :, :, 0] = 0
            head_bias = head_bias + scale * term
            q = q + u
        elif pkind == "music":  # S_rel[i, j] = q_i · E_r[h, i - j] for past keys
            table = self.w[f"{name}.relative.weight"]
            distance = np.clip(i - j, 0, table.shape[1] - 1)
            head_bias = head_bias + scale * np.einsum("bhid,hijd->bhij", q, table[:, distance])
        elif pkind == "deberta":  # (q·k + q·K^r[δ] + k·Q^r[δ]) / √(3d)
            span = positional.position_buckets or (positional.max_relative_positions or m.max_length)
            delta = i - j
            if positional.position_buckets:
                delta = deberta_bucket(delta, positional.position_buckets,
                                       positional.max_relative_positions or m.max_length)
            index = np.clip(delta + span, 0, 2 * span - 1)
            table = self.w[f"{stack}.relative_embeddings.weight"]
            if positional.norm:
                from tfcompiler.language.model import Norm
                table = self.norm(table, Norm(epsilon=positional.norm_epsilon), f"{stack}.relative_embeddings.norm")
            scale = scale / math.sqrt(1 + len(positional.terms))
            rel_q = self.linear(table, f"{name}.query").reshape(2 * span, m.heads, -1)[index]  # (S, T, H, d)
            rel_k = self.linear(table, f"{name}.key").reshape(2 * span, m.heads, -1)[index]
            if "c2p" in positional.terms:
                head_bias = head_bias + scale * np.einsum("bhid,ijhd->bhij", q, rel_k)
            if "p2c" in positional.terms:
                head_bias = head_bias + scale * np.einsum("bhjd,ijhd->bhij", k, rel_q)
        if getattr(options, "span", None) is not None:  # head h sees |i - j| <= w_h
            spans = np.array(options.span * m.heads if len(options.span) == 1 else options.span)
            head_bias = head_bias + np.where(np.abs(i - j)[None] > spans[:, None, None], NEG, 0.0)
        if getattr(options, "adaptive_span", None) is not None:  # Sukhbaatar et al. 2019
            z = options.adaptive_span.max_span * np.clip(self.w[f"{name}.adaptive_span.fraction"].reshape(-1), 0, 1)
            ramp = options.adaptive_span.ramp
            soft = np.clip((ramp + z[:, None, None] - np.abs(i - j)[None]) / ramp, 0, 1)
            with np.errstate(divide="ignore"):
                head_bias = head_bias + np.where(soft > 0, np.log(soft), NEG)
        if getattr(options, "gaussian_prior", False):  # -w_h (i - j)², w_h >= 0
            width = np.abs(self.w[f"{name}.gaussian_prior.weight"].reshape(-1))
            head_bias = head_bias - width[:, None, None] * ((i - j) ** 2)[None]
        allowed = sparse_mask(options, s, t, causal, m.max_length, name) if positional is not None else None
        if allowed is not None:
            head_bias = head_bias + np.where(allowed, 0.0, NEG)
        talking = getattr(options, "talking_heads", "none")
        mixes = {when: self.w[f"{name}.talking_heads.{when}"] if talking in (when, "both") else None
                 for when in ("pre", "post")}
        residual = getattr(options, "residual_scores", False) and positional is not None
        out, carried = attention(q, k, v, scale, key_bias, causal, head_bias, getattr(options, "softcap", None),
                                 state.get("scores") if residual else None, mixes["pre"], mixes["post"],
                                 value_term)
        if residual:
            state["scores"] = carried
        return out

    def position_generator(self, x, options, name, mask=None):
        """CPVT: x + depth-wise k×k conv of the tokens on a (rows, grid_width) grid, zero padded
        (padded tokens read as zeros too), class tokens untouched."""
        c, w, kernel = options.class_tokens, options.grid_width, options.kernel
        weight, bias = self.w[f"{name}.weight"], self.w[f"{name}.bias"]
        tokens = x if mask is None else x * (mask != 0)[..., None]
        grid = tokens[:, c:].reshape(x.shape[0], -1, w, x.shape[2])
        rows, half = grid.shape[1], kernel // 2
        out = np.zeros_like(grid) + bias
        for r in range(rows):
            for col in range(w):
                for a in range(-half, half + 1):
                    for bb in range(-half, half + 1):
                        if 0 <= r + a < rows and 0 <= col + bb < w:
                            out[:, r, col] += grid[:, r + a, col + bb] * weight[:, 0, a + half, bb + half]
        return x + np.concatenate([np.zeros_like(x[:, :c]), out.reshape(x.shape[0], -1, x.shape[2])], 1)

    def add_positions(self, x, positional, scope, mask=None):
        """An absolute scheme's contribution at the embeddings or a block's input (B, S) `mask`."""
        m, length = self.spec.model, x.shape[1]
        kind = type(positional).KIND
        if kind == "learned":
            return x + self.w[f"{scope}.positions.weight"][:length]
        if kind in ("sinusoidal", "scaled_sinusoidal"):
            table = sinusoidal_table(m.max_length, m.width, positional.layout, positional.base)[:length]
            return x + table * (self.w[f"{scope}.positions.scale"] if kind == "scaled_sinusoidal" else 1.0)
        if kind == "conditional":
            return self.position_generator(x, positional, f"{scope}.position_generator", mask)
        if kind == "local_rnn":  # R-Transformer: x + LocalRNN(LN(x)), each position's window of M
            from tfcompiler.language.model import Norm

            name, window = f"{scope}.local_rnn", positional.window
            normed = self.norm(x, Norm(), f"{name}.norm")
            padded = np.concatenate([np.zeros((x.shape[0], window - 1, x.shape[2])), normed], axis=1)
            w = {k: self.w[f"{name}.{k}"] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
            out = np.stack([recurrent_reference(padded[:, t:t + window], None, positional, w)[:, -1]
                            for t in range(x.shape[1])], axis=1)
            return x + out
        return x

    def ffn(self, x, ffn, name):
        act = ACTIVATIONS[ffn.activation]
        if ffn.gated:
            hidden = act(self.linear(x, f"{name}.gate")) * self.linear(x, f"{name}.up")
        else:
            hidden = act(self.linear(x, f"{name}.up"))
        return self.linear(hidden, f"{name}.down")

    def sublayer(self, x, block, name, f):
        """Pre-norm: x + f(LN(x)); post-norm: LN(x + f(x)); none: f(x)."""
        if block.placement == "none":
            return f(x)
        if block.placement == "pre":
            return x + f(self.norm(x, block.norm, f"{name}_norm"))
        return self.norm(x + f(x), block.norm, f"{name}_norm")

    def stack(self, name, stack, blocks, ids, mask, token_types=None, encoder=None):
        x = self.embed(name, ids, token_types, mask)
        key_bias = None if mask is None else np.where(mask != 0, 0.0, NEG)
        state = {}
        if stack.resample is not None or type(self.spec.positional).KIND == "funnel":
            return self.resampled(name, stack, blocks, x, mask, token_types, state)
        slots = None
        if stack.memory_slots:  # Memformer: the carried slots, or the learned ones at the first segment
            past = self.feeds["past_memory_slots"]
            slots = past if past.shape[1] else np.repeat(self.w[f"{name}.memory_slots.initial"], len(x), axis=0)
            encoder = (slots, None)
        if blocks[0].placement == "reversible":
            x = self.reversible(name, blocks, x, key_bias, state)
        else:
            for i in range(len(blocks)):
                x = self.layer(name, stack, i, x, key_bias, state, encoder)
        x = self.final_norm(name, stack, blocks, x)
        if slots is not None:
            self.present["present_memory_slots"] = self.write_slots(f"{name}.memory_writer", slots, x, key_bias,
                                                                    stack.memory_slots.forgetting)
        return x, key_bias

    def reversible(self, name, blocks, x, key_bias, state):
        """Kitaev et al. 2020 (RevNet, Gomez et al. 2017): streams x1 = x2 = the embeddings;
        y1 = x1 + Attention(LN(x2)), y2 = x2 + FFN(LN(y1)); the output [y1; y2]."""
        x1 = x2 = x
        for i, block in enumerate(blocks):
            p = f"{name}.layers.{i}"
            h = self.norm(x2, block.norm, f"{p}.attention_norm")
            x1 = x1 + self.mha(h, h, key_bias, name == "decoder", block, f"{p}.attention", self.spec.positional, name,
                               state)
            x2 = x2 + self.ffn(self.norm(x1, block.norm, f"{p}.ffn_norm"), block.ffn, f"{p}.ffn")
        return np.concatenate([x1, x2], axis=-1)

    def write_slots(self, name, slots, h, key_bias, forgetting):
        """Memformer's writer: slot i attends [m_i; H] (its own slot and the real tokens), then either
        torch.nn.GRUCell(input = that, state = m_i) and a pre-norm GELU feed-forward sublayer (gru), or
        LayerNorm(that + a learned bias of slot i) (normalize: biased memory normalisation)."""
        m = self.spec.model
        out = np.zeros_like(slots)
        for i in range(slots.shape[1]):
            keys = np.concatenate([slots[:, i:i + 1], h], axis=1)
            bias = None if key_bias is None else np.concatenate([np.zeros((len(h), 1)), key_bias], axis=1)
            q = self.linear(slots[:, i:i + 1], f"{name}.attention.query").reshape(len(h), 1, m.heads, m.dh)
            k = self.linear(keys, f"{name}.attention.key").reshape(len(h), -1, m.heads, m.dh)
            v = self.linear(keys, f"{name}.attention.value").reshape(len(h), -1, m.heads, m.dh)
            context, _ = attention(q.transpose(0, 2, 1, 3), k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3),
                                   1 / math.sqrt(m.dh), bias)
            out[:, i] = self.linear(context.transpose(0, 2, 1, 3).reshape(len(h), -1), f"{name}.attention.output")
        from tfcompiler.language.model import Ffn, Norm
        if forgetting == "normalize":
            return self.norm(out + self.w[f"{name}.slot_bias"], Norm(), f"{name}.norm")
        g = {k: self.w[f"{name}.gru.{k}"][0] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
        gi, gh = out @ g["weight_ih"].T + g["bias_ih"], slots @ g["weight_hh"].T + g["bias_hh"]
        d = m.width
        sigmoid = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
        r, z = sigmoid(gi[..., :d] + gh[..., :d]), sigmoid(gi[..., d:2 * d] + gh[..., d:2 * d])
        n = np.tanh(gi[..., 2 * d:] + r * gh[..., 2 * d:])
        kept = (1 - z) * n + z * slots
        return kept + self.ffn(self.norm(kept, Norm(), f"{name}.ffn_norm"), Ffn(activation="gelu"), f"{name}.ffn")

    def resampled(self, name, stack, blocks, x, mask, token_types, state):
        """Funnel Transformer (Dai et al. 2020): a pooling layer's queries are the mean of each window
        of its input, its keys the input; a window's mask is real only if all of it is, its position
        and segment those of its first token. Hourglass (Nawrot et al. 2021): the sequence itself is
        pooled (mean, or the window's states concatenated and projected), in a decoder after shifting
        it right by stride - 1; a window is real if any of it is. The upsampling layer spreads each
        state over its window (repeated, or projected) and adds the states from before the first pooling."""
        from tfcompiler.language.model import Resample

        resample = stack.resample or Resample(shorten_at=[])
        positions = np.arange(x.shape[1])
        types = np.zeros(x.shape[:2], np.int64) if token_types is None else token_types
        mask = np.ones(x.shape[:2]) if mask is None else mask
        state["funnel"] = {"separate_cls": resample.separate_cls}
        full, k, level = None, resample.stride, 0

        def pool(a, reduce):
            return np.stack([reduce(w) for w in self.windows(a, resample)], axis=1)

        for i in range(stack.layers):
            keys = None
            if i in resample.shorten_at:
                full = full or (x, mask, positions, types)
                if name == "decoder":  # window n holds tokens n·k - k + 1 .. n·k
                    x = np.concatenate([np.zeros_like(x[:, :k - 1]), x[:, :x.shape[1] - k + 1]], axis=1)
                    mask = np.concatenate([np.zeros_like(mask[:, :k - 1]), mask[:, :mask.shape[1] - k + 1]], axis=1)
                key_bias = np.where(mask != 0, 0.0, NEG)
                if resample.grid_width:  # Swin: each k×k square of the raster grid, column by column
                    squares, mask = self.grid_squares(x, resample.grid_width // k ** level, k), \
                        self.grid_squares(mask[..., None], resample.grid_width // k ** level, k)[..., 0].max(2)
                    if resample.pooling == "mean":
                        pooled = squares.mean(2)
                    else:
                        joined = squares.reshape(squares.shape[0], squares.shape[1], -1)
                        if resample.pooling == "merge":
                            from tfcompiler.language.model import Norm
                            joined = self.norm(joined, Norm(), f"{name}.layers.{i}.shorten.norm")
                        pooled = self.linear(joined, f"{name}.layers.{i}.shorten", bias=resample.pooling == "linear")
                    positions = np.arange(pooled.shape[1])
                    x, types, level = pooled, types[:, :pooled.shape[1]], level + 1
                    state["funnel"].update(queries=(positions, types), keys=(positions, types))
                    x = self.layer(name, stack, i, x, np.where(mask != 0, 0.0, NEG), state)
                    continue
                if resample.pooling == "mean":
                    pooled = pool(x, lambda w: w.mean(1))
                else:
                    padded = np.concatenate([x, np.zeros((x.shape[0], -x.shape[1] % k, x.shape[2]))], axis=1)
                    pooled = self.linear(padded.reshape(x.shape[0], -1, k * x.shape[2]), f"{name}.layers.{i}.shorten",
                                         bias=True)
                if resample.queries_only:
                    keys = x
                mask = pool(mask, lambda w: w.min(1) if resample.queries_only else w.max(1))
                pooled_positions = pool(positions[None], lambda w: w[:, 0])[0]
                pooled_types = pool(types, lambda w: w[:, 0])
                state["funnel"].update(queries=(pooled_positions, pooled_types),
                                       keys=((positions, types) if keys is not None
                                             else (pooled_positions, pooled_types)))
                x, positions, types, level = pooled, pooled_positions, pooled_types, level + 1
                if keys is not None:
                    x = self.layer(name, stack, i, x, key_bias, state, keys=keys)
                    continue
            if i == resample.upsample_at:  # position n takes the state whose window held token n
                c, factor = int(resample.separate_cls), k ** level
                if resample.upsampling == "repeat":
                    up = np.zeros_like(full[0])
                    up[:, :c] = x[:, :c]
                    for n in range(c, up.shape[1]):
                        if c + (n - c) // factor < x.shape[1]:
                            up[:, n] = x[:, c + (n - c) // factor]
                else:
                    spread = self.linear(x, f"{name}.layers.{i}.upsample", bias=True)
                    up = spread.reshape(x.shape[0], -1, x.shape[2])[:, :full[0].shape[1]]
                x = up + full[0]
                mask, positions, types, level = full[1], full[2], full[3], 0
            state["funnel"].update(queries=(positions, types), keys=(positions, types))
            x = self.layer(name, stack, i, x, np.where(mask != 0, 0.0, NEG), state)
        return self.final_norm(name, stack, blocks, x), np.where(mask != 0, 0.0, NEG)

    def layer(self, name, stack, i, x, key_bias, state, encoder=None, keys=None):
        """Block i; `keys`: the full-length input a pooling layer's queries x attend (Funnel)."""
        block = getattr(self.spec, f"{name}_blocks")[i]
        causal = name == "decoder"
        p = f"{name}.layers.{i}"
        positional = self.spec.positional
        if block.positional is not None:
            positional = block.positional
            x = self.add_positions(x, positional, p, None if key_bias is None else key_bias == 0)
        past = self.feeds.get(f"past_memories.{i}") if stack.memory else None
        if keys is not None:
            normed = self.norm(keys, block.norm, f"{p}.attention_norm") if block.placement == "pre" else keys
            x = self.sublayer(x, block, f"{p}.attention",
                              lambda h: self.mha(h, normed, key_bias, causal, block, f"{p}.attention", positional,
                                                 name, state))
        elif past is None:
            x = self.sublayer(x, block, f"{p}.attention",
                              lambda h: self.mha(h, h, key_bias, causal, block, f"{p}.attention", positional,
                                                 name, state))
        else:  # Dai et al. 2019: keys and values over [stop-gradient(memory); h], memory = earlier inputs
            combined = np.concatenate([past, x], axis=1)
            self.present[f"present_memories.{i}"] = combined[:, -stack.memory:]
            if stack.compressed_memory is not None:  # Rae et al. 2019: attend [compressed; memory; h]
                past = np.concatenate([self.feeds[f"past_compressed_memories.{i}"], past], axis=1)
                self.present[f"present_compressed_memories.{i}"] = np.concatenate(
                    [self.feeds[f"past_compressed_memories.{i}"],
                     self.compress(combined[:, :max(0, combined.shape[1] - stack.memory)], stack.compressed_memory,
                                   f"{p}.compress")], axis=1)[:, -stack.compressed_memory.length:]
            states = self.norm(past, block.norm, f"{p}.attention_norm") if block.placement == "pre" else past
            with_past = None if key_bias is None else np.concatenate(
                [np.zeros((x.shape[0], past.shape[1])), key_bias], axis=1)
            x = self.sublayer(x, block, f"{p}.attention",
                              lambda h: self.mha(h, np.concatenate([states, h], axis=1), with_past, causal, block,
                                                 f"{p}.attention", positional, name, state))
        if encoder is not None:
            memory, memory_bias = encoder
            cross = block if block.cross_attention is None else dataclasses.replace(
                block, attention=block.cross_attention)
            x = self.sublayer(x, block, f"{p}.cross_attention",
                              lambda h: self.mha(h, memory, memory_bias, False, cross,
                                                 f"{p}.cross_attention"))
        if block.ffn.enabled:
            x = self.sublayer(x, block, f"{p}.ffn", lambda h: self.ffn(h, block.ffn, f"{p}.ffn"))
        return x

    @staticmethod
    def grid_squares(x, width, k):
        """(B, S, D) raster grid `width` wide -> (B, squares, k·k, D), missing cells zero."""
        rows = -(-x.shape[1] // width)
        rows += -rows % k
        grid = np.zeros((x.shape[0], rows * width, x.shape[2]))
        grid[:, :x.shape[1]] = x
        grid = grid.reshape(x.shape[0], rows, width, x.shape[2])
        out = [np.stack([grid[:, a * k + r, b * k + c] for c in range(k) for r in range(k)], axis=1)
               for a in range(rows // k) for b in range(width // k)]
        return np.stack(out, axis=1)

    @staticmethod
    def windows(x, resample):
        """Windows of `stride` along axis 1; with separate_cls over [x0, x0, x1, ...] ([CLS] alone),
        truncate dropping the last entry."""
        if resample.separate_cls:
            x = np.concatenate([x[:, :1], x[:, :-1] if resample.truncate else x], axis=1)
        return [x[:, i:i + resample.stride] for i in range(0, x.shape[1], resample.stride)]

    def compress(self, evicted, options, name):
        """The Compressive Transformer's f_c over windows of `rate` evicted states (the last window
        zero-filled): their mean, or a 1-D convolution with kernel = stride = rate."""
        rate = options.rate
        count = -(-evicted.shape[1] // rate)
        padded = np.zeros((evicted.shape[0], count * rate, evicted.shape[2]))
        padded[:, :evicted.shape[1]] = evicted
        windows = padded.reshape(evicted.shape[0], count, rate, evicted.shape[2])
        if options.function == "mean":
            return windows.mean(2)
        return self.linear(windows.reshape(evicted.shape[0], count, rate * evicted.shape[2]), name, bias=True)

    def final_norm(self, name, stack, blocks, x):
        final = stack.final_norm if stack.final_norm is not None else blocks[-1].placement in ("pre", "reversible")
        return self.norm(x, blocks[-1].norm, f"{name}.final_norm") if final else x

    def hierarchy(self, ids, mask, token_types):
        """HIBERT (Zhang et al. 2019) and Hi-Transformer (Wu et al. 2021), one sentence at a time:
        sentence n of every document is a batch (B, L) through the encoder; its pooled vectors, with
        sentence positions, make the document sequence (B, N, D). Interleaved: document layer i runs
        after encoder layer i and its outputs join every token of their sentence."""
        spec, document = self.spec, self.spec.document
        sentences = range(ids.shape[1])
        real = mask.max(axis=2)
        document_bias = np.where(real != 0, 0.0, NEG)
        tokens = [self.embed("encoder", ids[:, n], None if token_types is None else token_types[:, n])
                  for n in sentences]
        biases = [np.where(mask[:, n] != 0, 0.0, NEG) for n in sentences]
        states = [{} for _ in sentences]

        def encoder_layer(i):
            return [self.layer("encoder", spec.encoder, i, tokens[n], biases[n], states[n]) for n in sentences]

        def vectors(tokens):
            pooled = np.stack([self.pool_sentence(tokens[n], mask[:, n]) for n in sentences], axis=1)
            return self.add_positions(pooled, spec.positional, "document.embeddings", mask.max(2))

        document_state = {}
        if document.interleaved:
            for i in range(document.layers):
                tokens = encoder_layer(i)
                x = self.layer("document", document, i, vectors(tokens), document_bias, document_state)
                tokens = [tokens[n] + x[:, n:n + 1] for n in sentences]
            tokens = [self.final_norm("encoder", spec.encoder, spec.encoder_blocks, t) for t in tokens]
        else:
            for i in range(spec.encoder.layers):
                tokens = encoder_layer(i)
            tokens = [self.final_norm("encoder", spec.encoder, spec.encoder_blocks, t) for t in tokens]
            x = vectors(tokens)
            for i in range(document.layers):
                x = self.layer("document", document, i, x, document_bias, document_state)
        x = self.final_norm("document", document, spec.document_blocks, x)
        return x, real, np.stack(tokens, axis=1)

    def pool_sentence(self, x, mask):
        """(B, L, D) -> (B, D): a sentence's vector; an empty (padded) sentence gives zeros for mean/last."""
        pooling = self.spec.document.pooling
        if pooling == "attention":
            from tfcompiler.builders.attention.multi_head import MultiHeadOptions
            plain = dataclasses.replace(self.spec.encoder_blocks[0], attention=MultiHeadOptions())
            query = np.broadcast_to(self.w["document.pooling.query"], (x.shape[0], 1, x.shape[2]))
            return self.mha(query, x, np.where(mask != 0, 0.0, NEG), False, plain, "document.pooling.attention")[:, 0]
        return pooled_rows(x, mask, pooling)

    def head(self, x, mask):
        head = self.spec.head
        if head.kind == "none":
            return {"last_hidden_state": x}
        if head.kind == "set_pool":  # Lee et al. 2019: PMA_k(Z) = MAB(S, rFF(Z))
            from tfcompiler.builders.attention.multi_head import MultiHeadOptions
            import dataclasses
            last = self.spec.stacks()[-1][2][-1]
            plain = dataclasses.replace(last, attention=MultiHeadOptions())
            norm, ffn = last.norm, last.ffn
            seeds = np.broadcast_to(self.w["pooler.seeds"], (x.shape[0],) + self.w["pooler.seeds"].shape[1:])
            keys = self.ffn(x, ffn, "pooler.input.ffn")
            key_bias = None if mask is None else np.where(mask != 0, 0.0, NEG)
            h = self.norm(seeds + self.mha(seeds, keys, key_bias, False, plain, "pooler.attention"), norm,
                          "pooler.attention_norm")
            pooled = self.norm(h + self.ffn(h, ffn, "pooler.output.ffn"), norm, "pooler.output_norm")
            return {"last_hidden_state": x, "pooler_output": pooled}
        if head.kind == "lm":
            matrix = self.w["embeddings.tokens.weight"].T if head.tied else self.w["lm_head.weight"]
            logits = x @ matrix
            return {"logits": logits + self.w["lm_head.bias"] if head.bias else logits}
        read = pooled_rows(x, np.ones(x.shape[:2]) if mask is None else mask, head.pooling)
        pooled = np.tanh(self.linear(read, "pooler.dense", bias=True))
        if head.kind == "pooler":
            return {"last_hidden_state": x, "pooler_output": pooled}
        return {"logits": self.linear(pooled, "classifier", bias=True)}

    def __call__(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        spec = self.spec
        self.feeds = feeds
        self.present = {}
        self.handover = []  # the encoder's recurrent layers' final states, in order
        outputs = {}
        encoder = None
        mask = feeds.get("attention_mask")
        if spec.topology == "hierarchical":
            hidden, mask, outputs["token_hidden_state"] = self.hierarchy(
                feeds["input_ids"], feeds["attention_mask"], feeds.get("token_type_ids"))
        elif spec.encoder is not None:
            hidden, bias = self.stack("encoder", spec.encoder, spec.encoder_blocks, feeds["input_ids"],
                                      feeds.get("attention_mask"), feeds.get("token_type_ids"))
            encoder = (hidden, bias)
        if spec.decoder is not None:
            prefix = "decoder_" if spec.encoder is not None else ""
            mask = feeds.get(f"{prefix}attention_mask")
            hidden, _ = self.stack("decoder", spec.decoder, spec.decoder_blocks, feeds[f"{prefix}input_ids"],
                                   feeds.get(f"{prefix}attention_mask"), feeds.get(f"{prefix}token_type_ids"),
                                   encoder)
            if encoder is not None and spec.head.kind == "none":
                outputs["encoder_last_hidden_state"] = encoder[0]
        outputs.update(self.head(hidden, mask))
        outputs.update(self.present)
        return outputs
