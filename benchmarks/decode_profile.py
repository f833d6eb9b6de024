"""Where a decode step's time goes (benchmarks/decode.py's follow-up): onnxruntime's profiler over 64
greedy steps of our compiled model (`--target portable` and `ort-cpu`) and of onnxruntime-genai's
builder output for the same checkpoint, kernel time per step by op type; and the LM head alone, as
one MatMul against the same weight split in column chunks (a [1, K] x [K, N] product with N in the
tens of thousands is where onnxruntime's MatMul reads memory slowest here).

    python benchmarks/decode_profile.py [--models gpt2,llama] [--steps 64]
"""
from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from decode_models import checkpoint, genai_model, genai_python
from timing import graph_session, round_robin_medians

GENAI_RUN = """
import json, sys, numpy as np, onnxruntime_genai as og
folder, prefix, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
path = folder + "/genai_config.json"
config = json.load(open(path))
config["model"]["decoder"]["session_options"]["enable_profiling"] = prefix
json.dump(config, open(path, "w"))
model = og.Model(folder)
ids = np.random.default_rng(0).integers(3, config["model"]["vocab_size"], (1, 32)).astype(np.int32)
params = og.GeneratorParams(model)
params.set_search_options(max_length=32 + steps, min_length=32 + steps, do_sample=False)
generator = og.Generator(model, params)
generator.append_tokens(ids)
while not generator.is_done():
    generator.generate_next_token()
"""


def kernel_times(profile: Path) -> tuple[dict, float, int]:
    """Op type -> (microseconds per step, nodes per step) over the decode steps (the first run, the
    prompt, left out); and the mean microseconds of a whole run."""
    events = json.loads(profile.read_text())
    runs = [e for e in events if e.get("name") == "model_run"]
    decode = runs[1]["ts"]
    steps = len(runs) - 1
    time, count = collections.Counter(), collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and e["ts"] >= decode:
            time[e["args"]["op_name"]] += e["dur"]
            count[e["args"]["op_name"]] += 1
    per_step = {op: (t / steps, count[op] / steps) for op, t in time.most_common()}
    return per_step, float(np.mean([e["dur"] for e in runs[1:]])), steps


def profile_ours(path: Path, steps: int, prefix: str) -> Path:
    import onnxruntime as ort

    from tfc_runtime import Generator

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.enable_profiling = True
    options.profile_file_prefix = prefix
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    generator = Generator(path, intra_op_threads=2, session_options=options)
    ids = np.random.default_rng(0).integers(3, generator.vocab, (1, 32))
    generator.generate(ids, max_new_tokens=steps, min_new_tokens=steps)
    return Path(generator.model.session.end_profiling())


def profile_genai(folder: Path, steps: int, prefix: str) -> Path | None:
    subprocess.run([genai_python(), "-c", GENAI_RUN, str(folder), prefix, str(steps)], check=True,
                   capture_output=True)
    found = sorted(Path(prefix).parent.glob(Path(prefix).name + "*.json"))
    return found[-1] if found else None


def lm_head(k: int, n: int, rounds: int = 20) -> list[tuple[str, float]]:
    """Milliseconds of x [1, K] times the LM head's weight [K, N] as one MatMul and in column chunks."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    weight = rng.standard_normal((k, n)).astype(np.float32)
    x = rng.standard_normal((1, k)).astype(np.float32)
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, k])]
    sessions = {}
    for chunks in (1, 4, 16):
        width = -(-n // chunks)
        names = [f"w{i}" for i in range(chunks)]
        nodes = [helper.make_node("MatMul", ["x", name], [f"y{i}"]) for i, name in enumerate(names)]
        nodes.append(helper.make_node("Concat", [f"y{i}" for i in range(chunks)], ["y"], axis=1))
        constants = {name: np.ascontiguousarray(weight[:, i * width:(i + 1) * width]) for i, name in enumerate(names)}
        sessions[f"{chunks} MatMul" + ("s" if chunks > 1 else "")] = graph_session(nodes, inputs, constants, 17)
    runs = [(lambda s: lambda: s.run(None, {"x": x}))(s) for s in sessions.values()]
    return [(name, 1000 * t) for name, t in zip(sessions, round_robin_medians(runs, rounds))]


def print_profile(label: str, profile: Path) -> None:
    per_step, run_us, steps = kernel_times(profile)
    total = sum(t for t, _ in per_step.values())
    nodes = sum(n for _, n in per_step.values())
    print(f"\n{label}: {steps} decode steps, a run {run_us / 1000:.2f} ms, kernels {total / 1000:.2f} ms in "
          f"{nodes:.0f} nodes\n")
    print("| op | ms/step | share | nodes/step |")
    print("| --- | --- | --- | --- |")
    for op, (t, n) in list(per_step.items())[:12]:
        print(f"| {op} | {t / 1000:.2f} | {100 * t / total:.1f}% | {n:.0f} |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="gpt2,llama")
    parser.add_argument("--steps", type=int, default=64)
    args = parser.parse_args(argv)
    from tfcompiler import compile_spec
    from tfcompiler.importers.hf import import_hf

    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            folder = Path(tmp) / name
            info = checkpoint(name, folder / "hf", quick=False)
            spec, weights = import_hf(folder / "hf", folder / "imported")[:2]
            print(f"\n## {name} ({info['parameters'] / 1e6:.1f}M parameters)")
            for target in ("portable", "ort-cpu"):
                path = folder / f"{target}.onnx"
                compile_spec(spec, weights=str(weights), target=target).model.save(str(path))
                print_profile(f"tfcompiler --target {target}", profile_ours(path, args.steps, f"{folder}/{target}"))
            genai, why = genai_model(folder / "hf", folder / "genai")
            if genai:
                profile = profile_genai(genai, args.steps, f"{folder}/genai")
                if profile:
                    print_profile("onnxruntime-genai", profile)
            else:
                print(f"\nonnxruntime-genai: {why}")
    for k, n in [(768, 50257), (512, 32000)]:
        times = lm_head(k, n)
        print(f"\nLM head [1, {k}] x [{k}, {n}] ({4 * k * n / 2**20:.0f} MiB): " +
              ", ".join(f"{name} {ms:.2f} ms ({4 * k * n / ms / 1e6:.1f} GB/s)" for name, ms in times))
    return 0


if __name__ == "__main__":
    sys.exit(main())
