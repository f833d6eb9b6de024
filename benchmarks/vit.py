"""ViT-B/16 image classification at 224x224 on this machine (issue 22): batch 1 and 8, fp32, from the same
random weights, side by side in one run:

  (a) torch eager          transformers' ViTForImageClassification (sdpa attention), torch.inference_mode
  (b) torch.onnx + ORT     torch.onnx.export (dynamo and TorchScript; the batch axis free) on onnxruntime
  (c) + ORT optimizer      that export through onnxruntime.transformers.optimizer (model_type vit), on onnxruntime
  (d) tfcompiler           `tfc import-hf` of the same model, compiled for the default target and for
                           `--target ort-cpu`, on onnxruntime

The model is ViTConfig()'s defaults (ViT-B/16 at 224: 12 layers, width 768, 12 heads, FFN 3072, 16x16 patches)
with ImageNet-1k's 1000 labels, as specs/vit-b16.yaml; no download. Every runtime gets --threads intra-op
threads (torch's too) and every onnxruntime session the same options (benchmarks/timing.py: one inter-op thread,
spinning off). Per batch, each contender runs once (its output checked against torch's: the largest absolute
difference of the logits), then all run round-robin, one run each per round, --rounds rounds; the figure is
each one's median. Reported: ms per batch, images/s, GFLOP/s and its share of the machine's fp32 matmul peak
(machine.matmul_peak, measured here over its standard shapes and ViT's own FFN products), and the physical
bound: the larger of FLOPs / peak and the weight bytes / memory bandwidth (machine.memory_bandwidth).

FLOPs per image come from the config: 2·tokens·(4·width² + 2·width·ffn_width) per layer for its weight
matmuls (tokens = patches + the class token), plus attention's two products (Q·Kᵀ and P·V, 4·tokens²·width per
layer), the patch embedding (2·patches·channels·patch²·width) and the classifier (2·width·labels); norms,
GELU, softmax and adds are not counted (the same for every contender). ViT-B/16: about 35 GFLOP per image.

The full run (minutes; on a quiet machine, nothing else running), and a smoke run of every code path:

    python benchmarks/vit.py --rounds 15 --json vit.json
    python benchmarks/vit.py --tiny
"""
from __future__ import annotations

import argparse
import inspect
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from exports import export, optimize, randomise
from machine import PEAK_SHAPES, describe, matmul_peak, memory_bandwidth
from timing import THREADS, round_robin_medians, session

TOLERANCE = 1e-4  # the house fp32 tolerance, relative to the output's scale when above 1
TINY = dict(image_size=32, patch_size=8, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=128)


def vit_config(transformers, args):
    """ViT-B/16's config (ViTConfig's defaults) with 1000 labels, or --tiny's; --layers overrides the depth."""
    config = transformers.ViTConfig(num_labels=1000, **(TINY if args.tiny else {}))
    if args.layers:
        config.num_hidden_layers = args.layers
    config._attn_implementation = "sdpa"
    return config


