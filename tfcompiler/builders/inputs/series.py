"""What Hugging Face's time-series models (TimeSeriesTransformerModel.create_network_inputs, InformerModel's)
compute before the transformer, for the `features` input, as plain ONNX:

- the scaler over the observed context (the last context_length steps, `past_observed_mask` 1 where a value
  was observed): mean, scale = Σ|x·o| / max(Σo, 1) per series and value, rows with nothing observed taking
  the batch's Σ|x·o| / max(Σo, 1), at least 1e-10, loc = 0; std, loc = Σx·o / max(Σo, 1), scale =
  √(Σ((x - loc)·o)² / max(Σo, 1) + 1e-5); the series becomes (x - loc) / scale;
- lags: step j reads the scaled values `lag` steps before it, for each lag (values major, lags minor:
  index value·lags + lag), the decoder's reaching back into the past values;
- static features joined to every step: the categorical features' embeddings, the static real features,
  log(1 + |loc|) and log(scale).

Graph outputs (the encoder's): `loc` and `scale` (B, 1, F), or (B, 1) without a value axis, and
`static_features` (B, K), as Hugging Face's model outputs name them."""
from __future__ import annotations

from ...ir.types import BATCH, SEQUENCE

SCALERS = ("none", "mean", "std")
# Informer's TemporalEmbedding: the calendar fields and their table sizes, in the order x_mark holds them
CALENDAR = (("month", 13), ("day", 32), ("weekday", 7), ("hour", 24), ("minute", 4))
MINIMUM_SCALE = {"mean": 1e-10, "std": 1e-5}  # Hugging Face's scalers' minimum_scale defaults


def static_width(options) -> int:
    """K, the static features joined to every step."""
    return sum(options.dimensions()) + options.static_real + (2 * options.features if options.scaling != "none"
                                                               else 0)


def preprocessed(options) -> bool:
    """Hugging Face's preprocessing runs: the series is scaled, lagged or joined by static features."""
    return bool(options.lags or options.scaling != "none" or options.static_real or options.static_categorical)


def series_vectors(ctx, options, prefix: str, steps: tuple, encoder: bool):
    """A stack's step vectors (B, S, in) before their embedding, and the values input its steps count along."""
    def read(name, stack_steps):
        return ctx.input(name, "float32", stack_steps + ((options.features,) if options.value_axis else ()),
                         role="series")

    # with a context_length the past has a fixed length: the context and the steps the lags reach back
    past_steps = (BATCH, options.context_length + max(options.lags, default=0)) if options.context_length \
        else (BATCH, SEQUENCE)
    own = read(f"{prefix}values", past_steps if encoder else steps)
    if not preprocessed(options):
        return as_steps(ctx, options, own), own
    past = own if encoder else read("past_values", past_steps)
    with ctx.at_path("embeddings.scaler"):  # one scaler for both stacks (the decoder's is the same nodes)
        loc, scale = scaler(ctx, options, as_steps(ctx, options, past))
    series = ctx.op("div", ctx.op("sub", as_steps(ctx, options, past), loc), scale, label="Scaled")
    if not encoder:
        future = ctx.op("div", ctx.op("sub", as_steps(ctx, options, own), loc), scale, label="ScaledFuture")
        series = ctx.op("concat", series, future, axis=1) if options.lags else future
    vectors = lagged(ctx, options, series, encoder)
    static = static_features(ctx, options, loc, scale)
    if static is not None:
        if encoder:
            outputs(ctx, options, loc, scale, static)
        vectors = ctx.op("concat", vectors, ctx.op("spread_steps", static, vectors), axis=2, label="WithStatic")
    return vectors, own


def as_steps(ctx, options, values):
    """(B, T) univariate values -> (B, T, 1); (B, T, F) as they are."""
    return values if options.value_axis else ctx.op("unsqueeze", values, axes=(2,))


def context(ctx, options, x):
    """The last context_length steps (all of them without a context_length)."""
    return ctx.op("slice", x, axis=1, start=-options.context_length) if options.context_length else x


