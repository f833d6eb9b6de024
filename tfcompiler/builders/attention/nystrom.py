"""Attention kind `nystrom`: Nyströmformer (Xiong et al. 2021). With m landmarks Q̃, K̃ (means of m
segments of the queries and keys, over real tokens only):

  Ŝ V = softmax(Q K̃ᵀ/√d) · pinv(softmax(Q̃ K̃ᵀ/√d)) · softmax(Q̃ Kᵀ/√d) V  (+ depth-wise conv of V)

pinv by `pinv_iterations` Newton–Schulz steps Z ← ¼ Z (13I − AZ (15I − AZ (7I − AZ))) from
Z₀ = Aᵀ / (max column sum · max row sum), the maxima taken per sample and head (a batch-wide maximum
would make a sample's output depend on its batch mates). Any length works: segments are
ceil(S/m) long, the last ones short (lucidrains instead pads the front to a multiple of m: `segments`).
Padded keys are masked in the last softmax and left out of the landmarks. A segment with no real key
(all padding, or past the end when S is not a multiple of m) is no landmark: no query attends it
and its row and column of softmax(Q̃ K̃ᵀ) are the identity's, so the pseudo-inverse is the real
landmarks' one (Newton–Schulz keeps the block structure, and the identity's column sums of 1 never
exceed a softmax block's largest) and the result is the real landmarks' alone. Bidirectional only.

The public implementations differ in three conventions, each an option (the defaults are the above):
lucidrains' nystrom-attention pads the front (`segments: front`) and gives an empty segment a uniform
row (`empty_landmarks: uniform`) with a global Z₀ scale; Hugging Face's NystromformerModel has the
global scale and masks padding only as keys of the last softmax (`mask_padding: keys`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...language.kinds import ATTENTION, AttentionKind
from ...language.schema import option
from ...language.shrink_rules import cap, odd_cap
from .lowrank import bidirectional_only, key_weights
from .multi_head import output_projection, project


@dataclass(frozen=True, kw_only=True)
class NystromOptions(AttentionKind):
    """Nyström approximation of softmax attention with segment-mean landmarks (Xiong et al. 2021)."""

    PAPER = "Xiong et al. 2021"
    COMPUTES = "segment-mean landmarks, Newton–Schulz pseudo-inverse, value convolution"
    LOWERING = "MatMul chain, `Conv`"

    landmarks: int = option(64, doc="m: landmarks (segments).", minimum=1, shrink=cap(4))
    pinv_iterations: int = option(6, doc="Newton–Schulz iterations of the pseudo-inverse.", minimum=1)
    conv_kernel: int = option(33, doc="Depth-wise convolution of the values along the sequence, added "
                              "to the output (odd; 0: none).", minimum=0, shrink=odd_cap(3))
    pinv_scale: str = option("per_head", doc="Z₀'s scale: the largest column and row sums of each sample's "
                             "head (per_head), or over the whole batch and all heads (global: Hugging Face's "
                             "NystromformerModel; a sample's output then depends on its batch mates).",
                             choices=("per_head", "global"))
    segments: str = option("tail", doc="Where segments fall when m does not divide the length S: ⌈S/m⌉ "
                           "tokens each from the first token, the last ones short or empty (tail), or as if the "
                           "sequence were padded at the front to m·⌈S/m⌉, the first ones short or empty (front: "
                           "lucidrains' nystrom-attention).", choices=("tail", "front"))
    empty_landmarks: str = option("masked", doc="A segment with no real token (padding only, or none when m does "
                                  "not divide the length): no landmark (masked: no query attends it, the pseudo-"
                                  "inverse is the real landmarks'), or, as lucidrains' nystrom-attention, a landmark "
                                  "whose row of softmax(Q̃K̃ᵀ) is 1/m throughout and whose value is the real tokens' "
                                  "sum over m·⌈S/m⌉ (uniform); either way no query attends it.",
                                  choices=("masked", "uniform"))
    mask_padding: str = option("everywhere", doc="Where padded tokens are left out: the landmarks, the value "
                               "convolution and the keys of softmax(Q̃Kᵀ) (everywhere), or those keys only "
                               "(keys: Hugging Face's NystromformerModel, whose landmarks average padding in and whose "
                               "convolution reads it).", choices=("everywhere", "keys"))

    def problems(self, spec, where):
        yield from bidirectional_only("nystrom", spec)
        if self.conv_kernel and self.conv_kernel % 2 == 0:
            yield f"conv_kernel must be odd or 0, got {self.conv_kernel}"
        if self.conv_kernel and spec.model.kv != spec.model.heads:
            yield "the nystrom value convolution is per head: kv_heads must equal heads (or conv_kernel: 0)"
        if self.empty_landmarks == "uniform" and spec.model.kv != spec.model.heads:
            yield "empty_landmarks: uniform is lucidrains' convention, for as many key/value heads as heads"


def pseudo_inverse(ctx, a, iterations: int, size: int, scale: str = "per_head"):
    a = ctx.op("keep_fp32", a)  # the iterations lose what a low precision rounds: fp32 in fp16 / bf16 models
    eye = ctx.constant(np.eye(size, dtype=np.float32))
    over = (-1,) if scale == "per_head" else (0, 1, 2, 3)
    columns = ctx.op("reduce_max", ctx.op("reduce_sum", ctx.op("abs", a), axes=(-2,)), axes=over)
    rows = ctx.op("reduce_max", ctx.op("reduce_sum", ctx.op("abs", a), axes=(-1,)),
                  axes=(-2,) if scale == "per_head" else over)
    z = ctx.op("div", ctx.op("transpose", a, perm=(0, 1, 3, 2)), ctx.op("mul", columns, rows))
    for _ in range(iterations):
        az = ctx.op("matmul", a, z)
        inner = ctx.op("sub", ctx.op("mul", eye, ctx.constant(7.0)), az)
        inner = ctx.op("sub", ctx.op("mul", eye, ctx.constant(15.0)), ctx.op("matmul", az, inner))
        inner = ctx.op("sub", ctx.op("mul", eye, ctx.constant(13.0)), ctx.op("matmul", az, inner))
        z = ctx.op("mul", ctx.op("matmul", z, inner), ctx.constant(0.25), label="NewtonSchulz")
    return z


def real_landmarks(ctx, key, keep, segments: dict):
    """(B, 1, m, 1) 1.0 for the segments holding a real key, and the (B, 1, 1, m) bias that masks the others."""
    count = segments["segments"]
    first = ctx.constant([0], dtype="int64")
    position = ctx.op("gather", ctx.op("gather", key, first, axis=1), first, axis=3)  # (B, 1, T, 1)
    real = ctx.op("mul", ctx.op("add", ctx.op("mul", position, ctx.constant(0.0)), ctx.constant(1.0)), keep)
    filled = ctx.op("segment_means", real, real, **segments, label="FilledSegments")
    as_mask = ctx.op("cast", ctx.op("reshape", filled, shape=(0, count)), dtype="int64")  # (B, m)
    return filled, ctx.op("padding_bias", as_mask)


def build_nystrom(ctx, options: NystromOptions, spec, site):
    m = spec.model
    query, key, value = project(ctx, spec, site)
    scale = float(m.dh ** -0.5)
    # mask_padding: keys (Hugging Face) keeps every position in the landmarks and the convolution
    keep = key_weights(ctx, site.mask if options.mask_padding == "everywhere" else None)
    # `front` only where set: a default spec's IR, and so its ONNX bytes, stay as they were
    segments = {"segments": options.landmarks, **({"front": True} if options.segments == "front" else {})}
    uniform = options.empty_landmarks == "uniform"
    with ctx.at("nystrom"):
        q_marks = ctx.op("segment_means", query, keep, **segments, label="QueryLandmarks")
        k_marks = ctx.op("segment_means", key, keep, **segments, label="KeyLandmarks")

        def softmax_scores(a, b, bias=None):
            scores = ctx.op("attention_scores", a, b, scale=scale, softcap=0.0)
            return ctx.op("softmax", scores if bias is None else ctx.op("add", scores, bias), axis=-1)

        filled, empty_bias = real_landmarks(ctx, key, keep, segments)
        kernel1 = softmax_scores(query, k_marks, empty_bias)  # (B, H, S, m)
        kernel2 = softmax_scores(q_marks, k_marks, empty_bias)  # (B, H, m, m)
        fill = ctx.constant(1.0 / options.landmarks if uniform else np.eye(options.landmarks, dtype=np.float32))
        empty = ctx.op("sub", ctx.constant(1.0), filled)
        fill = ctx.op("mul", fill, empty)  # the empty segments' rows: the identity's, or 1/m throughout
        kernel2 = ctx.op("add", ctx.op("mul", kernel2, filled), fill, label="RealLandmarks")
        padding = ctx.op("padding_bias", site.mask) if site.mask is not None else None
        kernel3 = softmax_scores(q_marks, key, padding)  # (B, H, m, T)
        mixed = ctx.op("attention_context", kernel3, value)  # (B, H, m, Dv)
        if uniform:  # an empty landmark's row of kernel3 weighs the m·⌈T/m⌉ positions alike, padding as zeros
            spread = ctx.op("reduce_mean", ctx.op("segment_means", value, keep, **segments, over="all"), axes=(2,))
            mixed = ctx.op("add", ctx.op("mul", mixed, filled), ctx.op("mul", spread, empty), label="EmptyLandmarks")
        pinv = pseudo_inverse(ctx, kernel2, options.pinv_iterations, options.landmarks, options.pinv_scale)
        context = ctx.op("matmul", kernel1, ctx.op("matmul", pinv, mixed), label="Nystrom")
        if options.conv_kernel:
            weight = ctx.param("conv.weight", (m.heads, 1, options.conv_kernel, 1), "matrix")
            context = ctx.op("add", context, ctx.op("sequence_conv", ctx.op("mul", value, keep), weight))
    return output_projection(ctx, spec, context)


ATTENTION.register("nystrom", NystromOptions, build_nystrom, examples={
    "nystrom_encoder": """
