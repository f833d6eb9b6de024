"""What the benchmark scripts share: the median of repeated timed runs."""
from __future__ import annotations

import statistics
import time


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
