"""Long Range Arena-style efficiency table (Tay et al. 2020, Table 2): latency and peak memory of
every efficient attention kind, compiled by tfcompiler (target portable) and run on onnxruntime
(CPU), relative to full attention compiled the same way, beside the same math in PyTorch eager where
this script has a PyTorch version of it. `full_ort_cpu` is full attention compiled for `--target
ort-cpu` (onnxruntime's flash attention on CPU).

Model: an encoder of width 256, 4 heads, FFN 1024, batch 1, 1 and 4 layers, sequence lengths 1K,
2K, 4K, 8K (16K with --long). Each (variant, layers, length) runs in a fresh process: one warm-up
run, then the median of --repeat runs (the best of --rounds such medians, the table measured that
many times over), with default allocator settings (onnxruntime's CPU memory
arena on, as deployed). Peak memory is measured in a second fresh process: what one run after the
warm-up needs, the resident high-water mark (VmHWM) during it minus the resident size before it, so
weights, the session and the runtime's one-time costs (kernel code paged in, thread pools, the first
run's allocation trace) are not counted; that process runs onnxruntime with its CPU memory arena off
and glibc's mmap threshold fixed at 64 KiB, so every large buffer is mapped when allocated and
unmapped when freed and the mark follows what is live. onnxruntime and PyTorch use 2 threads.

    python benchmarks/long_range.py [--layers 1 4] [--lengths 1024 2048 4096 8192] [--repeat 3] [--long] [--opset 23]
                                    [--rounds 2]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import cpu_name

WIDTH, HEADS, FFN = 256, 4, 1024
VARIANTS = {  # name -> attention section of the spec
    "full": "{kind: multi_head}",
    "full_ort_cpu": "{kind: multi_head}",  # compiled with --target ort-cpu: flash attention on CPU
    "causal": "{kind: multi_head}",  # a decoder: causal self-attention
    "causal_ort_cpu": "{kind: multi_head}",  # the decoder for --target ort-cpu: by query blocks (QueryBlocks)
    "padded_ort_cpu": "{kind: multi_head}",  # full_ort_cpu on a batch with padding: by query blocks too
    "sliding_window": "{kind: sliding_window, window: 128}",
    "longformer": "{kind: longformer, window: 128, global_tokens: 1}",
    "bigbird": "{kind: bigbird, block: 64, window_blocks: 3, global_blocks: 1, random_blocks: 3}",
    "sparse_transformer": "{kind: sparse_transformer, pattern: fixed, stride: 128, summary: 8}",
    "sparse_strided": "{kind: sparse_transformer, pattern: strided, stride: 128}",
    "linformer": "{kind: linformer, projected_length: 256}",
    "performer": "{kind: performer, features: 256}",
    "linear": "{kind: linear}",
    "nystrom": "{kind: nystrom, landmarks: 64, conv_kernel: 33}",
    "lsh": "{kind: lsh, buckets: 32, rounds: 2, chunk: 64}",
    "routing": "{kind: routing, clusters: 16}",
    "clustered": "{kind: clustered, clusters: 100, bits: 63, iterations: 10}",
    "memory_compressed": "{kind: memory_compressed, compression: 4}",
}
MALLOC_FIXED = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "65536"}
TARGETS = {"full_ort_cpu": "ort-cpu", "causal_ort_cpu": "ort-cpu", "padded_ort_cpu": "ort-cpu"}  # not portable
PADDED = {"padded_ort_cpu": 8}  # variant -> padded positions at the end of its input
DECODERS = ("causal", "causal_ort_cpu")
TORCH_VARIANTS = ("full", "causal", "sliding_window", "linformer", "performer", "linear")


def spec_text(variant: str, layers: int, max_length: int, ffn_chunk: int = 0) -> str:
    topology = "decoder" if variant in DECODERS else "encoder"
    return f"""
