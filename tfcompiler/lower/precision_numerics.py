"""``tfc compile --verify`` for the precision pass: the fp32 and the low-precision model run on
onnxruntime's CPU provider on the same small random inputs (tfc_runtime.random_inputs), and their
outputs must agree within a relative RMS budget (the IR passes' check, passes/numerics.py, evaluates
the IR; this one runs the ONNX models the pass took and made). Seeded full-size weights are not unit
scale, so the budget is relative, as quantization's is. onnxruntime's CPU provider has no bf16
kernels: a bf16 model is checked structurally only (the pass's ``ensures``), and its note says so."""
from __future__ import annotations

import tempfile
from pathlib import Path

from ..passes.base import PassError
from ..passes.numerics import rms_error
from .serialize import LoweredModel

# fp16 rounds each value by up to 2^-11; measured on the shipped specs (seeded weights, batch 2, the
# IR check's lengths) the outputs stay within 1e-3 relative RMS of fp32, star-transformer's within
# 3e-3: about 3x headroom over the worst
BUDGET = {"fp16": 1e-2}


def check_precision_numerics(name: str, fp32: LoweredModel, low: LoweredModel, precision: str,
                             sizes: dict[str, int]) -> str:
    """The note for --explain; raises PassError naming the output that moved past the budget."""
    if precision not in BUDGET:
        return (f"numerics checked structurally only: onnxruntime's CPU provider has no {precision} kernels "
                "(every node's types checked by onnx's inference)")
    import onnxruntime as ort
    from tfc_runtime import Model, random_inputs

    quiet = ort.SessionOptions()
    quiet.log_severity_level = 3  # its warnings (a node it cannot constant-fold in fp16) are not the user's
    with tempfile.TemporaryDirectory() as folder:
        paths = [Path(folder) / "fp32.onnx", Path(folder) / f"{precision}.onnx"]
        for model, path in zip((fp32, low), paths):
            model.save(path)
        want, got = (Model(str(path), session_options=quiet) for path in paths)
        feeds = random_inputs(got, batch=sizes["batch_size"], sequence=sizes["sequence_length"], sizes=sizes)
        expected, actual = want.run(feeds), got.run(feeds)
    errors = {output: rms_error(expected[output], actual[output]) for output in expected}
    worst = max(errors, key=errors.get, default=None)
    error, budget = errors.get(worst, 0.0), BUDGET[precision]
    if error > budget:
        raise PassError(name, f"output {worst!r}", f"moved by {error:.3g} relative RMS from the fp32 model "
                                                    f"(budget {budget:g})")
    return f"numerics checked on onnxruntime CPU: outputs within {error:.3g} relative RMS of the fp32 model " \
           f"(budget {budget:g})"
