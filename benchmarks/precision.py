"""What `--dtype fp16` changes on this machine: the file's size, the outputs against the fp32 model
from the same seeded weights, and onnxruntime's CPU latency (why `--target ort-cpu` stays fp32), for
BERT-base at 128 tokens, GPT-2 small and the Llama-style decoder over 128 tokens, round-robin in one
process (2 intra-op threads, spinning off). bf16 has no onnxruntime CPU kernels: its numbers need a
GPU (tests/test_precision.py checks it on onnx's reference evaluator).

    python benchmarks/precision.py [--rounds 10] [--tokens 128]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

from timing import round_robin_medians

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tfcompiler import compile_spec  # noqa: E402

MODELS = ["bert-base", "gpt2-small", "llama-style"]


def session(model) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model.serialize(), options, providers=["CPUExecutionProvider"])


def token_feeds(session: ort.InferenceSession, vocab: int, tokens: int) -> dict:
    """Random ids, a full attention mask, token type 0."""
    rng = np.random.default_rng(0)
    feeds = {}
    for port in session.get_inputs():
        if port.name.endswith("attention_mask"):
            feeds[port.name] = np.ones((1, tokens), np.int64)
        elif port.name.endswith("token_type_ids"):
            feeds[port.name] = np.zeros((1, tokens), np.int64)
        else:
            feeds[port.name] = rng.integers(0, vocab, (1, tokens))
    return feeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--opset", type=int, default=23)
    args = parser.parse_args()
    print(f"Command: `{' '.join(['python', f'benchmarks/{Path(__file__).name}', *sys.argv[1:]])}`\n")
    print("| model | file fp32 | file fp16 | max abs error / max abs | relative RMS error | top-1 agreement "
          "| CPU fp32 | CPU fp16 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in MODELS:
        spec = ROOT / "specs" / f"{name}.yaml"
        compiled = {dtype: compile_spec(spec, opset=args.opset, dtype=dtype) for dtype in ("fp32", "fp16")}
        models = {dtype: c.model for dtype, c in compiled.items()}
        sessions = {dtype: session(model) for dtype, model in models.items()}
        feeds = token_feeds(sessions["fp32"], compiled["fp32"].spec.model.vocab_size, args.tokens)
        want, got = (sessions[dtype].run(None, feeds)[0].astype(np.float32) for dtype in ("fp32", "fp16"))
        error = float(np.abs(got - want).max()) / float(np.abs(want).max())
        rms = float(np.sqrt(np.mean((got - want) ** 2) / np.mean(want ** 2)))
        agree = float((got.argmax(-1) == want.argmax(-1)).mean()) if got.shape[-1] > 1024 else float("nan")
        fp32, fp16 = round_robin_medians([lambda s=s: s.run(None, feeds) for s in sessions.values()], args.rounds)
        sizes = [model.weight_bytes / 2 ** 20 for model in models.values()]
        print(f"| {name} | {sizes[0]:.0f} MiB | {sizes[1]:.0f} MiB | {error:.1e} | {rms:.1e} | "
              f"{'-' if agree != agree else f'{agree:.1%}'} | {fp32 * 1e3:.1f} ms | {fp16 * 1e3:.1f} ms |")


if __name__ == "__main__":
    main()