tfc: 1
name: lra-{variant}
topology: {topology}
model: {{width: {WIDTH}, heads: {HEADS}, ffn_width: {FFN}, vocab_size: 256, max_length: {max_length}}}
positional: sinusoidal
block: {{placement: pre, attention: {VARIANTS[variant]}, ffn: {{activation: gelu, chunk: {ffn_chunk}}}}}
{topology}: {{layers: {layers}}}
head: {{kind: none}}
"""


def high_water_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM"):
            return int(line.split()[1])
    return 0


def reset_high_water() -> None:
    """Start a new high-water mark from the current resident size (Linux: write 5 to clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


# --- workers (run in a fresh process each) ---------------------------------------------------------
def measure_runs(run, repeat: int, memory: bool) -> dict:
    """After a warm-up run: one more run's peak memory above the resident size, or the median time."""
    run()
    if memory:
        reset_high_water()
        base = high_water_kib()
        run()
        return {"peak_mib": (high_water_kib() - base) / 1024}
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return {"seconds": statistics.median(times)}


def run_onnx(path: str, length: int, pad: int, repeat: int, memory: bool) -> dict:
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.enable_cpu_mem_arena = not memory  # the arena keeps what it once held: timed with it, as deployed
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feeds = {"input_ids": np.random.default_rng(0).integers(0, 256, (1, length)),
             "attention_mask": (np.arange(length) < length - pad).astype(np.int64)[None]}
    return measure_runs(lambda: session.run(None, feeds), repeat, memory)


def run_torch(variant: str, layers: int, length: int, repeat: int, memory: bool) -> dict:
    """The same encoder (decoder for `causal`) in PyTorch eager: pre-norm blocks, the variant's attention math."""
    import math

    import torch
    import torch.nn.functional as F

    torch.set_num_threads(2)
    torch.manual_seed(0)
    dh = WIDTH // HEADS
    features = torch.randn(256, dh)  # Performer's random features (unscaled Gaussian is enough for timing)
    projection = torch.randn(256, length) / math.sqrt(length)  # Linformer's E (= F)

    def attention(q, k, v):
        if variant in ("full", "causal"):
            return F.scaled_dot_product_attention(q, k, v, is_causal=variant == "causal")
        if variant == "sliding_window":
            i = torch.arange(length)
            return F.scaled_dot_product_attention(q, k, v, attn_mask=(i[:, None] - i[None, :]).abs() <= 128)
        if variant == "linformer":
            return F.scaled_dot_product_attention(q, projection @ k, projection @ v)
        if variant == "linear":
            q, k = F.elu(q) + 1, F.elu(k) + 1
        else:  # performer
            def phi(x, is_query):
                x = x * dh ** -0.25
                p = x @ features.T - (x * x).sum(-1, keepdim=True) / 2
                stab = p.amax(-1, keepdim=True) if is_query else p.amax((-2, -1), keepdim=True)
                return torch.exp(p - stab)
            q, k = phi(q, True), phi(k, False)
        kv = k.transpose(-1, -2) @ v
        return (q @ kv) / (q @ k.sum(-2, keepdim=True).transpose(-1, -2) + 1e-6)

    blocks = [dict(norm1=torch.nn.LayerNorm(WIDTH), qkv=torch.nn.Linear(WIDTH, 3 * WIDTH),
                   out=torch.nn.Linear(WIDTH, WIDTH), norm2=torch.nn.LayerNorm(WIDTH),
                   up=torch.nn.Linear(WIDTH, FFN), down=torch.nn.Linear(FFN, WIDTH)) for _ in range(layers)]
    embedding = torch.nn.Embedding(256, WIDTH)

    def forward(ids):
        x = embedding(ids)
        for b in blocks:
            q, k, v = b["qkv"](b["norm1"](x)).view(1, length, 3, HEADS, dh).permute(2, 0, 3, 1, 4)
            x = x + b["out"](attention(q, k, v).transpose(1, 2).reshape(1, length, WIDTH))
            x = x + b["down"](F.gelu(b["up"](b["norm2"](x))))
        return x

    ids = torch.randint(0, 256, (1, length))
    with torch.inference_mode():
        return measure_runs(lambda: forward(ids), repeat, memory)


def worker(argv: list[str]) -> None:
    mode, kind, *rest = argv
    if kind == "onnx":
        path, length, pad, repeat = rest
        result = run_onnx(path, int(length), int(pad), int(repeat), mode == "memory")
    else:
        variant, layers, length, repeat = rest
        result = run_torch(variant, int(layers), int(length), int(repeat), mode == "memory")
    print(json.dumps(result))


def measure(args: list[str], timeout: float) -> dict | str:
    """Time in one fresh process (default allocator settings), peak memory in another (the CPU
    arena off and glibc's mmap threshold fixed, so the resident set follows what is live)."""
    result = {}
    for mode, env in (("time", {}), ("memory", MALLOC_FIXED)):
        try:
            done = subprocess.run([sys.executable, __file__, "--worker", mode, *args], capture_output=True,
                                  text=True, timeout=timeout, env={**os.environ, **env})
        except subprocess.TimeoutExpired:
            return f"over {timeout:.0f} s"
        if done.returncode:
            return "failed: " + (done.stderr.strip().splitlines() or ["?"])[-1][:120]
        result.update(json.loads(done.stdout.strip().splitlines()[-1]))
    return result


# --- the table ------------------------------------------------------------------------------------------
def main() -> None:
    if sys.argv[1:2] == ["--worker"]:
        return worker(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 2048, 4096, 8192])
    parser.add_argument("--long", action="store_true", help="also 16K")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--opset", type=int, default=23, help="23: the Attention op for full attention")
    parser.add_argument("--ffn-chunk", type=int, default=0,
                        help="every variant's FFN by chunks of this many tokens (ffn.chunk; 0: all at once)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure the whole table this many times and keep each cell's best median: a burst "
                             "of this VM's noise then spoils one round, not the cell")
    args = parser.parse_args()
    lengths = args.lengths + ([16384] if args.long else [])
    from tfcompiler import compile_spec, parse_spec

    results = {}
    with tempfile.TemporaryDirectory(prefix="tfc-lra-") as tmp:
        paths = {}
        for layers in args.layers:
            for variant in args.variants:
                paths[layers, variant] = Path(tmp) / f"{variant}-{layers}.onnx"
                compile_spec(parse_spec(spec_text(variant, layers, max(lengths), args.ffn_chunk)), seed=0,
                             opset=args.opset,
                             target=TARGETS.get(variant, "portable")).model.save(str(paths[layers, variant]))
        for _ in range(args.rounds):
            for (layers, variant), path in paths.items():
                for length in lengths:
                    ours = measure(["onnx", str(path), str(length), str(PADDED.get(variant, 0)), str(args.repeat)],
                                   args.timeout)
                    theirs = measure(["torch", variant, str(layers), str(length), str(args.repeat)], args.timeout) \
                        if variant in TORCH_VARIANTS and not args.no_torch else None
                    results[(layers, variant, length)] = tuple(
                        best(old, new) for old, new in zip(results.get((layers, variant, length), (None, None)),
                                                           (ours, theirs)))
                    print(f"  {layers} layer(s) {variant:>18} {length:>6}: tfcompiler {ours}  torch {theirs}",
                          file=sys.stderr, flush=True)
    print(report(results, args, lengths))


