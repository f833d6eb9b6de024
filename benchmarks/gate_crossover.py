"""Where the `ort-cpu` target's long-input attention starts to pay, and so where its `If` gate
(LONG_FROM in tfcompiler/lower/long_inputs.py) sits: onnxruntime's flash attention
(MultiHeadAttention: bidirectional, a batch without padding) and attention by query blocks
(QueryBlocks: causal, or a padded batch). The same compiled model is lowered for `--target ort-cpu`
with its long-input kernels and without them (the standard `Attention` op) and run round-robin in
one process (2 intra-op threads, spinning off), median per variant. "at any length" lowers with the
gate at 0, "from N keys" with the gate as shipped.

    python benchmarks/gate_crossover.py [--kernel MultiHeadAttention|QueryBlocks] [--rounds 20]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

from tfcompiler import compile_spec, parse_spec
from tfcompiler.lower import long_inputs
from tfcompiler.lower.targets import kernels_for
from tfcompiler.lower.to_onnx import to_onnx
from timing import round_robin_medians

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
ENCODER, DECODER = wide("encoder"), wide("decoder")
WIDE = "width 768, 12 heads, 2 layers"
KERNELS = {  # kernel -> cases: (model, spec, keys, padded positions, ungated)
    "MultiHeadAttention": [
        ("BERT-base", BERT, 128, 0, True), ("BERT-base", BERT, 512, 0, True), (WIDE, ENCODER, 1024, 0, True),
        (WIDE, ENCODER, 2048, 0, True), ("BERT-base", BERT, 128, 0, False)],
    "QueryBlocks": [
        ("GPT-2 small", GPT2, 128, 0, True), ("GPT-2 small", GPT2, 512, 0, True),
        (f"causal, {WIDE}", DECODER, 1024, 0, True),
        (f"causal, {WIDE}", DECODER, 2048, 0, True), (f"causal, {WIDE}", DECODER, 4096, 0, True),
        (f"padded batch, {WIDE}", ENCODER, 1024, 8, True), (f"padded batch, {WIDE}", ENCODER, 2048, 8, True),
        (f"padded batch, {WIDE}", ENCODER, 4096, 8, True),
        ("GPT-2 small", GPT2, 128, 0, False), ("GPT-2 small", GPT2, 1024, 0, False)],
}


def lowered(graph, used: bool, gate: int):
    kernels = kernels_for("ort-cpu") - (set() if used else set(long_inputs.KERNELS))
    shipped, long_inputs.LONG_FROM = long_inputs.LONG_FROM, gate
    try:
        return to_onnx(graph, 23, {}, "ort-cpu", kernels=kernels)
    finally:
        long_inputs.LONG_FROM = shipped


def measure(text: str, length: int, pad: int, ungated: bool, rounds: int) -> tuple[float, float]:
    graph = compile_spec(parse_spec(text), seed=0, target="ort-cpu", opset=23).graph
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    gate = 0 if ungated else long_inputs.LONG_FROM
    sessions = [ort.InferenceSession(lowered(graph, used, gate).serialize(), options,
                                     providers=["CPUExecutionProvider"]) for used in (True, False)]
    feeds = {"input_ids": np.random.default_rng(0).integers(0, 1000, (1, length)),
             "attention_mask": np.ones((1, length), np.int64)}
    feeds["attention_mask"][:, length - pad:] = 0
    if "token_type_ids" in [i.name for i in sessions[0].get_inputs()]:
        feeds["token_type_ids"] = np.zeros((1, length), np.int64)
    runs = [lambda s=s: s.run(None, feeds) for s in sessions]
    for run in runs:  # warm-up
        run()
    used, without = round_robin_medians(runs, rounds)
    return used, without


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernel", choices=sorted(KERNELS), default="MultiHeadAttention")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    print(f"Command: `python benchmarks/{Path(__file__).name} {' '.join(sys.argv[1:])}`\n")
    print(f"| model | keys | {args.kernel} | with the `If` | without | |\n| --- | --- | --- | --- | --- | --- |")
    for name, text, length, pad, ungated in KERNELS[args.kernel]:
        used, without = measure(text, length, pad, ungated, max(6, args.rounds * 128 // length))
        change = without / used - 1
        print(f"| {name} | {length} | {'at any length' if ungated else f'from {long_inputs.LONG_FROM} keys'} | "
              f"{used * 1e3:.1f} ms | {without * 1e3:.1f} ms | "
              f"{abs(change) * 100:.1f}% {'faster' if change >= 0 else 'slower'} |", flush=True)


if __name__ == "__main__":
    main()
