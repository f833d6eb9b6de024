"""Head `forecast`: per step (the last `horizon` steps where given), Hugging Face's parameter_projection, one linear
map per parameter of the distribution through its domain map, squareplus(x) = (x + √(x² + 4)) / 2 for the positive
ones (Student-T's df = 2 + squareplus; a scale at least float32's epsilon; negative binomial's total count), the
last axis dropped for a one-dimensional forecast; and Informer's point forecast, the linear `projection`."""
from __future__ import annotations

import numpy as np

from ..registry import HEADS

PARAMETERS = {"student_t": ("df", "loc", "scale"), "normal": ("loc", "scale"),
              "negative_binomial": ("total_count", "logits")}


def squareplus(x):
    return (x + np.sqrt(x * x + 4)) / 2


@HEADS.register("forecast")
class Forecast:
    def outputs(self, ref, head, x, mask):
        if head.horizon:
            x = x[:, -head.horizon:]
        out = {}
        for k, name in enumerate(PARAMETERS.get(head.distribution, ())):
            value = ref.linear(x, f"parameter_projection.proj.{k}", bias=True)
            if name == "df":
                value = 2 + squareplus(value)
            elif name in ("scale", "total_count"):
                value = squareplus(value)
                value = np.maximum(value, np.finfo(np.float32).eps) if name == "scale" else value
            out[f"params.{name}"] = value[..., 0] if head.outputs == 1 else value
        if head.point:
            out["prediction_outputs"] = ref.linear(x, "projection", bias=True)
        return out
