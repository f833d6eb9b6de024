"""Input layer `frames`: speech features (log-mel filterbanks) (B, T, F) shortened by strided convolutions
before an encoder, as Speech-Transformer (Dong et al. 2018) and Speech2Text (Wang et al. 2020) read them.

Graph inputs are Hugging Face's: float ``input_features`` (B, frames, F) and the frames' ``attention_mask``
(B, frames), 1 for a real frame, rows padded at the end (as feature extractors pad). Two subsamplers:

- ``conv2d`` (Speech-Transformer): the features as a one-channel image (B, 1, T, F), two Conv2d 3×3 of stride 2,
  each followed by a ReLU, then (B, T', C, F') flattened per frame and one linear map ``frames.weight``
  (C·F', width) plus ``frames.bias`` (ESPnet's Conv2dSubsampling, with `padding: none`).
- ``conv1d_glu`` (Hugging Face's Speech2Text Conv1dSubsampler): the F features as channels, Conv1d of stride 2
  and padding k // 2 for each kernel k, each followed by a GLU over the channels (which halves them); the last
  conv has 2·width channels, so its GLU gives the width.

Each conv's weight ``conv.{i}.weight`` and bias ``conv.{i}.bias`` are torch's (out, in, k[, k]), which is ONNX
Conv's layout. Every conv shortens the frames to T' = (T + 2·pad - k) // 2 + 1, and the padding mask follows
by the same arithmetic on each row's length (Speech2Text's `_get_feat_extract_output_lengths`). The length of
the input is bounded at run time: at least the frames that leave one state, at most those whose states fit
`model.max_length` (the axis bounds in the model's metadata, `tfcompiler.axis_bounds`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from ...ir.types import BATCH
from ...language.kinds import INPUTS, InputKind
from ...language.rules import At
from ...language.schema import option
from ...language.shrink_rules import Rule, input_features
from .base import StackInput, scaled

FRAMES = "frames"  # the input's time axis, before subsampling
STRIDE = 2  # both papers halve the frames at every convolution
DEFAULT_KERNELS = {"conv2d": [3, 3], "conv1d_glu": [5, 5]}

# conv channels: the same share of the shrunk width (even: a GLU halves them); 0 (the width) stays 0
frame_channels = Rule("frame_channels", lambda value, section, scale: value and max(
    2, 2 * math.ceil(value * scale.new.width / scale.old.width / 2)))


@dataclass(frozen=True)
class FrameOptions(InputKind):
    """Speech feature frames (B, T, F), shortened by strided convolutions (T' ≈ T/4) before the encoder."""

    PAPER = "Dong et al. 2018 (Speech-Transformer); Wang et al. 2020 (Speech2Text)"
    COMPUTES = "float `input_features` (B, T, F) through stride-2 convolutions: two Conv2d 3×3 + ReLU and a " \
               "linear map (conv2d), or Conv1d + GLU (conv1d_glu); the padding mask by the same length arithmetic"
    LOWERING = "`Conv`, `Relu` or `Sigmoid`·`Mul` (GLU), `Transpose`, `Reshape`, `MatMul`; the mask: " \
               "`ReduceSum`, `Floor`, `Range`, `Less`"
    no_cache_because: ClassVar[str] = "a frame's state depends on the frames around it (a convolution)"

    features: int = option(80, doc="F, the features per frame (mel filterbank bins).", minimum=1,
                           shrink=input_features)
    subsampler: str = option("conv1d_glu", doc="conv2d: Speech-Transformer's two Conv2d 3×3 of stride 2 with "
                             "ReLU over (frames, features), then a linear map to the width; conv1d_glu: Speech2Text's "
                             "Conv1d of stride 2 over the frames, the features as channels, each with a GLU.",
                             choices=("conv2d", "conv1d_glu"))
    kernels: list[int] = option([], doc="Each convolution's kernel size (one stride-2 convolution each); empty: "
                                "the subsampler's own, [3, 3] (conv2d) or [5, 5] (conv1d_glu, Speech2Text's "
                                "conv_kernel_sizes).")
    channels: int = option(0, doc="The convolutions' channels: conv2d's C (0: the model width, as ESPnet); "
                           "conv1d_glu's conv_channels between the convolutions (0: the width; a GLU halves "
                           "them, so they are even).", minimum=0, shrink=frame_channels)
    padding: str = option("half", doc="half: each convolution zero-pads k // 2 frames (and features) at both "
                          "ends (Dong et al., Speech2Text), T' = (T - 1) // 2 + 1 for odd k; none: no padding "
                          "(ESPnet's Conv2dSubsampling, T' = (T - k) // 2 + 1).", choices=("half", "none"))

    def kernel_sizes(self) -> list[int]:
        return list(self.kernels) or DEFAULT_KERNELS[self.subsampler]

    def conv_channels(self, spec) -> int:
        return self.channels or spec.model.width

    def layers(self) -> tuple[tuple[int, int, int], ...]:
        """(kernel, stride, pad) of each convolution along the frames."""
        return tuple((k, STRIDE, k // 2 if self.padding == "half" else 0) for k in self.kernel_sizes())

    def subsampled(self, length: int) -> int:
        """The states T' of `length` frames."""
        for kernel, stride, pad in self.layers():
            length = (length + 2 * pad - kernel) // stride + 1
        return length

    def fewest(self) -> int:
        """The fewest frames (or conv2d's features) that leave one state."""
        least = 1
        for kernel, stride, pad in reversed(self.layers()):  # (n + 2p - k) // s + 1 >= m  <=>  n >= s(m-1) + k - 2p
            least = max(1, stride * (least - 1) + kernel - 2 * pad)
        return least

    def frame_bounds(self, spec) -> tuple[int, int]:
        """The fewest frames that leave one state, and the most whose states fit `model.max_length`."""
        most = spec.model.max_length
        for kernel, stride, pad in reversed(self.layers()):  # (n + 2p - k) // s + 1 <= m  <=>  n <= s·m - 1 + k - 2p
            most = stride * most - 1 + kernel - 2 * pad
        return self.fewest(), most

    def feature_width(self) -> int:
        """conv2d: F' after the convolutions along the features."""
        width = self.features
        for kernel, stride, pad in self.layers():
            width = (width + 2 * pad - kernel) // stride + 1
        return width

    def parameters(self, spec) -> int:
        kernels, d = self.kernel_sizes(), spec.model.width
        if self.subsampler == "conv2d":
            c = self.conv_channels(spec)
            convs = sum((1 if i == 0 else c) * c * k * k + c for i, k in enumerate(kernels))
            return convs + (c * max(self.feature_width(), 1) + 1) * d
        ins = [self.features] + [self.conv_channels(spec) // 2] * (len(kernels) - 1)
        outs = [self.conv_channels(spec)] * (len(kernels) - 1) + [2 * d]
        return sum(i * o * k + o for i, o, k in zip(ins, outs, kernels))

    def problems(self, spec, where):
        if any(k < 1 for k in self.kernel_sizes()):
            yield At("kernels", f"kernel sizes are at least 1, got {self.kernel_sizes()}")
            return
        if self.subsampler == "conv1d_glu" and self.conv_channels(spec) % 2:
            yield At("channels", f"a GLU halves the channels of each convolution: give an even count, got "
                     f"{self.conv_channels(spec)}")
        if self.subsampler == "conv2d" and self.feature_width() < 1:
            yield At("features", f"{self.features} features are too few for the {len(self.layers())} unpadded "
                     f"convolutions of kernels {self.kernel_sizes()} (stride 2): give at least "
                     f"{self.fewest()}")
        for stack in readers(spec, where):
            if stack != "encoder":
                yield f"input 'frames' is subsampled by convolutions over the whole input, which an encoder reads: " \
                      f"the {stack} cannot read it (topology '{spec.topology}'; an encoder-decoder's decoder " \
                      "reads tokens: `decoder: {input: {kind: tokens}}`)"


def readers(spec, where) -> list[str]:
    """The stacks that read this input section: its own stack (a stack's `input`), or those that take the
    spec's top-level input."""
    if where.stack in ("encoder", "decoder", "document"):
        return [where.stack]
    return [name for name, _, _ in spec.stacks() if spec.input_of(name) is spec.input]


def conv2d_frames(ctx, options: FrameOptions, spec, features):
    """(B, T, F) -> (B, T', width): Conv2d + ReLU per kernel over the one-channel (T, F) image, each frame's
    (C, F') flattened and mapped to the width."""
    channels = options.conv_channels(spec)
    x = ctx.op("unsqueeze", features, axes=(1,))  # (B, 1, T, F)
    for i, (kernel, stride, pad) in enumerate(options.layers()):
        with ctx.at("conv", i):
            weight = ctx.param("weight", (channels, 1 if i == 0 else channels, kernel, kernel), "matrix")
            bias = ctx.param("bias", (channels,), "zeros")
            x = ctx.op("relu", ctx.op("conv", x, weight, bias, strides=(stride, stride), pads=(pad, pad),
                                      label="Conv"))
    x = ctx.op("transpose", x, perm=(0, 2, 1, 3))  # (B, T', C, F'): ESPnet's view(b, t, c * f)
    x = ctx.op("reshape", x, shape=(0, 0, channels * options.feature_width()), label="FramesFlat")
    return ctx.linear(x, spec.model.width, "frames")


def conv1d_glu_frames(ctx, options: FrameOptions, spec, features):
    """(B, T, F) -> (B, T', width): Conv1d + GLU per kernel, the features as channels."""
    kernels = options.kernel_sizes()
    x = ctx.op("transpose", features, perm=(0, 2, 1))  # (B, F, T)
    channels_in = options.features
    for i, (kernel, stride, pad) in enumerate(options.layers()):
        out = options.conv_channels(spec) if i < len(kernels) - 1 else 2 * spec.model.width
        with ctx.at("conv", i):
            weight = ctx.param("weight", (out, channels_in, kernel), "matrix")
            x = ctx.op("conv", x, weight, ctx.param("bias", (out,), "zeros"), strides=(stride,), pads=(pad,),
                       label="Conv")
            value, gate = ctx.graph.add("split", (x,), dict(axis=1, sizes=(out // 2, out // 2)), origin=ctx.origin)
            x = ctx.op("mul", value, ctx.op("sigmoid", gate), label="GLU")
        channels_in = out // 2
    return ctx.op("transpose", x, perm=(0, 2, 1))


SUBSAMPLERS = {"conv2d": conv2d_frames, "conv1d_glu": conv1d_glu_frames}


def build_frames(ctx, options: FrameOptions, spec, stack_name: str) -> StackInput:
    names = StackInput.input_names(spec, stack_name)
    features = ctx.input("input_features", "float32", (BATCH, FRAMES, options.features), role="input_features")
    mask = ctx.input(names.prefix + "attention_mask", "int64", (BATCH, FRAMES), role="padding_mask")
    ctx.graph.metadata.setdefault("axis_bounds", {})[FRAMES] = options.frame_bounds(spec)
    hidden = SUBSAMPLERS[options.subsampler](ctx, options, spec, features)
    mask = ctx.op("subsampled_mask", mask, hidden, layers=options.layers(), label="SubsampledMask")
    return StackInput(hidden=scaled(ctx, spec, hidden), mask=mask, ids=hidden)  # positions count along T'


INPUTS.register("frames", FrameOptions, build_frames, examples={
    "speech_transformer_frames_ctc": """
topology: encoder
input: {kind: frames, subsampler: conv2d, features: 9, channels: 4}
positional: {kind: sinusoidal}
block: {placement: pre, ffn: {activation: relu}}
encoder: {layers: 2}
head: {kind: ctc}
""",
    "speech2text_frames": """
topology: encoder
input: {kind: frames, subsampler: conv1d_glu, features: 6, channels: 10, kernels: [5, 3]}
positional: {kind: sinusoidal, layout: concatenated, spacing: fairseq, offset: 2}
embedding: {scale: true}
block: {placement: pre, ffn: {activation: relu}}
encoder: {layers: 2}
""",
    "espnet_unpadded_frames": """
topology: encoder
input: {kind: frames, subsampler: conv2d, features: 11, channels: 3, padding: none}
positional: learned
block: {placement: post}
encoder: {layers: 1}
head: {kind: pooler, pooling: mean}
""",
})