def scaler(ctx, options, past):
    """loc and scale (B, 1, F) over the observed context."""
    if options.scaling == "none":
        return ctx.constant(0.0), ctx.constant(1.0)
    observed = ctx.input("past_observed_mask", "float32", ctx.type_of(past).shape if options.value_axis
                         else ctx.type_of(past).shape[:2], role="observed_mask")
    x, seen = context(ctx, options, past), context(ctx, options, as_steps(ctx, options, observed))
    count = ctx.op("reduce_sum", seen, axes=(1,), keepdims=True, label="Observed")
    least = ctx.op("clip", count, low=1.0)
    if options.scaling == "mean":
        total = ctx.op("reduce_sum", ctx.op("abs", ctx.op("mul", x, seen)), axes=(1,), keepdims=True)
        batch = ctx.op("div", ctx.op("reduce_sum", total, axes=(0,), keepdims=True),
                       ctx.op("clip", ctx.op("reduce_sum", count, axes=(0,), keepdims=True), low=1.0),
                       label="BatchScale")  # rows with nothing observed take the batch's (Hugging Face's)
        scale = ctx.op("where", ctx.op("less", ctx.constant(0.0), count), ctx.op("div", total, least), batch)
        scale = ctx.op("clip", scale, low=MINIMUM_SCALE["mean"], label="MeanScale")
        return ctx.op("mul", scale, ctx.constant(0.0), label="Loc"), scale
    loc = ctx.op("div", ctx.op("reduce_sum", ctx.op("mul", x, seen), axes=(1,), keepdims=True), least, label="Loc")
    deviation = ctx.op("mul", ctx.op("sub", x, loc), seen)
    variance = ctx.op("div", ctx.op("reduce_sum", ctx.op("mul", deviation, deviation), axes=(1,), keepdims=True),
                      least)
    return loc, ctx.op("sqrt", ctx.op("add", variance, ctx.constant(MINIMUM_SCALE["std"])), label="StdScale")


def lagged(ctx, options, series, encoder: bool):
    """(B, S, F·lags): step j of the stack reads series[j + base - lag] for each lag, base = max(lags) in the
    encoder (series: the past) and the past's length in the decoder (series: past then future). Without
    lags: the encoder's context, the decoder's own steps."""
    if not options.lags:
        return context(ctx, options, series) if encoder else series
    base = max(options.lags) + (0 if encoder else options.context_length)
    taps = [ctx.op("unsqueeze", ctx.op("slice", series, axis=1, start=base - lag, end=-lag if lag else None,
                                       label=f"Lag{lag}"), axes=(3,)) for lag in options.lags]
    stacked = ctx.op("concat", *taps, axis=3) if len(taps) > 1 else taps[0]  # (B, S, F, lags)
    return ctx.op("reshape", stacked, shape=(0, 0, options.features * len(options.lags)), label="Lags")


def static_features(ctx, options, loc, scale):
    """(B, K): categorical embeddings, static reals, log(1 + |loc|), log(scale); None when K is 0."""
    parts = []
    if options.static_categorical:
        ids = ctx.input("static_categorical_features", "int64", (BATCH, len(options.static_categorical)),
                        role="static_categorical", range=tuple(options.static_categorical))
        with ctx.at_path("embeddings.static"):
            for i, (size, width) in enumerate(zip(options.static_categorical, options.dimensions())):
                table = ctx.param(f"{i}.weight", (size, width), "embedding")
                parts.append(ctx.op("gather", table, ctx.op("gather", ids, ctx.constant(i, dtype="int64"), axis=1)))
    if options.static_real:
        parts.append(ctx.input("static_real_features", "float32", (BATCH, options.static_real),
                               role="static_real"))
    if options.scaling != "none":
        f = options.features
        parts.append(ctx.op("reshape", ctx.op("log", ctx.op("add", ctx.op("abs", loc), ctx.constant(1.0))),
                            shape=(0, f), label="LogAbsLoc"))
        parts.append(ctx.op("reshape", ctx.op("log", scale), shape=(0, f), label="LogScale"))
    if not parts:
        return None
    return ctx.op("concat", *parts, axis=1, label="StaticFeatures") if len(parts) > 1 else parts[0]


def outputs(ctx, options, loc, scale, static):
    """loc, scale and static_features as Hugging Face's model outputs hold them."""
    if options.scaling != "none":
        shape = (0, 1, options.features) if options.value_axis else (0, 1)
        ctx.graph.outputs.update(loc=ctx.op("reshape", loc, shape=shape), scale=ctx.op("reshape", scale, shape=shape))
    ctx.graph.outputs["static_features"] = static
