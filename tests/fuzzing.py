"""What every fuzz test of issue 20 shares: its budget (derandomized hypothesis settings; TFC_FUZZ_SCALE=N
runs N times the examples), the CLI run in-process under a memory bound, and the verdict on one case: exit 0,
1 or 2 (never 3, the internal error), no traceback, and no file left behind by a command that failed."""
from __future__ import annotations

import contextlib
import io
import os
import resource
from pathlib import Path

from hypothesis import HealthCheck, event, settings
from hypothesis.control import currently_in_test_context

from tfcompiler.cli import main

# TFC_FUZZ_SCALE=20 runs twenty times the examples: a deeper search by hand than CI's budget allows
SCALE = int(os.environ.get("TFC_FUZZ_SCALE", "1"))
# The deadline catches a hang or work that grows with a number in the input; the slowest cases (a shrunk spec's
# compile) take about 2 s alone and twice that on a machine busy with other work: 10 s leaves room for both
FUZZ = settings(derandomize=True, database=None, deadline=10_000, print_blob=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# What one case may map beyond what the process held before it: a command that allocates what its input asks
# for without a bound (a batch of 2**31 rows, a table of 10**12 entries) meets a MemoryError here, which tfc
# would report as an internal error, instead of taking the machine's memory
HEADROOM = 4 << 30


@contextlib.contextmanager
def memory_bound(headroom: int = HEADROOM):
    """Lower this process's address-space limit to its present size plus ``headroom`` for the block (Linux;
    elsewhere no bound), and restore it after."""
    status = Path("/proc/self/status")
    if not status.exists():
        yield
        return
    size = next(int(line.split()[1]) * 1024 for line in status.read_text().splitlines() if line.startswith("VmSize:"))
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    bound = size + headroom if hard == resource.RLIM_INFINITY else min(size + headroom, hard)
    resource.setrlimit(resource.RLIMIT_AS, (bound, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def run_cli(*args: str, headroom: int = HEADROOM) -> tuple[int, str]:
    """`tfc ARGS` in this process under the memory bound: its exit code (argparse's own exits too) and its
    stderr."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), memory_bound(headroom):
        try:
            code = main(list(args))
        except SystemExit as exit_:  # argparse: 2 for a usage error, 0 for --help
            code = exit_.code if isinstance(exit_.code, int) else 1
    return code, err.getvalue()


def assert_clean(code: int, err: str) -> None:
    if currently_in_test_context():  # --hypothesis-show-statistics: how many examples got how far
        event(f"exit {code}")
    assert code in (0, 1, 2), f"exit {code}: {err[-2000:]}"
    assert "Traceback" not in err, err[-2000:]


def files_in(folder: Path) -> list[str]:
    """Every file and folder under ``folder``, as sorted relative paths: what a command left there."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))
