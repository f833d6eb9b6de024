"""Informer's distilling layer between encoder layers (Zhou et al. 2021, the `distil` pooling of a stack's
`resample`): X_{j+1} = MaxPool(ELU(Conv1d(X_j))), the Conv1d of kernel 3 over the steps with circular padding,
then BatchNorm, ELU and a max-pooling of kernel 3, stride 2, padding 1, which halves the length (⌈S/2⌉). In
eval mode BatchNorm is a fixed affine map per channel, folded into the convolution's weight `conv.weight`
(width, width, 3) and bias `conv.bias` (the importer folds Hugging Face's running statistics in). The padding
mask keeps the mask of each window's centre step, 2j: a series of n real steps keeps ⌈n/2⌉, the length it
would have distilled alone."""
from __future__ import annotations


def distil(ctx, spec, hidden):
    """(B, S, D) -> (B, ⌈S/2⌉, D)."""
    d = spec.model.width
    with ctx.at("conv"):
        conv = ctx.op("circular_conv", hidden, ctx.param("weight", (d, d, 3), "matrix"),
                      ctx.param("bias", (d,), "zeros"), label="DistilConv")
    return ctx.op("max_pool", ctx.op("elu", conv), kernel=3, stride=2, pad=1, label="Distil")


def distil_mask(ctx, mask):
    """(B, S) -> (B, ⌈S/2⌉): each pooling window's centre step."""
    return ctx.op("slice", mask, axis=1, start=0, step=2, label="DistilMask")
