"""Attention kind `nystrom`: Nyströmformer (Xiong et al. 2021). With m landmarks Q̃, K̃ (means of m
segments of the queries and keys, over real tokens only):

  Ŝ V = softmax(Q K̃ᵀ/√d) · pinv(softmax(Q̃ K̃ᵀ/√d)) · softmax(Q̃ Kᵀ/√d) V  (+ depth-wise conv of V)

pinv by `pinv_iterations` Newton–Schulz steps Z ← ¼ Z (13I − AZ (15I − AZ (7I − AZ))) from
Z₀ = Aᵀ / (max column sum · max row sum), the maxima taken per sample and head (a batch-wide maximum
would make a sample's output depend on its batch mates). Any length works: segments are
ceil(S/m) long, the last ones short (lucidrains instead pads the front to a multiple of m).
Padded keys are masked in the last softmax and left out of the landmarks. A segment with no real key
(all padding, or past the end when S is not a multiple of m) is no landmark: no query attends it
and its row and column of softmax(Q̃ K̃ᵀ) are the identity's, so the pseudo-inverse is the real
landmarks' one (Newton–Schulz keeps the block structure, and the identity's column sums of 1 never
exceed a softmax block's largest) and the result is the real landmarks' alone. Bidirectional only.
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

    def problems(self, spec, where):
        yield from bidirectional_only("nystrom", spec)
        if self.conv_kernel and self.conv_kernel % 2 == 0:
            yield f"conv_kernel must be odd or 0, got {self.conv_kernel}"
        if self.conv_kernel and spec.model.kv != spec.model.heads:
            yield "the nystrom value convolution is per head: kv_heads must equal heads (or conv_kernel: 0)"


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


def real_landmarks(ctx, key, keep, count: int):
    """(B, 1, m, 1) 1.0 for the segments holding a real key, and the (B, 1, 1, m) bias that masks the others."""
    first = ctx.constant([0], dtype="int64")
    position = ctx.op("gather", ctx.op("gather", key, first, axis=1), first, axis=3)  # (B, 1, T, 1)
    real = ctx.op("mul", ctx.op("add", ctx.op("mul", position, ctx.constant(0.0)), ctx.constant(1.0)), keep)
    filled = ctx.op("segment_means", real, real, segments=count, label="FilledSegments")
    as_mask = ctx.op("cast", ctx.op("reshape", filled, shape=(0, count)), dtype="int64")  # (B, m)
    return filled, ctx.op("padding_bias", as_mask)


def build_nystrom(ctx, options: NystromOptions, spec, site):
    m = spec.model
    query, key, value = project(ctx, spec, site)
    scale = float(m.dh ** -0.5)
    keep = key_weights(ctx, site.mask)
    with ctx.at("nystrom"):
        q_marks = ctx.op("segment_means", query, keep, segments=options.landmarks, label="QueryLandmarks")
        k_marks = ctx.op("segment_means", key, keep, segments=options.landmarks, label="KeyLandmarks")

        def softmax_scores(a, b, bias=None):
            scores = ctx.op("attention_scores", a, b, scale=scale, softcap=0.0)
            return ctx.op("softmax", scores if bias is None else ctx.op("add", scores, bias), axis=-1)

        filled, empty_bias = real_landmarks(ctx, key, keep, options.landmarks)
        kernel1 = softmax_scores(query, k_marks, empty_bias)  # (B, H, S, m)
        kernel2 = softmax_scores(q_marks, k_marks, empty_bias)  # (B, H, m, m)
        identity = ctx.op("mul", ctx.constant(np.eye(options.landmarks, dtype=np.float32)),
                          ctx.op("sub", ctx.constant(1.0), filled))
        kernel2 = ctx.op("add", ctx.op("mul", kernel2, filled), identity, label="RealLandmarks")
        padding = ctx.op("padding_bias", site.mask) if site.mask is not None else None
        kernel3 = softmax_scores(q_marks, key, padding)  # (B, H, m, T)
        mixed = ctx.op("attention_context", kernel3, value)  # (B, H, m, Dv)
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
    "nystrom_gqa_no_conv": """
topology: encoder
model: {kv_heads: 2}
block: {attention: {kind: nystrom, landmarks: 3, pinv_iterations: 8, conv_kernel: 0}}
encoder: {layers: 2}
""",
})
