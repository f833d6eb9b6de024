"""Positional scheme `t5`: the bucketed relative bias of T5 (Raffel et al. 2020). A learned scalar
per head and distance bucket is added to the scores; one table per stack, computed once and shared
by every layer of the stack (T5 computes it in layer 0). Encoders bucket both directions (half the
buckets for keys after the query); decoders bucket only the past. Distances below max_exact = half
the buckets get their own bucket, larger ones share log-spaced buckets up to max_distance.

T5 scales no scores by 1/√d: set `attention: {scale: 1}` (the T5 specs and importer do). The bias
is built from standard ops (Clip/Gather over a compile-time bucket table): onnxruntime's contrib
RelativePositionBias is CUDA-only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ...language.kinds import POSITIONS, PositionalKind
from ...language.rules import At
from ...language.schema import option
from ...language.shrink_rules import cap
from .base import PositionalScheme
from .distance import bucket_index


@dataclass(frozen=True, kw_only=True)
class T5Options(PositionalKind):
    """A learned bias per head and relative-distance bucket, shared by a stack's layers."""

    PAPER = "Raffel et al. 2020"
    COMPUTES = "learned bias per head and log bucket, one table per stack shared by its layers"
    LOWERING = "Clip + Gather of a compile-time bucket table (contrib `RelativePositionBias` is CUDA-only)"

    num_buckets: int = option(32, doc="Distance buckets (halved per direction in encoders).", minimum=2, shrink=cap(8))
    max_distance: int = option(128, doc="Distances from here on share the last bucket.", minimum=2, shrink=cap(16))

    numbers_from_segment_start: ClassVar[bool] = False  # positions enter as query-key distances

    def problems(self, spec, where):
        # a bidirectional stack halves the buckets per direction, and the log-spaced ones start after half of
        # those: fewer than 2 a direction leaves no exact bucket (t5_bucket divided by zero)
        if self.num_buckets < 4 and where.stack != "decoder" and spec.topology != "decoder":
            yield At("num_buckets", f"an encoder halves the buckets per direction and needs 2 in each: "
                                    f"expected at least 4, got {self.num_buckets}")


def t5_bucket(n: np.ndarray, bidirectional: bool, num_buckets: int, max_distance: int) -> np.ndarray:
    """The bucket of key-minus-query distance n, in float32 and truncation as T5's code rounds."""
    n = np.asarray(n, np.int64)
    buckets = np.zeros_like(n)
    if bidirectional:
        num_buckets //= 2
        buckets += (n > 0) * num_buckets
        distance = np.abs(n)
    else:
        distance = -np.minimum(n, 0)
    max_exact = num_buckets // 2
    with np.errstate(divide="ignore", invalid="ignore"):  # log(0): the exact bucket covers 0
        log_ratio = np.log(distance.astype(np.float32) / np.float32(max_exact)) / np.float32(
            math.log(max_distance / max_exact))
        large = max_exact + np.nan_to_num(log_ratio * np.float32(num_buckets - max_exact)).astype(np.int64)
    large = np.minimum(large, num_buckets - 1)
    return buckets + np.where(distance < max_exact, distance, large)


def t5_bias(ctx, options: T5Options, spec, parts, site):
    key = ("t5", site.state["stack"], repr(options))
    if key not in site.state:
        name = f"{site.state['stack']}.relative_attention_bias.weight"
        table = ctx.param("", (options.num_buckets, spec.model.heads), "embedding", full_name=name)
        with ctx.at("relative_attention_bias"):
            index = bucket_index(ctx, parts, lambda n: t5_bucket(n, not parts.causal, options.num_buckets,
                                                                 options.max_distance), options.max_distance)
            bias = ctx.op("transpose", ctx.op("gather", table, index), perm=(2, 0, 1))  # (H, S, T)
            site.state[key] = ctx.op("unsqueeze", bias, axes=(0,), label="T5Bias")
    return parts.add_bias(site.state[key])


POSITIONS.register("t5", T5Options, PositionalScheme(attend=t5_bias), examples={
    "t5_encoder_decoder": """
topology: encoder-decoder
model: {bias: false, head_width: 6}
positional: {kind: t5, num_buckets: 8, max_distance: 12}
block: {norm: {kind: rms_norm, epsilon: 1e-6}, attention: {scale: 1.0}, ffn: {activation: relu}}
encoder: {layers: 2}
decoder: {layers: 2}
""",
})
