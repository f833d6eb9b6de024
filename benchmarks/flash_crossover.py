"""Where onnxruntime's flash attention on CPU starts to pay: the same compiled encoder lowered for
`--target ort-cpu` with and without the MultiHeadAttention kernel, run round-robin in one process
(2 intra-op threads, spinning off), median per variant. "flash at any length" lowers with the `If`'s
length gate at 0, "gated" with FLASH_FROM as shipped; the numbers chose FLASH_FROM
(tfcompiler/lower/attention.py).

    python benchmarks/flash_crossover.py [--rounds 20]
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
WIDE = """
tfc: 1
name: wide
topology: encoder
model: {width: 768, heads: 12, ffn_width: 3072, vocab_size: 1000, max_length: 8192}
positional: sinusoidal
block: {placement: post, ffn: {activation: gelu}}
encoder: {layers: 2}
"""
CASES = [("BERT-base", (ROOT / "specs/bert-base.yaml").read_text(), 128, True),
         ("BERT-base", (ROOT / "specs/bert-base.yaml").read_text(), 512, True),
         ("width 768, 12 heads, 2 layers", WIDE, 1024, True),
         ("width 768, 12 heads, 2 layers", WIDE, 2048, True),
         ("BERT-base", (ROOT / "specs/bert-base.yaml").read_text(), 128, False)]


def lowered(graph, flash: bool, gate: int):
    kernels = kernels_for("ort-cpu") - (set() if flash else {"MultiHeadAttention"})
    shipped, attention.FLASH_FROM = attention.FLASH_FROM, gate
    try:
        return to_onnx(graph, 23, {}, "ort-cpu", kernels=kernels)
    finally:
        attention.FLASH_FROM = shipped


def measure(text: str, length: int, ungated: bool, rounds: int) -> tuple[float, float]:
    graph = compile_spec(parse_spec(text), seed=0, target="ort-cpu", opset=23).graph
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sessions = [ort.InferenceSession(lowered(graph, flash, 0 if ungated else attention.FLASH_FROM).serialize(),
                                     options, providers=["CPUExecutionProvider"]) for flash in (True, False)]
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
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    print(f"Command: `python benchmarks/{Path(__file__).name} {' '.join(sys.argv[1:])}`\n")
    print("| model | keys | flash | with the flash `If` | without | |\n| --- | --- | --- | --- | --- | --- |")
    for name, text, length, ungated in CASES:
        with_flash, without = measure(text, length, ungated, max(6, args.rounds * 128 // length))
        change = without / with_flash - 1
        print(f"| {name} | {length} | {'at any length' if ungated else f'from {attention.FLASH_FROM} keys'} | "
              f"{with_flash * 1e3:.1f} ms | {without * 1e3:.1f} ms | "
              f"{abs(change) * 100:.1f}% {'faster' if change >= 0 else 'slower'} |", flush=True)


if __name__ == "__main__":
    main()