def flops_per_image(config) -> float:
    """Matmul FLOPs of one image's forward, from the config (the module docstring gives the terms)."""
    patches = (config.image_size // config.patch_size) ** 2
    tokens = patches + 1
    width, ffn = config.hidden_size, config.intermediate_size
    layer = 2 * tokens * (4 * width * width + 2 * width * ffn) + 4 * tokens * tokens * width
    embedding = 2 * patches * config.num_channels * config.patch_size ** 2 * width
    return config.num_hidden_layers * layer + embedding + 2 * width * config.num_labels


def peak_shapes(config, batches: list[int]) -> tuple:
    """matmul_peak's standard shapes plus ViT's FFN up-projection at each batch (all tokens as rows)."""
    tokens = (config.image_size // config.patch_size) ** 2 + 1
    return PEAK_SHAPES + tuple((batch * tokens, config.hidden_size, config.intermediate_size) for batch in batches)


def contenders(torch, model, config, args, tmp: Path) -> list[dict]:
    """Every contender as {"label", "run": pixels -> logits} or {"label", "error"}, plus what it reports
    besides (compile seconds, fused operators)."""
    def eager(pixels):
        with torch.inference_mode():
            return model(pixel_values=torch.from_numpy(pixels)).logits.numpy()

    rows = [{"label": "(a) torch eager", "run": eager}]
    example = np.zeros((2, config.num_channels, config.image_size, config.image_size), np.float32)
    for exporter in args.exporters:
        path = tmp / f"vit-{exporter}.onnx"
        label = f"(b) torch.onnx.export ({exporter}) + ORT"
        try:  # batch 2 as the example: an exporter may fix an axis it sees at size 1
            seconds = export(torch, model, {"pixel_values": example}, path, exporter, {0: "batch"})
        except Exception as e:  # noqa: BLE001  (an exporter that fails on the model is reported, not fatal)
            rows.append({"label": label, "error": f"{type(e).__name__}: {e}"[:160]})
            continue
        rows.append({"label": label, "compile_seconds": seconds, "run": runner(session(str(path), args.threads))})
        label = f"(c) + ORT transformer optimizer ({exporter})"
        try:
            fused = optimize(path, tmp / f"vit-{exporter}-optimized.onnx", "vit", config)
            optimized = session(str(tmp / f"vit-{exporter}-optimized.onnx"), args.threads)
            rows.append({"label": label, "fused": fused, "run": runner(optimized)})
        except Exception as e:  # noqa: BLE001
            rows.append({"label": label, "error": f"{type(e).__name__}: {e}"[:160]})
    rows += compiled(model, args, tmp)
    return rows


def compiled(model, args, tmp: Path) -> list[dict]:
    """tfcompiler's contenders: the model saved, `tfc import-hf`, compiled per target at the default opset."""
    from tfcompiler import compile_spec
    from tfcompiler.importers.hf import import_hf

    model.save_pretrained(tmp / "hf")
    spec, weights = import_hf(tmp / "hf", tmp / "imported")[:2]
    rows = []
    for target in args.targets:
        label = f"(d) tfcompiler --target {target}"
        start = time.perf_counter()
        try:
            result = compile_spec(spec, weights=str(weights), target=target)
        except Exception as e:  # noqa: BLE001  (reported in its row; the other contenders still run)
            rows.append({"label": label, "error": f"{type(e).__name__}: {e}"[:160]})
            continue
        seconds = time.perf_counter() - start
        out = tmp / f"vit-{target}.onnx"
        result.model.save(str(out))
        rows.append({"label": label + f" (opset {result.model.opset})", "compile_seconds": seconds,
                     "run": runner(session(str(out), args.threads))})
    return rows


def runner(sess):
    """pixels -> the session's first output (the logits)."""
    name = sess.get_inputs()[0].name
    return lambda pixels: sess.run(None, {name: pixels})[0]


def measure(rows: list[dict], batch: int, config, rounds: int) -> list[dict]:
    """Each runnable row at `batch`: its output's largest difference from torch's (also the warm-up), then the
    round-robin median seconds."""
    pixels = np.random.default_rng(batch).standard_normal(
        (batch, config.num_channels, config.image_size, config.image_size)).astype(np.float32)
    runnable = [r for r in rows if "run" in r]
    want = runnable[0]["run"](pixels)  # (a) torch eager: the reference
    results = []
    for row in runnable:
        try:
            got = row["run"](pixels)
        except Exception as e:  # noqa: BLE001  (a contender that fails at this batch is reported)
            results.append({"label": row["label"], "error": f"{type(e).__name__}: {e}"[:160]})
            continue
        diff = float(np.abs(got - want).max()) if got.shape == want.shape else float("inf")
        results.append({"label": row["label"], "max_abs_diff": diff,
                        "agrees": diff <= TOLERANCE * max(1.0, float(np.abs(want).max())), "run": row["run"]})
    timed = [r for r in results if "run" in r]
    runs = [(lambda run: lambda: run(pixels))(r.pop("run")) for r in timed]
    for r, seconds in zip(timed, round_robin_medians(runs, rounds)):
        r["seconds"] = seconds
    return results + [{"label": r["label"], "error": r["error"]} for r in rows if "error" in r]


def print_batch(batch: int, results: list[dict], flops: float, peak: float, bounds: dict) -> None:
    """The batch's table; `bounds`: the seconds its FLOPs take at the peak ("compute") and its weights at the
    memory bandwidth ("memory")."""
    print(f"\n### Batch {batch}: {batch * flops / 1e9:.1f} GFLOP a forward; physical bound "
          f"{1000 * max(bounds.values()):.1f} ms (compute {1000 * bounds['compute']:.1f} ms, "
          f"memory {1000 * bounds['memory']:.1f} ms)\n")
    print("| contender | median | images/s | vs fastest of (a)-(c) | GFLOP/s (% of peak) | max abs diff vs torch |")
    print("| --- | --- | --- | --- | --- | --- |")
    theirs = [r["seconds"] for r in results if "seconds" in r and not r["label"].startswith("(d)")]
    fastest = min(theirs, default=None)
    for r in results:
        if "seconds" not in r:
            print(f"| {r['label']} | failed: {r['error']} | | | | |")
            continue
        gflops = batch * flops / r["seconds"] / 1e9
        versus = f"{fastest / r['seconds']:.2f}x" if fastest else ""
        diff = f"{r['max_abs_diff']:.1e}" + ("" if r["agrees"] else f" (over {TOLERANCE:g} relative: disagrees)")
        print(f"| {r['label']} | {1000 * r['seconds']:.1f} ms | {batch / r['seconds']:.1f} | {versus} | "
              f"{gflops:.1f} ({100 * gflops / peak:.0f}%) | {diff} |")


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a 32x32 two-layer ViT, one round: a smoke run")
    parser.add_argument("--layers", type=int, help="override the encoder's depth (12)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--rounds", type=int, help="round-robin rounds (default 15; --tiny 1)")
    parser.add_argument("--threads", type=int, default=THREADS, help="intra-op threads of every runtime")
    parser.add_argument("--exporters", nargs="+", default=["dynamo", "torchscript"], choices=["dynamo", "torchscript"])
    parser.add_argument("--targets", nargs="+", help="tfcompiler targets (default: the default target and ort-cpu)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (1 if args.tiny else 15)
    if not args.targets:
        from tfcompiler import compile_spec

        args.targets = list(dict.fromkeys([inspect.signature(compile_spec).parameters["target"].default, "ort-cpu"]))
    return args


def main(argv=None) -> int:
    args = parse(argv)
    import torch
    import transformers

    torch.set_num_threads(args.threads)
    config = vit_config(transformers, args)
    model = randomise(torch, transformers.ViTForImageClassification(config), seed=0)
    flops, weight_bytes = flops_per_image(config), 4 * sum(p.numel() for p in model.parameters())
    peak_repeat = 1 if args.tiny else 10
    peak = matmul_peak(peak_repeat, peak_shapes(config, args.batches), args.threads)
    bandwidth = memory_bandwidth(quick=args.tiny, read_only=True)
    with tempfile.TemporaryDirectory() as tmp:
        rows = contenders(torch, model, config, args, Path(tmp))
        results = {batch: measure(rows, batch, config, args.rounds) for batch in args.batches}
    # measured again at the end, the best of both: a busy moment lowers them, and low figures flatter the shares
    peak = max(peak, matmul_peak(peak_repeat, peak_shapes(config, args.batches), args.threads))
    bandwidth = max(bandwidth, memory_bandwidth(quick=args.tiny, read_only=True))
    print(f"Command: `python benchmarks/vit.py {' '.join(sys.argv[1:] if argv is None else argv)}`")
    print(f"Machine: {describe()}; {args.threads} threads per runtime; fp32 matmul peak {peak:.1f} GFLOP/s "
          f"(onnxruntime MatMul, best of {len(peak_shapes(config, args.batches))} shapes), memory bandwidth "
          f"{bandwidth / 1e9:.1f} GB/s (NumPy sum, reading)")
    print(f"Model: ViTForImageClassification {config.image_size}x{config.image_size}, patch {config.patch_size}, "
          f"{config.num_hidden_layers} layers, width {config.hidden_size}, {config.num_attention_heads} heads, "
          f"FFN {config.intermediate_size}, {config.num_labels} labels: {weight_bytes / 4e6:.1f}M parameters, "
          f"{flops / 1e9:.2f} GFLOP per image; {args.rounds} round(s), the median")
    bounds = {batch: {"compute": batch * flops / (peak * 1e9), "memory": weight_bytes / bandwidth}
              for batch in args.batches}
    for batch, batch_results in results.items():
        print_batch(batch, batch_results, flops, peak, bounds[batch])
    for row in rows:
        if "fused" in row:
            print(f"\n{row['label']}: fused {row['fused'] or 'nothing'}")
    print("\nCompile seconds: " + ", ".join(f"{r['label']} {r['compile_seconds']:.2f}" for r in rows
                                            if "compile_seconds" in r))
    if args.json:
        Path(args.json).write_text(json.dumps({
            "command": sys.argv, "machine": describe(), "threads": args.threads, "peak_gflops": peak,
            "bandwidth": bandwidth, "flops_per_image": flops, "weight_bytes": weight_bytes, "rounds": args.rounds,
            "bound_seconds": bounds, "results": results,
            "rows": [{k: v for k, v in r.items() if k != "run"} for r in rows]}, indent=1))
    # an exporter's failure is a finding about the exporter; ours, or any output off torch's, fails the run
    return 0 if all(r.get("agrees", True) and not ("error" in r and r["label"].startswith("(d)"))
                    for rs in results.values() for r in rs) else 1


if __name__ == "__main__":
    sys.exit(main())
