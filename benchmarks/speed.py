"""Inference speed on this machine, side by side in one run, from the same weights (issue 6):

  torch eager          transformers' model (its default attention), torch.inference_mode
  torch.onnx + ORT     torch.onnx.export (the default exporter) run on onnxruntime
  + ORT optimizer      that export passed through onnxruntime.transformers.optimizer first
  tfcompiler           `tfc import-hf` of the same model, compiled per --target, run on onnxruntime;
                       and with --quantize int8 and int4 (ort-cpu; int4 also portable: standard ops), their
                       accuracy against our fp32 output

Models (random weights, batch 1, fp32): BERT-base at 128 and 512 tokens, GPT-2 small over 128
tokens, a Llama-style decoder (8 layers, width 512, 8 heads, 2 key/value heads) over 128 tokens.
Every runtime gets 2 intra-op threads. The paths of a model are timed round-robin (one run of each
in turn, --repeat rounds, after a warm-up of each), so drift in the machine's speed hits them all
alike; each path's figure is its median. Also measured: the machine's matmul peak (the best
GFLOP/s of fp32 MatMuls on onnxruntime with the same threads: 1024³, 2048³ and the FFN shapes of
the models, 128×768×3072 and 128×512×1536), and each path's achieved GFLOP/s (the model's weight
matmul FLOPs / its latency).

    python benchmarks/speed.py [--repeat 20] [--models bert-128 bert-512 gpt2 llama] [--targets portable ort-cpu]
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from exports import export, optimize, randomise
from machine import matmul_peak
from timing import THREADS, session


def configs(transformers):
    return {
        "bert-128": (transformers.BertConfig(), transformers.BertModel, 128, "bert"),
        "bert-512": (transformers.BertConfig(), transformers.BertModel, 512, "bert"),
        "gpt2": (transformers.GPT2Config(), transformers.GPT2LMHeadModel, 128, "gpt2"),
        "llama": (transformers.LlamaConfig(hidden_size=512, num_hidden_layers=8, num_attention_heads=8,
                                           num_key_value_heads=2, intermediate_size=1536, vocab_size=32000,
                                           max_position_embeddings=2048), transformers.LlamaForCausalLM, 128, "gpt2"),
    }


def time_round_robin(rows: list[dict], repeat: int) -> None:
    """Set each row's "seconds" from its "run": a warm-up each, then `repeat` rounds of one run each."""
    runs = [r for r in rows if "run" in r]
    for r in runs:
        r["run"]()
        r["times"] = []
    for _ in range(repeat):
        for r in runs:
            start = time.perf_counter()
            r["run"]()
            r["times"].append(time.perf_counter() - start)
    for r in runs:
        r["seconds"] = statistics.median(r.pop("times"))
        del r["run"]


def feeds_for(sess, ids: np.ndarray) -> dict:
    names = [i.name for i in sess.get_inputs()]
    feeds = {"input_ids": ids}
    if "attention_mask" in names:
        feeds["attention_mask"] = np.ones_like(ids)
    if "token_type_ids" in names:
        feeds["token_type_ids"] = np.zeros_like(ids)
    if "position_ids" in names:
        feeds["position_ids"] = np.arange(ids.shape[1])[None]
    return {k: v for k, v in feeds.items() if k in names}


def matmul_flops(path: str, length: int) -> float:
    """2·M·K·N over the model's MatMul/Gemm nodes with weight operands, per sequence (attention score
    FLOPs added from the model's shape rules are not counted: the same for every path)."""
    from tfcompiler.inspection import inspect_model

    return inspect_model(path)["weight_flops_per_token"] * length


def exported_rows(torch, model, name, exporter, ids, optimizer_type, config, tmp: Path) -> list[dict]:
    path = tmp / f"{name}-{exporter}.onnx"
    inputs = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    try:
        seconds = export(torch, model, inputs, path, exporter, {0: "batch", 1: "sequence"})
    except Exception as e:  # noqa: BLE001  (an exporter that fails on the model is reported, not fatal)
        return [{"path": f"torch.onnx.export ({exporter}) + ORT", "error": f"{type(e).__name__}: {e}"[:120]}]
    sess = session(str(path))
    rows = [{"path": f"torch.onnx.export ({exporter}) + ORT", "compile_seconds": seconds,
             "run": lambda: sess.run(None, feeds_for(sess, ids))}]
    try:
        optimized = tmp / f"{name}-{exporter}-optimized.onnx"
        fused = optimize(path, optimized, optimizer_type, config)
        optimized_session = session(str(optimized))
        rows.append({"path": f"  + ORT transformer optimizer ({exporter})", "fused": fused,
                     "run": lambda: optimized_session.run(None, feeds_for(optimized_session, ids))})
    except Exception as e:  # noqa: BLE001
        rows.append({"path": f"  + ORT transformer optimizer ({exporter})", "error": f"{type(e).__name__}: {e}"[:120]})
    return rows


