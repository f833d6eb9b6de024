"""The PyTorch side of the benchmarks that race a Hugging Face model against its ONNX exports: random
weights set alike for every contender, `torch.onnx.export` (dynamo or TorchScript) of the model's first
output, and onnxruntime's transformer optimizer over such an export."""
from __future__ import annotations

import contextlib
import io
import time
from pathlib import Path

import numpy as np


def randomise(torch, model, seed: int):
    """Seeded random weights, scaled like a trained model's (matrices 0.02, norm scales 1 ± 0.1); eval mode."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            scale = 0.02 if p.dim() > 1 else 0.1
            base = 1.0 if name.endswith("weight") and p.dim() == 1 else 0.0
            p.copy_(base + scale * torch.randn(p.shape, generator=generator))
    return model.eval()


def export(torch, model, inputs: dict[str, np.ndarray], path: Path, exporter: str,
           dynamic: dict[int, str]) -> float:
    """torch.onnx.export of model(**inputs) -> its first output, the ONNX inputs named as `inputs`, the axes in
    `dynamic` ({axis: name}) of every input left free; `exporter` "dynamo" or "torchscript". Returns seconds."""
    names = list(inputs)

    class Positional(torch.nn.Module):  # transformers 5's forward wants keywords; the exporters pass positions
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, *args):
            return self.model(**dict(zip(names, args)))[0]

    tensors = tuple(torch.from_numpy(v) for v in inputs.values())
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        if exporter == "dynamo":
            dims = {axis: torch.export.Dim(name) for axis, name in dynamic.items()}  # one Dim per name: shared
            torch.onnx.export(Positional().eval(), tensors, str(path), input_names=names, dynamo=True,
                              dynamic_shapes=(tuple(dims for _ in names),))  # (*args,): one tuple of all inputs
        else:
            torch.onnx.export(Positional().eval(), tensors, str(path), input_names=names, dynamo=False,
                              dynamic_axes={n: dynamic for n in names})
    return time.perf_counter() - start


def optimize(path: Path, out: Path, model_type: str, config) -> dict[str, int]:
    """onnxruntime.transformers.optimizer over the export at `path` (heads and width from the transformers
    `config`), saved to `out`; returns the operators it fused and how many of each."""
    from onnxruntime.transformers.optimizer import optimize_model

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        optimized = optimize_model(str(path), model_type=model_type, num_heads=config.num_attention_heads,
                                   hidden_size=config.hidden_size)
    optimized.save_model_to_file(str(out))
    return {op: n for op, n in sorted(optimized.get_fused_operator_statistics().items()) if n}
