"""Does onnxruntime's EmbedLayerNormalization pay on CPU? BERT-base's embeddings (token, position
and token-type tables, their sum and LayerNorm) as the standard ops tfcompiler emits (Gather, Range,
Add, LayerNormalization) against the com.microsoft kernel (with the Casts of the ids to int32 it
needs), run round-robin in one process (2 intra-op threads, spinning off), median per variant, and
what the difference is of a whole BERT-base forward (the speed table in RESULTS.md).

    python benchmarks/embed_norm.py [--rounds 300]
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
FORWARD_MS = {128: 140.8, 512: 604.0}  # BERT-base, tfcompiler portable (RESULTS.md, session 5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    model = yaml.safe_load((ROOT / "specs/bert-base.yaml").read_text())["model"]
    rng = np.random.default_rng(0)
    width, types = model["width"], 2
    tables = {"tokens": rng.standard_normal((model["vocab_size"], width)).astype(np.float32),
              "positions": rng.standard_normal((model["max_length"], width)).astype(np.float32),
              "token_types": rng.standard_normal((types, width)).astype(np.float32),
              "scale": np.ones(width, np.float32), "bias": np.zeros(width, np.float32)}
    node = helper.make_node
    standard = [node("Gather", ["tokens", "ids"], ["t"]), node("Gather", ["token_types", "types"], ["y_"]),
                node("Add", ["t", "y_"], ["s1"]), node("Shape", ["ids"], ["n1"], start=1, end=2),
                node("Squeeze", ["n1", "first"], ["n"]), node("Range", ["zero", "n", "one"], ["p"]),
                node("Gather", ["positions", "p"], ["pe"]), node("Add", ["s1", "pe"], ["s2"]),
                node("LayerNormalization", ["s2", "scale", "bias"], ["y"], axis=-1, epsilon=1e-12)]
    fused = [node("Cast", ["ids"], ["ids32"], to=TensorProto.INT32),
             node("Cast", ["types"], ["types32"], to=TensorProto.INT32),
             node("EmbedLayerNormalization",
                  ["ids32", "types32", "tokens", "positions", "token_types", "scale", "bias"],
                  ["y", "mask_index"], domain="com.microsoft", epsilon=1e-12)]
    ids = [helper.make_tensor_value_info(name, TensorProto.INT64, [1, "sequence_length"]) for name in ("ids", "types")]
    constants = {**tables, "zero": np.array(0), "one": np.array(1), "first": np.array([0])}
    sessions = [graph_session(nodes, ids, constants, 17) for nodes in (standard, fused)]
    print(f"Command: `{' '.join(['python', f'benchmarks/{Path(__file__).name}', *sys.argv[1:]])}`\n")
    print("| tokens | Gather + Add + LayerNormalization | EmbedLayerNormalization | difference | "
          "of a BERT-base forward |")
    print("| --- | --- | --- | --- | --- |")
    for length in FORWARD_MS:
        feeds = {"ids": rng.integers(0, model["vocab_size"], (1, length)), "types": rng.integers(0, types, (1, length))}
        outputs = [s.run(None, feeds)[0] for s in sessions]
        assert np.abs(outputs[0] - outputs[1]).max() < 1e-4, "the kernel computes something else"
        ours, kernel = (seconds * 1e6 for seconds in round_robin_medians(
            [lambda s=s: s.run(None, feeds) for s in sessions], args.rounds))
        print(f"| {length} | {ours:.0f} µs | {kernel:.0f} µs | {kernel - ours:+.0f} µs | "
              f"{(kernel - ours) / (FORWARD_MS[length] * 10):+.3f}% |")


if __name__ == "__main__":
    main()