topology: encoder
block: {attention: {kind: nystrom, landmarks: 4, conv_kernel: 3}}
encoder: {layers: 2}
""",
    "nystrom_global_pinv_scale": """
topology: encoder
block: {attention: {kind: nystrom, landmarks: 4, conv_kernel: 5, pinv_scale: global}}
encoder: {layers: 1}
""",
    "nystrom_lucidrains": """
topology: encoder
block: {attention: {kind: nystrom, landmarks: 4, conv_kernel: 3, segments: front, empty_landmarks: uniform,
                    pinv_scale: global}}
encoder: {layers: 1}
""",
    "nystrom_front_segments": """
topology: encoder
block: {attention: {kind: nystrom, landmarks: 4, conv_kernel: 3, segments: front}}
encoder: {layers: 1}
""",
    "nystrom_uniform_empty_landmarks": """
topology: encoder
block: {attention: {kind: nystrom, landmarks: 4, conv_kernel: 0, empty_landmarks: uniform}}
encoder: {layers: 1}
""",
    "nystrom_hf_padding": """
topology: encoder
block: {attention: {kind: nystrom, landmarks: 4, conv_kernel: 5, pinv_scale: global, mask_padding: keys}}
encoder: {layers: 1}
""",
    "nystrom_gqa_no_conv": """
topology: encoder
model: {kv_heads: 2}
block: {attention: {kind: nystrom, landmarks: 3, pinv_iterations: 8, conv_kernel: 0}}
encoder: {layers: 2}
""",
})
