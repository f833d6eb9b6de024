"""Norms: LayerNorm (Ba et al. 2016) and RMSNorm (Zhang & Sennrich 2019), kept as canonical IR ops."""
from __future__ import annotations

from ..language.model import Norm


def build_norm(ctx, x, norm: Norm, name: str, bias: bool = True):
    """Normalise the last axis of x with a learned scale (and bias, for LayerNorm)."""
    width = ctx.type_of(x).shape[-1]
    with ctx.at(name):
        scale = ctx.param("weight", (width,), "ones")
        if norm.kind == "rms_norm":
            return ctx.op("rms_norm", x, scale, epsilon=norm.epsilon, label="RMSNorm")
        params = [scale, ctx.param("bias", (width,), "zeros")] if bias else [scale]
        return ctx.op("layer_norm", x, *params, epsilon=norm.epsilon, label="LayerNorm")
