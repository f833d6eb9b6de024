"""Does onnxruntime's GroupQueryAttention pay on CPU for a forward over a prompt? One layer's attention
of `specs/llama-style.yaml` (8 query heads, 2 key/value heads, heads of 64, half-split rotary) as
tfcompiler lowers it at opset 23 (RotaryEmbedding on the queries and on the keys, then the causal
`Attention` op with its grouped heads) against com.microsoft GroupQueryAttention with the rotary
fused in (`do_rotary`), token-major inputs, run round-robin in one process (2 intra-op threads,
spinning off), median per variant.

    python benchmarks/gqa_kernel.py [--rounds 400]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import yaml
from onnx import TensorProto, helper

from timing import graph_session, round_robin_medians

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=400)
    args = parser.parse_args()
    model = yaml.safe_load((ROOT / "specs/llama-style.yaml").read_text())["model"]
    heads, kv_heads = model["heads"], model["kv_heads"]
    width = model["width"] // heads
    angles = np.arange(model["max_length"])[:, None] * 10000.0 ** (-np.arange(0, width, 2) / width)[None]
    tables = {"cos": np.cos(angles).astype(np.float32), "sin": np.sin(angles).astype(np.float32)}
    node, info = helper.make_node, helper.make_tensor_value_info
    inputs = [info(name, TensorProto.FLOAT, [1, "sequence_length", n * width])
              for name, n in (("q", heads), ("k", kv_heads), ("v", kv_heads))]
    standard = [node("Shape", ["q"], ["length1"], start=1, end=2), node("Squeeze", ["length1", "first"], ["length"]),
                node("Range", ["zero", "length", "one"], ["range"]),
                node("Unsqueeze", ["range", "first"], ["positions"]),
                node("RotaryEmbedding", ["q", "cos", "sin", "positions"], ["q_rotated"], num_heads=heads),
                node("RotaryEmbedding", ["k", "cos", "sin", "positions"], ["k_rotated"], num_heads=kv_heads),
                node("Attention", ["q_rotated", "k_rotated", "v"], ["y"], is_causal=1, q_num_heads=heads,
                     kv_num_heads=kv_heads, scale=width ** -0.5)]
    fused = [node("GroupQueryAttention", ["q", "k", "v", "", "", "seqlens_k", "total_length", "cos", "sin"],
                  ["y", "present_key", "present_value"], domain="com.microsoft", num_heads=heads,
                  kv_num_heads=kv_heads, do_rotary=1, scale=width ** -0.5)]
    lengths = [info("seqlens_k", TensorProto.INT32, [1]), info("total_length", TensorProto.INT32, [])]
    sessions = [graph_session(standard, inputs, {**tables, "first": np.array([0]), "zero": np.array(0),
                                                 "one": np.array(1)}, 23),
                graph_session(fused, inputs + lengths, tables, 23)]
    rng = np.random.default_rng(0)
    print(f"Command: `{' '.join(['python', f'benchmarks/{Path(__file__).name}', *sys.argv[1:]])}`\n")
    print("| tokens | RotaryEmbedding x2 + Attention | GroupQueryAttention (do_rotary) | |\n| --- | --- | --- | --- |")
    for tokens in (128, 512):
        feeds = {name: rng.standard_normal((1, tokens, n * width)).astype(np.float32)
                 for name, n in (("q", heads), ("k", kv_heads), ("v", kv_heads))}
        feeds_fused = {**feeds, "seqlens_k": np.array([tokens - 1], np.int32),
                       "total_length": np.array(tokens, np.int32)}
        outputs = [sessions[0].run(None, feeds)[0], sessions[1].run(None, feeds_fused)[0]]
        assert np.abs(outputs[0] - outputs[1]).max() < 1e-4, "the kernel computes something else"
        ours, kernel = (seconds * 1e6 for seconds in round_robin_medians(
            [lambda: sessions[0].run(None, feeds), lambda: sessions[1].run(None, feeds_fused)], args.rounds))
        print(f"| {tokens} | {ours:.0f} µs | {kernel:.0f} µs | kernel {abs(kernel / ours - 1) * 100:.0f}% "
              f"{'slower' if kernel > ours else 'faster'} |", flush=True)


if __name__ == "__main__":
    main()
