"""What the benchmark scripts share: the median of repeated timed runs, round-robin medians, the onnxruntime
session settings every contender runs with, and a session for a small hand-built graph (the kernel comparisons)."""
from __future__ import annotations

import statistics
import time

THREADS = 2  # intra-op threads of every runtime, torch's included: the development machine has 2 cores


def median_seconds(fn, repeat: int, warm_up: bool = True) -> float:
    """The median wall time of `repeat` calls of fn, after one untimed call when `warm_up`."""
    if warm_up:
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def round_robin_medians(runs: list, rounds: int) -> list[float]:
    """Median seconds of each callable, timed in turn `rounds` times, so drift hits them all alike."""
    times = [[] for _ in runs]
    for _ in range(rounds):
        for run, bucket in zip(runs, times):
            start = time.perf_counter()
            run()
            bucket.append(time.perf_counter() - start)
    return [statistics.median(bucket) for bucket in times]


def session(model, threads: int = THREADS):
    """An onnxruntime CPU session of `model` (a path or the serialized bytes) as the benchmarks run every
    contender: `threads` intra-op threads, one inter-op, thread spinning off (an idle session's spinning
    threads would slow the contender timed after it), warnings off."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def graph_session(nodes: list, inputs: list, constants: dict, opset: int):
    """A `session` for `nodes` with their float output `y`, the standard and com.microsoft domains imported."""
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(nodes, "kernels", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(v, k) for k, v in constants.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset),
                                                    helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 10
    return session(model.SerializeToString())
