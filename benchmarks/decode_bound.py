"""The bandwidth bound of benchmarks/decode.py: a decoder step at batch B must stream every weight it
multiplies by (not the embedding tables it gathers a row from) plus each row's KV cache, so the
machine's memory bandwidth caps its tokens/s at bandwidth / bytes per token."""
from __future__ import annotations

import threading
import time

import numpy as np


def memory_bandwidth(quick: bool = False, read_only: bool = False) -> float:
    """Bytes read + written per second by a large NumPy copy (256 MiB; 32 MiB with `quick`, still past the
    caches), the best of several, by one thread and by two threads copying halves (NumPy releases the
    GIL in a copy): the better of the two. With `read_only`, bytes read per second by a sum instead (what
    a decoder's weights need: reads with no writes)."""
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


def bytes_per_step(info: dict, batch: int, prompt: int, new: int) -> float:
    """Bytes one decode step reads per token: the streamed weights shared by the batch's rows, plus each
    row's KV cache at its mean length over the decode."""
    mean_length = prompt + new / 2
    return info["streamed_bytes"] / batch + info["kv_bytes_per_position"] * mean_length