def best(old: dict | str | None, new: dict | str | None) -> dict | str | None:
    """Of two rounds' measurements of a cell, the faster time and the smaller peak."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return new if old is None or isinstance(old, str) else old
    return {"seconds": min(old["seconds"], new["seconds"]), "peak_mib": min(old["peak_mib"], new["peak_mib"])}


def cell(value: dict | str | None, key: str, unit: str) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return f"{value[key] * (1000 if unit == 'ms' else 1):.0f} {unit}"


def ratios(results: dict, layers: int, variants: list[str], lengths: list[int]) -> list[str]:
    lines = [f"### {layers} layer(s): speed-up and peak-memory saving vs full attention (tfcompiler)", "",
             "| variant | " + " | ".join(f"{n // 1024}K" for n in lengths) + " |", "| --- |" + " --- |" * len(lengths)]
    for variant in variants:
        row = []
        for n in lengths:
            full, ours = results[(layers, "full", n)][0], results[(layers, variant, n)][0]
            if isinstance(full, dict) and isinstance(ours, dict):
                row.append(f"{full['seconds'] / ours['seconds']:.1f}x / "
                           f"{full['peak_mib'] / max(ours['peak_mib'], 1e-3):.1f}x")
            else:
                row.append(ours if isinstance(ours, str) else "full: " + str(full))
        lines.append(f"| {variant} | " + " | ".join(row) + " |")
    return lines + [""]


def report(results: dict, args, lengths: list[int]) -> str:
    lines = [f"Command: `python benchmarks/{Path(__file__).name} {' '.join(sys.argv[1:])}`",
             f"Machine: {platform.machine()}, {cpu_name()}, {os.cpu_count()} cores; onnxruntime 2 intra-op threads, "
             f"torch 2 threads; ONNX opset {args.opset}, target portable (the *_ort_cpu variants: ort-cpu). "
             "Time: best of "
             f"{args.rounds} round(s) of the median of {args.repeat} runs after a warm-up (arena on); "
             "peak memory: one run's, above the resident size after a warm-up, in its own process (arena off, "
             "glibc mmap threshold 64 KiB).", ""]
    for layers in args.layers:
        if "full" in args.variants:  # the reference of the ratios
            lines += ratios(results, layers, args.variants, lengths)
        lines += [f"Absolute: tfcompiler latency / peak MiB, and PyTorch eager beside it ({layers} layer(s))", "",
                  "| variant | " + " | ".join(f"{n // 1024}K ours | {n // 1024}K torch" for n in lengths) + " |",
                  "| --- |" + " --- | --- |" * len(lengths)]
        for variant in args.variants:
            row = []
            for n in lengths:
                ours, theirs = results[(layers, variant, n)]
                row.append(f"{cell(ours, 'seconds', 'ms')}, {cell(ours, 'peak_mib', 'MiB')}")
                row.append(f"{cell(theirs, 'seconds', 'ms')}, {cell(theirs, 'peak_mib', 'MiB')}"
                           if theirs is not None else "—")
            lines.append(f"| {variant} | " + " | ".join(row) + " |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