def accuracy(got: np.ndarray, want: np.ndarray) -> str:
    """Relative RMS error and, for logits, how often the top token agrees."""
    relative = np.linalg.norm(got - want) / np.linalg.norm(want)
    text = f"relative RMS error {relative:.2%}"
    if got.ndim == 3 and got.shape[-1] > 1000:  # logits over a vocabulary
        text += f", top-1 token agrees at {np.mean(got.argmax(-1) == want.argmax(-1)):.1%} of positions"
    return text


def run_model(name: str, targets: list[str], repeat: int, tmp: Path) -> list[dict]:
    import torch
    import transformers

    from tfcompiler import compile_spec
    from tfcompiler.importers.hf import import_hf

    config, model_class, length, optimizer_type = configs(transformers)[name]
    config._attn_implementation = "sdpa"
    model = randomise(torch, model_class(config), seed=0)
    ids = np.random.default_rng(0).integers(0, config.vocab_size, (1, length))
    rows = []

    torch_ids = torch.from_numpy(ids)

    def eager():
        with torch.inference_mode():
            model(input_ids=torch_ids)

    rows.append({"path": "torch eager", "run": eager})

    for exporter in ("dynamo", "torchscript"):
        rows += exported_rows(torch, model, name, exporter, ids, optimizer_type, config, tmp)

    model.save_pretrained(tmp / f"{name}-hf")
    spec_path, weights_path = import_hf(tmp / f"{name}-hf", tmp / f"{name}-imported")
    fp32_output = None
    for target, quantize in [(t, "none") for t in targets] + [("ort-cpu", "int8"), ("ort-cpu", "int4"),
                                                              ("portable", "int4")]:
        out = tmp / f"{name}-{target}-{quantize}.onnx"
        start = time.perf_counter()
        compile_spec(spec_path, weights=str(weights_path), target=target, opset=23,
                     quantize=quantize).model.save(str(out))
        compile_seconds = time.perf_counter() - start
        sess = session(str(out))
        output = sess.run(None, feeds_for(sess, ids))[0].astype(np.float64)
        row = {"path": f"tfcompiler --target {target}" + (f" --quantize {quantize}" if quantize != "none" else ""),
               "compile_seconds": compile_seconds, "run": (lambda s: lambda: s.run(None, feeds_for(s, ids)))(sess)}
        if quantize == "none":
            row["flops"] = matmul_flops(str(out), length)
            fp32_output = output
        else:  # the accuracy cost, against our fp32 output on the same input
            row["accuracy"] = accuracy(output, fp32_output)
        rows.append(row)
    time_round_robin(rows, repeat)
    flops = next((r["flops"] for r in rows if "flops" in r), None)
    for row in rows:
        row.update(model=name, length=length)
        if flops and "seconds" in row:
            row["gflops"] = flops / row["seconds"] / 1e9
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--models", nargs="+", default=["bert-128", "bert-512", "gpt2", "llama"])
    parser.add_argument("--targets", nargs="+", default=["portable", "ort-cpu"])
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    import onnxruntime
    import torch

    torch.set_num_threads(THREADS)
    peak = matmul_peak(args.repeat)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            rows += run_model(name, args.targets, args.repeat, Path(tmp))
    print(f"Machine: {platform.machine()}, {platform.processor() or 'cpu'}, {THREADS} threads; onnxruntime "
          f"{onnxruntime.__version__}, torch {torch.__version__}; matmul peak {peak:.1f} GFLOP/s\n")
    print("| model | path | latency | vs fastest of torch / export / optimizer | GFLOP/s (% of peak) |")
    print("| --- | --- | --- | --- | --- |")
    for name in args.models:
        mine = [r for r in rows if r["model"] == name]
        baseline = min((r["seconds"] for r in mine if "seconds" in r and not r["path"].startswith("tfcompiler")),
                       default=None)
        for r in mine:
            if "seconds" not in r:
                print(f"| {name} | {r['path']} | failed: {r['error']} | | |")
                continue
            speedup = f"{baseline / r['seconds']:.2f}x" if baseline else ""
            gflops = f"{r['gflops']:.1f} ({100 * r['gflops'] / peak:.0f}%)" if "gflops" in r else ""
            print(f"| {name} ({r['length']} tokens) | {r['path']} | {r['seconds'] * 1000:.1f} ms | "
                  f"{speedup} | {gflops} |")
    for r in rows:
        if "accuracy" in r:
            print(f"\n{r['model']}: {r['path']}: {r['accuracy']} (vs our fp32 output)")
    compiled = [r for r in rows if r["path"].startswith("tfcompiler") and "compile_seconds" in r]
    print("\nCompile seconds (import-hf weights, in process): " +
          ", ".join(f"{r['model']} {r['path'][len('tfcompiler '):]}: {r['compile_seconds']:.2f}" for r in compiled))
    if args.json:
        Path(args.json).write_text(json.dumps({"peak_gflops": peak, "rows": rows}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
