"""Input layer `features`: a continuous series. Informer (Zhou et al. 2021): each step's values x_t (F) embedded
by a linear map, or by its TokenEmbedding, a Conv1d of kernel 3 over the steps with circular padding,
e_t = Σ_i W[:, :, i] x_{(t + i - 1) mod T} + b; the time features by a linear map (timeF) or, as calendar fields
(month, day, weekday, hour, minute), by the sum of their tables' rows (fixed: row p = [sin(p·w_0), cos(p·w_0),
...], w_i = 10000^(-2i/d); or learned). Hugging Face's TimeSeriesTransformerModel.create_network_inputs: the
scaler over the observed context (mean: the mean absolute observed value, the batch's where a row has none,
loc 0; std: mean and standard deviation, variance + 1e-5), lagged values of the scaled series (the decoder's
lags reach into the past), the static features [categorical embeddings, static reals, log(1 + |loc|),
log(scale)] on every step and the time features after them, then the value embedding."""
from __future__ import annotations

import numpy as np

from ..registry import INPUTS
from .tokens import scaled

CALENDAR = (13, 32, 7, 24, 4)


def calendar_table(size: int, d: int):
    table = np.zeros((size, d))
    angle = np.arange(size)[:, None] / 10000.0 ** (np.arange(0, d, 2)[None, :] / d)
    table[:, 0::2], table[:, 1::2] = np.sin(angle), np.cos(angle)
    return table


def scaler(options, past, observed):
    """loc, scale (B, 1, F) over the last context_length steps."""
    c = options.context_length or past.shape[1]
    x, o = past[:, -c:], observed[:, -c:]
    if options.scaling == "none":
        return np.zeros((len(x), 1, x.shape[2])), np.ones((len(x), 1, x.shape[2]))
    n = o.sum(1, keepdims=True)
    if options.scaling == "mean":
        total = np.abs(x * o).sum(1, keepdims=True)
        batch = total.sum(0) / np.maximum(n.sum(0), 1)
        scale = np.maximum(np.where(n > 0, total / np.maximum(n, 1), batch), 1e-10)
        return np.zeros_like(scale), scale
    loc = (x * o).sum(1, keepdims=True) / np.maximum(n, 1)
    variance = (((x - loc) * o) ** 2).sum(1, keepdims=True) / np.maximum(n, 1)
    return loc, np.sqrt(variance + 1e-5)


@INPUTS.register("features")
class Features:
    def source(self, feeds, prefix: str):
        """The stack's feeds: its values and time features (past_ or future_), and the past ones it reads."""
        return {"own": "future_" if prefix == "decoder_" else "past_", "feeds": feeds}

    def vectors(self, ref, options, own, feeds):
        """(B, S, in): the step vectors before the value embedding."""
        def values(name):
            x = feeds[name].astype("float64")
            return x if options.value_axis else x[..., None]
        x = values(f"{own}values")
        hf = options.lags or options.scaling != "none" or options.static_real or options.static_categorical
        if not hf:
            return x
        past = values("past_values")
        observed = feeds.get("past_observed_mask", np.ones(feeds["past_values"].shape)).astype("float64")
        loc, scale = scaler(options, past, observed if options.value_axis else observed[..., None])
        series = (past - loc) / scale
        c, lags = options.context_length or past.shape[1], options.lags
        if own == "future_":
            series = np.concatenate([series, (x - loc) / scale], axis=1)
            steps = range(past.shape[1], series.shape[1])
        else:
            steps = range(past.shape[1] - c, past.shape[1])
        # step t reads series[t - lag] for each lag, values major and lags minor
        vectors = np.stack([series[:, [t - lag for t in steps]] for lag in lags], axis=-1).reshape(
            len(x), len(steps), -1) if lags else series[:, list(steps)]
        static = []
        for i, width in enumerate(options.dimensions()):
            static.append(ref.w[f"embeddings.static.{i}.weight"][feeds["static_categorical_features"][:, i]])
        if options.static_real:
            static.append(feeds["static_real_features"].astype("float64"))
        if options.scaling != "none":
            static += [np.log1p(np.abs(loc[:, 0])), np.log(scale[:, 0])]
        if static:
            joined = np.concatenate(static, axis=1)
            vectors = np.concatenate([vectors, np.repeat(joined[:, None], len(steps), axis=1)], axis=2)
            if own == "past_":
                ref.present["static_features"] = joined
                if options.scaling != "none":
                    shape = (len(x), 1) if not options.value_axis else loc.shape
                    ref.present.update(loc=loc.reshape(shape), scale=scale.reshape(shape))
        return vectors

    def embed(self, ref, options, scope: str, source, token_types):
        own, feeds = source["own"], source["feeds"]
        x = self.vectors(ref, options, own, feeds)
        d = ref.spec.model.width
        time = feeds.get(f"{own}time_features")
        if time is not None and options.context_length and own == "past_":
            time = time[:, -options.context_length:]
        if time is not None and options.time_embedding == "concatenated":
            x = np.concatenate([x, time], axis=2)
        w = ref.w[f"{scope}.values.weight"]
        if options.embedding == "conv":  # Informer's TokenEmbedding: circular padding of 1 on each side
            wrapped = np.concatenate([x[:, -1:], x, x[:, :1]], axis=1)
            e = sum(wrapped[:, i:i + x.shape[1]] @ w[:, :, i].T for i in range(3))
        else:
            e = x @ w
        if options.bias:
            e = e + ref.w[f"{scope}.values.bias"]
        if time is not None and options.time_embedding == "linear":
            e = e + time @ ref.w[f"{scope}.time.weight"] + ref.w[f"{scope}.time.bias"]
        elif time is not None and options.time_embedding in ("fixed", "learned"):
            fields = time.astype(np.int64)  # Informer's x_mark.long()
            names = ("month", "day", "weekday", "hour", "minute")
            for i in range(options.time_features):
                table = calendar_table(CALENDAR[i], d) if options.time_embedding == "fixed" else \
                    ref.w[f"{scope}.time.{names[i]}.weight"]
                e = e + table[fields[..., i]]
        return scaled(ref.spec, e)
