"""Input layer `features`: a continuous series (B, T, F), F values per step, with its time features (Informer,
Zhou et al. 2021; Hugging Face's TimeSeriesTransformer and Informer).

Graph inputs, as Hugging Face's time-series models name them: the encoder (or a one-stack model) reads
``past_values`` (B, T, F) and ``past_time_features`` (B, T, n); the decoder of an encoder-decoder reads
``future_values`` and ``future_time_features`` (Informer's x_dec and x_mark_dec: the known steps, then the
placeholders of the ones to forecast, as the caller lays them out). With `attention_mask`, each stack also
reads its padding mask (``attention_mask``, ``decoder_attention_mask``), which every length change (the
distilling layers of `resample: {pooling: distil}`) follows.

Each step's values are embedded by a linear map `values.weight` (F, width) (Hugging Face's value_embedding,
without a bias) or Informer's token embedding: a Conv1d of kernel 3 over the steps, padded circularly,
`values.weight` (width, F, 3) in torch's layout. The time features are embedded by a linear map `time.weight`
(n, width) (Informer's timeF), or read as calendar fields (month, day, weekday, hour, minute: integers, the first
n of them) in fixed sinusoidal or learned tables `time.<field>.weight` summed (Informer's TemporalEmbedding), or
concatenated to the values before their embedding (Hugging Face's). Positions come from the model's
`positional`, numbered from `first_position`.

Hugging Face's preprocessing (`scaling`, `lags`, static features, inputs/series.py) runs in the graph when the
spec asks for it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ...ir.types import BATCH
from ...language.kinds import INPUTS, InputKind
from ...language.rules import At
from ...language.schema import option
from ...language.shrink_rules import cap
from .base import StackInput, padding_mask, scaled
from .series import CALENDAR, SCALERS, preprocessed, series_vectors, static_width

TIME_EMBEDDINGS = ("linear", "fixed", "learned", "concatenated")


@dataclass(frozen=True)
class FeatureOptions(InputKind):
    """A continuous series (B, T, F) and its time features, embedded linearly or by Informer's convolution."""

    PAPER = "Zhou et al. 2021 (Informer); Hugging Face's TimeSeriesTransformer and Informer"
    COMPUTES = "float `past_values` (B, T, F) through a linear map or a circular Conv1d (k=3), plus the time " \
               "features' embedding (linear, or fixed / learned calendar tables) or the time features concatenated " \
               "before it; Hugging Face's scaler, lags and static features with `scaling` / `lags`"
    LOWERING = "`MatMul` or `Concat` + `Conv`; `Gather` of the calendar tables; the scaler's `ReduceSum` / `Div`"
    no_cache_because: ClassVar[str] = "a series is read whole: its convolution, lags and scaler read other steps"

    features: int = option(1, doc="F, the values per step (Informer's enc_in, Hugging Face's input_size).",
                           minimum=1, shrink=cap(7))
    value_axis: bool = option(True, doc="The values are (B, T, F); false: (B, T), one value per step, as Hugging "
                              "Face's univariate models take past_values (needs features: 1).")
    embedding: str = option("linear", doc="How a step's vector becomes the model width: linear, `values.weight` "
                            "(in, width); conv, Informer's token embedding, a Conv1d of kernel 3 over the steps with "
                            "circular padding, `values.weight` (width, in, 3).", choices=("linear", "conv"))
    bias: bool = option(True, doc="A bias `values.bias` on the value embedding (Hugging Face's has none).")
    time_features: int = option(0, doc="n, the time features per step (`past_time_features` (B, T, n)); 0: none.",
                                minimum=0)
    time_embedding: str = option("linear", doc="linear: `time.weight` (n, width) and `time.bias` (Informer's "
                                 "timeF); fixed / learned: the features are calendar fields (month 0-12, day 0-31, "
                                 "weekday 0-6, hour 0-23, minute 0-3: the first n, integers), each looked up in a "
                                 "fixed sinusoidal or a learned table `time.<field>.weight`, summed (Informer's "
                                 "TemporalEmbedding); concatenated: appended to the values before their embedding "
                                 "(Hugging Face's).", choices=TIME_EMBEDDINGS)
    attention_mask: bool = option(False, doc="Each stack reads a padding mask (`attention_mask`, "
                                  "`decoder_attention_mask`; 1 for a real step); false: every step is real "
                                  "(Informer and Hugging Face's time-series models take none).")
    first_position: int = option(0, doc="The position of the first step (Hugging Face's time-series decoders "
                                 "continue the encoder's, from context_length).", minimum=0)
    context_length: int = option(0, doc="Hugging Face's context_length: the encoder reads the last "
                                 "context_length steps of past_values, whose earlier max(lags) steps only feed the "
                                 "lags; the scaler reads those last steps. 0: the whole series, no lags.",
                                 minimum=0)
    lags: list[int] = option([], doc="Hugging Face's lags_sequence: each step reads the scaled values `lag` steps "
                             "before it (past_values then holds context_length + max(lags) steps; the decoder "
                             "reads past and future values). Empty: a step reads its own values.")
    scaling: str = option("none", doc="Hugging Face's scaler over the observed context (`past_observed_mask`): "
                          "mean, the mean absolute value (rows with none observed: the batch's); std, the "
                          "standardisation (minimum variance 1e-5); the values are (x - loc) / scale and "
                          "log(1 + |loc|), log(scale) join every step; outputs loc, scale and static_features.",
                          choices=SCALERS)
    static_real: int = option(0, doc="Static real features per series (`static_real_features` (B, n)), joined "
                              "to every step.", minimum=0)
    static_categorical: list[int] = option([], doc="The cardinality of each static categorical feature "
                                           "(`static_categorical_features` (B, n), int64), each embedded by "
                                           "`static.<i>.weight` (cardinality, its dimension), joined to every step.")
    static_dimensions: list[int] = option([], doc="Each categorical feature's embedding dimension; empty: "
                                          "min(50, (cardinality + 1) // 2), Hugging Face's default.")

    def dimensions(self) -> list[int]:
        return self.static_dimensions or [min(50, (c + 1) // 2) for c in self.static_categorical]

    def step_width(self) -> int:
        """The width of a step's vector before the value embedding."""
        concatenated = self.time_features if self.time_embedding == "concatenated" else 0
        return self.features * max(len(self.lags), 1) + static_width(self) + concatenated

    def parameters(self, spec) -> int:
        d, stacks = spec.model.width, max(sum(spec.input_of(name) is self for name, _, _ in spec.stacks()), 1)
        kernel = 3 if self.embedding == "conv" else 1
        time = (self.time_features + 1) * d if self.time_embedding == "linear" else 0
        if self.time_embedding == "learned":
            time = sum(size for _, size in CALENDAR[:self.time_features]) * d
        own = (self.step_width() * kernel + self.bias) * d + time
        return stacks * own + sum(c * n for c, n in zip(self.static_categorical, self.dimensions()))

    def problems(self, spec, where):
        if spec.topology == "hierarchical":
            yield "a hierarchical model reads documents of token ids: input 'features' is for the other topologies"
        if not self.value_axis and self.features != 1:
            yield At("value_axis", f"values without their own axis are one per step: features must be 1, got "
                     f"{self.features}")
        if self.time_embedding != "linear" and not self.time_features:
            yield At("time_embedding", f"time_embedding '{self.time_embedding}' embeds the time features: set "
                     "time_features, their count per step")
        if self.time_embedding in ("fixed", "learned") and self.time_features > len(CALENDAR):
            yield At("time_features", f"calendar tables cover {len(CALENDAR)} fields "
                     f"({', '.join(name for name, _ in CALENDAR)}), got {self.time_features}")
        if self.lags and not self.context_length:
            yield At("lags", "lagged values reach back before the context: set context_length, the steps the "
                     "encoder reads (past_values then holds context_length + max(lags))")
        if any(lag < 0 for lag in self.lags):
            yield At("lags", f"lags count steps back and are at least 0, got {self.lags}")
        if self.static_dimensions and len(self.static_dimensions) != len(self.static_categorical):
            yield At("static_dimensions", f"one embedding dimension per categorical feature: "
                     f"{len(self.static_categorical)} features, {len(self.static_dimensions)} dimensions")
        if any(c < 1 for c in self.static_categorical + self.static_dimensions):
            yield At("static_categorical", "cardinalities and dimensions are at least 1")
        if spec.topology == "encoder-decoder" and where.stack == "decoder" and preprocessed(self):
            yield from self._past_problems(spec.input_of("encoder"))
        if self.context_length > spec.model.max_length:
            yield At("context_length", f"context_length {self.context_length} exceeds model.max_length "
                     f"{spec.model.max_length}, the positions the tables cover", located="model.max_length")

    def _past_problems(self, encoder):
        """A decoder's own `features` whose preprocessing reads the past series: the encoder's, read alike."""
        if not isinstance(encoder, FeatureOptions):
            yield "the decoder's series is scaled, lagged or joined by static features from past_values, which the " \
                  f"encoder reads: the encoder must read 'features' too, not '{type(encoder).KIND}'"
            return
        for name in PAST_OPTIONS:
            if getattr(self, name) != getattr(encoder, name):
                yield At(name, f"the decoder reads the encoder's past series: {name} must be the encoder's "
                         f"({getattr(encoder, name)!r}), got {getattr(self, name)!r}")


# what a decoder's `features` shares with the encoder's when it reads the past series
PAST_OPTIONS = ("features", "value_axis", "context_length", "lags", "scaling", "static_real", "static_categorical",
                "static_dimensions")


def stack_prefix(spec, stack_name: str) -> str:
    """past_ for the encoder or a one-stack model, future_ for an encoder-decoder's decoder."""
    return "future_" if spec.topology == "encoder-decoder" and stack_name == "decoder" else "past_"


def build_features(ctx, options: FeatureOptions, spec, stack_name: str) -> StackInput:
    names = StackInput.input_names(spec, stack_name)
    prefix = stack_prefix(spec, stack_name)
    steps = (BATCH,) + names.axes  # (B, T)
    vectors, values = series_vectors(ctx, options, prefix, steps, encoder=prefix == "past_")
    if options.time_features:
        calendar = options.time_embedding in ("fixed", "learned")  # each column indexes its table
        time = ctx.input(f"{prefix}time_features", "float32", tuple(ctx.type_of(values).shape[:2]) +
                         (options.time_features,), role="calendar_fields" if calendar else "time_features",
                         **({"range": tuple(size for _, size in CALENDAR[:options.time_features])} if calendar else {}))
        if options.context_length and prefix == "past_":  # past_time_features covers the lags' steps too
            time = ctx.op("slice", time, axis=1, start=-options.context_length)
        if options.time_embedding == "concatenated":
            vectors = ctx.op("concat", vectors, time, axis=2, label="WithTimeFeatures")
    hidden = embed_values(ctx, options, spec, vectors)
    if options.time_features and options.time_embedding != "concatenated":
        hidden = ctx.op("add", hidden, embed_time(ctx, options, spec, time), label="TimeEmbedding")
    mask = padding_mask(ctx, names) if options.attention_mask else None
    return StackInput(hidden=scaled(ctx, spec, hidden), mask=mask, ids=hidden, first_position=options.first_position)


def embed_values(ctx, options: FeatureOptions, spec, vectors):
    """(B, S, in) -> (B, S, width): a linear map, or Informer's circular Conv1d of kernel 3."""
    if options.embedding == "linear":
        return ctx.linear(vectors, spec.model.width, "values", bias=options.bias)
    width = ctx.type_of(vectors).shape[-1]
    with ctx.at("values"):
        weight = ctx.param("weight", (spec.model.width, width, 3), "matrix")
        bias = [ctx.param("bias", (spec.model.width,), "zeros")] if options.bias else []
        return ctx.op("circular_conv", vectors, weight, *bias, label="TokenConv")


def calendar_table(size: int, width: int) -> np.ndarray:
    """Informer's FixedEmbedding: row p holds sin(p·w_i) at 2i and cos(p·w_i) at 2i + 1, w_i = 10000^(-2i/width)."""
    angles = np.arange(size)[:, None] * np.exp(np.arange(0, width, 2) * -(np.log(10000.0) / width))
    table = np.zeros((size, width))
    table[:, 0::2], table[:, 1::2] = np.sin(angles), np.cos(angles)
    return table.astype(np.float32)


def embed_time(ctx, options: FeatureOptions, spec, time):
    """(B, S, n) time features -> (B, S, width)."""
    if options.time_embedding == "linear":
        return ctx.linear(time, spec.model.width, "time")
    fields = ctx.op("cast", time, dtype="int64", label="CalendarFields")  # Informer's x_mark.long()
    total = None
    with ctx.at("time"):
        for i, (name, size) in enumerate(CALENDAR[:options.time_features]):
            table = ctx.param(f"{name}.weight", (size, spec.model.width), "embedding") \
                if options.time_embedding == "learned" else ctx.constant(calendar_table(size, spec.model.width))
            looked_up = ctx.op("gather", table, ctx.op("gather", fields, ctx.constant(i, dtype="int64"), axis=2),
                               label=f"{name.title()}Embedding")
            total = looked_up if total is None else ctx.op("add", total, looked_up)
    return total


INPUTS.register("features", FeatureOptions, build_features, examples={
    "informer_conv_features": """
topology: encoder-decoder
input: {kind: features, features: 3, embedding: conv, time_features: 2}
positional: sinusoidal
block: {placement: post, ffn: {activation: gelu}}
encoder: {layers: 2, final_norm: true}
decoder: {layers: 1, final_norm: true}
""",
    "calendar_features_encoder": """
topology: encoder
input: {kind: features, features: 2, time_features: 4, time_embedding: fixed, attention_mask: true}
positional: learned
encoder: {layers: 1}
""",
    # Informer's encoder with its distilling layers, the padding mask pooled with the steps
    "distilled_features_encoder": """
topology: encoder
input: {kind: features, features: 3, embedding: conv, time_features: 2, attention_mask: true}
positional: sinusoidal
block: {placement: post, attention: {kind: prob_sparse, factor: 2}, ffn: {activation: gelu}}
encoder: {layers: 3, final_norm: true, resample: {shorten_at: [1, 2], pooling: distil, queries_only: false}}
""",
    # Hugging Face's TimeSeriesTransformer inputs: scaler, lags, static features, time features concatenated
    "hugging_face_series_encoder_decoder": """
topology: encoder-decoder
input: {kind: features, features: 2, bias: false, time_features: 2, time_embedding: concatenated, context_length: 6,
        lags: [1, 3], scaling: mean, static_real: 1, static_categorical: [3, 5], static_dimensions: [2, 3]}
positional: {kind: sinusoidal, layout: concatenated}
embedding: {norm: layer_norm}
block: {placement: post, ffn: {activation: gelu}}
encoder: {layers: 1}
decoder: {layers: 1}
""",
    "standardised_univariate_series": """
topology: encoder
input: {kind: features, value_axis: false, context_length: 5, lags: [0, 2], scaling: std}
block: {attention: {kind: prob_sparse, factor: 1, counts: hugging_face}}
encoder: {layers: 1}
""",
    "learned_calendar_features_encoder": """
topology: encoder
input: {kind: features, features: 4, embedding: conv, bias: false, time_features: 3, time_embedding: learned}
positional: none
block: {placement: post}
encoder: {layers: 1}
""",
})
