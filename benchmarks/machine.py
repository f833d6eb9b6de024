"""What the benchmarks say and measure about the machine they run on: its one-line description (CPU,
cores, library versions), and the two physical bounds a model's speed is read against, both measured
here rather than taken from a data sheet: the best fp32 MatMul rate onnxruntime reaches with the
benchmarks' threads (compute), and the memory bandwidth of a large NumPy copy or sum (bytes)."""
from __future__ import annotations

import os
import platform
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from timing import THREADS, median_seconds, session

# M, K, N: square products and BERT-base's / the Llama-style decoder's FFN at 128 tokens (benchmarks/speed.py)
PEAK_SHAPES = ((1024, 1024, 1024), (2048, 2048, 2048), (128, 768, 3072), (128, 512, 1536))


def cpu_name() -> str:
    """The processor's model name (Linux's /proc/cpuinfo), else what `platform` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
                platform.processor() or "unknown CPU")


def describe() -> str:
    """Architecture, CPU, cores, Python and the versions of the libraries the benchmarks compare."""
    versions = []
    for module in ("torch", "transformers", "onnx", "onnxruntime"):
        try:
            versions.append(f"{module} {__import__(module).__version__}")
        except ImportError:
            versions.append(f"{module} absent")
    return (f"{platform.machine()}, {cpu_name()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            + ", ".join(versions))


def matmul_peak(repeat: int, shapes=PEAK_SHAPES, threads: int = THREADS) -> float:
    """The best GFLOP/s of fp32 MatMuls (M×K by K×N for each of `shapes`) on onnxruntime with `threads`
    intra-op threads, B a constant weight as in a model, so onnxruntime packs it once."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    best = 0.0
    rng = np.random.default_rng(0)
    for m, k, n in shapes:
        weight = numpy_helper.from_array(rng.standard_normal((k, n)).astype(np.float32), "b")
        graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "mm",
                                  [helper.make_tensor_value_info("a", TensorProto.FLOAT, [m, k])],
                                  [helper.make_tensor_value_info("c", TensorProto.FLOAT, [m, n])], [weight])
        with tempfile.TemporaryDirectory() as tmp:
            onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), f"{tmp}/mm.onnx")
            sess = session(f"{tmp}/mm.onnx", threads)
            a = rng.standard_normal((m, k)).astype(np.float32)
            best = max(best, 2 * m * k * n / median_seconds(lambda: sess.run(None, {"a": a}), repeat) / 1e9)
    return best


def memory_bandwidth(quick: bool = False, read_only: bool = False) -> float:
    """Bytes read + written per second by a large NumPy copy (256 MiB; 32 MiB with `quick`, still past the
    caches), the best of several, by one thread and by two threads copying halves (NumPy releases the
    GIL in a copy): the better of the two. With `read_only`, bytes read per second by a sum instead (what
    a model's weights need: reads with no writes)."""
    size = (32 if quick else 256) * 2**20 // 4
    source, target = np.ones(size, np.float32), np.empty(size, np.float32)
    half = size // 2

    def copy(part: slice) -> None:
        if read_only:
            np.add.reduce(source[part])
        else:
            np.copyto(target[part], source[part])

    best = 0.0
    for threads in (1, 2):
        for _ in range(3 if quick else 8):
            parts = [slice(None)] if threads == 1 else [slice(0, half), slice(half, None)]
            workers = [threading.Thread(target=copy, args=(p,)) for p in parts]
            start = time.perf_counter()
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            best = max(best, (1 if read_only else 2) * source.nbytes / (time.perf_counter() - start))
    return best
