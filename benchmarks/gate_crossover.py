"""Where the `ort-cpu` target's long-input lowerings start to pay, and so where their `If` gates sit:
onnxruntime's flash attention (MultiHeadAttention, bidirectional; gate FLASH_FROM) and causal
self-attention by query blocks (CausalBlocks; gate CAUSAL_BLOCKS_FROM). The same compiled model is
lowered for `--target ort-cpu` with and without the kernel and run round-robin in one process (2
intra-op threads, spinning off), median per variant. "at any length" lowers with the `If`'s length
gate at 0, "from N keys" with the gate as shipped (tfcompiler/lower/attention.py).

    python benchmarks/gate_crossover.py [--kernel MultiHeadAttention|CausalBlocks] [--rounds 20]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from tfcompiler import compile_spec, parse_spec
from tfcompiler.lower import attention
from tfcompiler.lower.targets import kernels_for
from tfcompiler.lower.to_onnx import to_onnx

ROOT = Path(__file__).resolve().parent.parent


def wide(topology: str) -> str:
    return f"""
tfc: 1
name: wide
topology: {topology}
model: {{width: 768, heads: 12, ffn_width: 3072, vocab_size: 1000, max_length: 8192}}
positional: sinusoidal
block: {{placement: {'post' if topology == 'encoder' else 'pre'}, ffn: {{activation: gelu}}}}
{topology}: {{layers: 2}}
"""


BERT, GPT2 = ((ROOT / f"specs/{name}.yaml").read_text() for name in ("bert-base", "gpt2-small"))
KERNELS = {  # kernel -> (the gate's name in tfcompiler.lower.attention, cases: (model, spec, keys, ungated))
    "MultiHeadAttention": ("FLASH_FROM", [
        ("BERT-base", BERT, 128, True), ("BERT-base", BERT, 512, True),
        ("width 768, 12 heads, 2 layers", wide("encoder"), 1024, True),
        ("width 768, 12 heads, 2 layers", wide("encoder"), 2048, True), ("BERT-base", BERT, 128, False)]),
    "CausalBlocks": ("CAUSAL_BLOCKS_FROM", [
        ("GPT-2 small", GPT2, 128, True), ("GPT-2 small", GPT2, 512, True),
        ("causal, width 768, 12 heads, 2 layers", wide("decoder"), 1024, True),
        ("causal, width 768, 12 heads, 2 layers", wide("decoder"), 2048, True),
        ("causal, width 768, 12 heads, 2 layers", wide("decoder"), 4096, True),
        ("GPT-2 small", GPT2, 128, False), ("GPT-2 small", GPT2, 1024, False)]),
}


def lowered(graph, kernel: str, used: bool, gate: int):
    kernels = kernels_for("ort-cpu") - (set() if used else {kernel})
    name = KERNELS[kernel][0]
    shipped = getattr(attention, name)
    setattr(attention, name, gate)
    try:
        return to_onnx(graph, 23, {}, "ort-cpu", kernels=kernels)
    finally:
        setattr(attention, name, shipped)


def measure(kernel: str, text: str, length: int, ungated: bool, rounds: int) -> tuple[float, float]:
    graph = compile_spec(parse_spec(text), seed=0, target="ort-cpu", opset=23).graph
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    gate = 0 if ungated else getattr(attention, KERNELS[kernel][0])
    sessions = [ort.InferenceSession(lowered(graph, kernel, used, gate).serialize(), options,
                                     providers=["CPUExecutionProvider"]) for used in (True, False)]
    feeds = {"input_ids": np.random.default_rng(0).integers(0, 1000, (1, length)),
             "attention_mask": np.ones((1, length), np.int64)}
    if "token_type_ids" in [i.name for i in sessions[0].get_inputs()]:
        feeds["token_type_ids"] = np.zeros((1, length), np.int64)
    times = [[], []]
    for session in sessions:
        session.run(None, feeds)
    for _ in range(rounds):
        for session, bucket in zip(sessions, times):
            start = time.perf_counter()
            session.run(None, feeds)
            bucket.append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernel", choices=sorted(KERNELS), default="MultiHeadAttention")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    gate_name, cases = KERNELS[args.kernel]
    print(f"Command: `python benchmarks/{Path(__file__).name} {' '.join(sys.argv[1:])}`\n")
    print(f"| model | keys | {args.kernel} | with the `If` | without | |\n| --- | --- | --- | --- | --- | --- |")
    for name, text, length, ungated in cases:
        used, without = measure(args.kernel, text, length, ungated, max(6, args.rounds * 128 // length))
        change = without / used - 1
        print(f"| {name} | {length} | {'at any length' if ungated else f'from {getattr(attention, gate_name)} keys'} | "
              f"{used * 1e3:.1f} ms | {without * 1e3:.1f} ms | "
              f"{abs(change) * 100:.1f}% {'faster' if change >= 0 else 'slower'} |", flush=True)


if __name__ == "__main__":
    main()
