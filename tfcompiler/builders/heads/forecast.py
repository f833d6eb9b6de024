"""Head `forecast`: every decoder step's forecast of the series (Zhou et al. 2021; Hugging Face's time-series
prediction models): a distribution's parameters, each a linear map of the step's state through its domain map
(Hugging Face's parameter_projection, `parameter_projection.proj.<k>`, GluonTS's squareplus
(x + √(x² + 4)) / 2 where a parameter must be positive: Student-T's df = 2 + squareplus, a scale at least float32's
epsilon), and/or a point forecast, Informer's `projection`, a linear map to the output dimensions. With `horizon`
only the last steps (Informer's pred_len: dec_out[:, -pred_len:]).

Outputs: `params.<name>` (B, S) per parameter (B, S, outputs with more than one dimension), in the scaled space: a
caller with Hugging Face's scaler forms the distribution affine-transformed by the model's `loc` and `scale`
outputs (its mean is mean·scale + loc) and samples from it (generate()'s loop); `prediction_outputs` (B, S,
outputs), the point forecast."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...language.kinds import HEADS, HeadKind
from ...language.rules import At
from ...language.schema import option

# each distribution's parameters in Hugging Face's order, and whether its domain map makes it positive
PARAMETERS = {"student_t": (("df", "df"), ("loc", None), ("scale", "scale")),
              "normal": (("loc", None), ("scale", "scale")),
              "negative_binomial": (("total_count", "positive"), ("logits", None))}
EPSILON = float(np.finfo(np.float32).eps)  # Hugging Face clamps a scale at its dtype's epsilon


@dataclass(frozen=True, kw_only=True)
class ForecastOptions(HeadKind):
    """A forecast of every step: a distribution's parameters (Hugging Face) and/or a point forecast (Informer)."""

    PAPER = "Zhou et al. 2021 (Informer's projection); Hugging Face's parameter_projection (GluonTS)"
    COMPUTES = "per step: a linear map per distribution parameter through its domain map (squareplus), and/or a " \
               "linear point forecast; the last `horizon` steps"
    LOWERING = "`MatMul`, `Add`; squareplus: `Mul`, `Add`, `Sqrt`, `Div`, `Max`"

    distribution: str = option("none", doc="The forecast distribution whose parameters the head outputs "
                               "(`params.<name>`): student_t (df, loc, scale), normal (loc, scale), negative_binomial "
                               "(total_count, logits); none: no distribution.", choices=("none",) + tuple(PARAMETERS))
    outputs: int = option(1, doc="The values forecast per step (Hugging Face's input_size, Informer's c_out).",
                          minimum=1)
    point: bool = option(False, doc="A point forecast `prediction_outputs` (B, S, outputs): Informer's linear "
                         "`projection`.")
    horizon: int = option(0, doc="Only the last `horizon` steps are forecast (Informer's pred_len); 0: every step.",
                          minimum=0)

    def parameters(self, spec) -> int:
        maps = len(PARAMETERS.get(self.distribution, ())) + self.point
        return maps * (spec.model.width + 1) * self.outputs

    def problems(self, spec, where):
        if self.distribution == "none" and not self.point:
            yield At("point", "the forecast head outputs nothing: set a distribution or point: true")
        if self.horizon and self.horizon > spec.model.max_length:
            yield At("horizon", f"horizon {self.horizon} is longer than model.max_length {spec.model.max_length}")


def squareplus(ctx, x):
    """(x + √(x² + 4)) / 2: positive, smooth, Hugging Face's DistributionOutput.squareplus."""
    root = ctx.op("sqrt", ctx.op("add", ctx.op("mul", x, x), ctx.constant(4.0)))
    return ctx.op("mul", ctx.op("add", x, root), ctx.constant(0.5), label="Squareplus")


def domain(ctx, x, kind):
    if kind is None:
        return x
    positive = squareplus(ctx, x)
    if kind == "df":  # Student-T's degrees of freedom above 2: a finite variance
        return ctx.op("add", positive, ctx.constant(2.0))
    return ctx.op("clip", positive, low=EPSILON) if kind == "scale" else positive


def build_forecast_head(ctx, options: ForecastOptions, spec, hidden, mask) -> dict:
    """hidden (B, S, D) -> params.<name> and/or prediction_outputs."""
    if options.horizon:
        hidden = ctx.op("slice", hidden, axis=1, start=-options.horizon, label="Horizon")
    outputs = {}
    for k, (name, kind) in enumerate(PARAMETERS.get(options.distribution, ())):
        with ctx.at("parameter_projection", "proj", k):
            value = domain(ctx, ctx.linear(hidden, options.outputs, ""), kind)
            if options.outputs == 1:  # Hugging Face squeezes a one-dimensional event
                value = ctx.op("reshape", value, shape=(0, 0))
        outputs[f"params.{name}"] = value
    if options.point:
        with ctx.at("projection"):
            outputs["prediction_outputs"] = ctx.linear(hidden, options.outputs, "")
    return outputs


HEADS.register("forecast", ForecastOptions, build_forecast_head, examples={
    "informer_point_forecast": """
topology: encoder-decoder
input: {kind: features, features: 3, embedding: conv, time_features: 2}
positional: sinusoidal
block: {placement: post, attention: {kind: prob_sparse, factor: 2}, ffn: {activation: gelu}}
encoder: {layers: 2, final_norm: true, resample: {shorten_at: [1], pooling: distil, queries_only: false}}
decoder: {layers: 1, final_norm: true, block: {cross_attention: {kind: multi_head}}}
head: {kind: forecast, point: true, outputs: 3, horizon: 4}
""",
    "student_t_forecast": """
topology: encoder-decoder
input: {kind: features, value_axis: false, bias: false, context_length: 6, lags: [1, 2], scaling: mean}
positional: {kind: sinusoidal, layout: concatenated}
block: {placement: post}
encoder: {layers: 1}
decoder: {layers: 1}
head: {kind: forecast, distribution: student_t}
""",
    "normal_and_point_forecast": """
topology: encoder
input: {kind: features, features: 2}
encoder: {layers: 1}
head: {kind: forecast, distribution: normal, outputs: 2, point: true}
""",
})
