"""Compile time of BERT-base (random weights), side by side in one run on this machine:

  tfcompiler   `tfc compile specs/bert-base.yaml` in-process and as a fresh process (with start-up)
  torch        `torch.onnx.export` of transformers' BertModel of the same shape (dynamo and TorchScript)

Each timing is the median of --repeat runs writing a .onnx file. Prints a Markdown table, then
tfcompiler's compile time of the same model at each of --layers encoder layers (to see it grow
linearly with depth).

    python benchmarks/compile_time.py [--repeat 3] [--layers 12 48 96]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import timing
from machine import describe

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "specs" / "bert-base.yaml"


def median_seconds(fn, repeat: int) -> float:
    return timing.median_seconds(fn, repeat, warm_up=False)


def tfc_in_process(out: Path, spec: Path = SPEC):
    from tfcompiler.cli import main

    assert main(["compile", str(spec), "-o", str(out), "-q"]) == 0


def tfc_subprocess(out: Path):
    subprocess.run([sys.executable, "-m", "tfcompiler.cli", "compile", str(SPEC), "-o", str(out), "-q"],
                   check=True, stdout=subprocess.DEVNULL)


def torch_export(out: Path, dynamo: bool):
    import torch
    import transformers

    config = transformers.BertConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                     intermediate_size=3072, vocab_size=30522, max_position_embeddings=512)
    model = transformers.BertModel(config).eval()  # building the model is part of a user's export
    ids = torch.ones((2, 16), dtype=torch.long)
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)}
    names = list(inputs)
    if dynamo:
        batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
        torch.onnx.export(model, (), str(out), kwargs=inputs, input_names=names, dynamo=True,
                          dynamic_shapes={n: {0: batch, 1: seq} for n in names})
    else:  # TorchScript passes inputs positionally; transformers 5's forward wants keywords
        class Positional(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.bert = model

            def forward(self, input_ids, attention_mask, token_type_ids):
                out = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                                token_type_ids=token_type_ids)
                return out.last_hidden_state, out.pooler_output

        torch.onnx.export(Positional().eval(), tuple(inputs.values()), str(out), input_names=names,
                          dynamo=False, dynamic_axes={n: {0: "batch", 1: "sequence"} for n in names})


def main() -> None:
    from tfcompiler.inspection import inspect_spec

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--layers", type=int, nargs="*", default=[12, 48, 96])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "model.onnx"
        rows.append(("tfcompiler, in process", median_seconds(lambda: tfc_in_process(out), args.repeat)))
        rows.append(("tfcompiler, `tfc compile` process", median_seconds(lambda: tfc_subprocess(out), args.repeat)))
        for dynamo in (True, False):
            label = f"torch.onnx.export ({'dynamo' if dynamo else 'TorchScript'})"
            try:
                rows.append((label, median_seconds(lambda: torch_export(out, dynamo), args.repeat)))
            except Exception as e:  # noqa: BLE001  (a failing exporter is a result to report)
                rows.append((label, f"failed: {type(e).__name__}: {str(e).splitlines()[0][:120]}"))
    ours = rows[0][1]  # in process, like the exports (which do not count torch's import either)
    print(f"Machine: {describe()}\n")
    print("| path | median seconds | vs tfcompiler in process |\n| --- | --- | --- |")
    for label, value in rows:
        if isinstance(value, float):
            print(f"| {label} | {value:.2f} | {value / ours:.1f}x |")
        else:
            print(f"| {label} | {value} | |")
    from tfcompiler import compile_spec

    print("\n| encoder layers | parameters | to the ONNX graph (s) | per layer | and the file written (s) | "
          "per layer |\n"
          "| --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for layers in args.layers:
            spec = Path(tmp) / f"bert-{layers}.yaml"
            spec.write_text(SPEC.read_text().replace("  layers: 12", f"  layers: {layers}"))
            graph_only = median_seconds(lambda: compile_spec(spec), args.repeat)  # weights stay recipes
            seconds = median_seconds(lambda: tfc_in_process(Path(tmp) / "model.onnx", spec), args.repeat)
            parameters = inspect_spec(str(spec), 128)["parameters"]
            print(f"| {layers} | {parameters / 1e6:.0f}M | {graph_only:.2f} | {graph_only / layers:.4f} | "
                  f"{seconds:.2f} | "
                  f"{seconds / layers:.3f} |")


if __name__ == "__main__":
    main()
