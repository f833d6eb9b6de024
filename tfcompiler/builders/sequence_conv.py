"""A 1-D convolution along the sequence that keeps its length: the text-to-speech pre-nets' and post-net's
Conv1d (Li et al. 2019; Tacotron 2), BatchNorm folded into its weight and bias. The IR's `conv` over the states
turned channels-first, an odd kernel k zero-padded by (k - 1) / 2 at each end, turned back."""
from __future__ import annotations


def sequence_conv(ctx, x, weight, bias, label: str = "Conv"):
    """x (B, S, Cin), weight (Cout, Cin, k) with k odd, bias (Cout,) -> (B, S, Cout): torch's Conv1d over x
    transposed to (B, Cin, S) with padding k // 2, transposed back."""
    kernel = ctx.type_of(weight).shape[2]
    channels_first = ctx.op("transpose", x, perm=(0, 2, 1))
    out = ctx.op("conv", channels_first, weight, bias, strides=(1,), pads=(kernel // 2,), label=label)
    return ctx.op("transpose", out, perm=(0, 2, 1))
