"""What every fuzz test of issue 20 shares: its budget (derandomized hypothesis settings; TFC_FUZZ_SCALE=N
runs N times the examples), the CLI run in-process, and the verdict on one case: exit 0, 1 or 2 (never 3,
the internal error), no traceback, the worker's peak memory kept under a bound, and no file left behind
by a command that failed."""
from __future__ import annotations

import contextlib
import io
import os
import resource
from pathlib import Path

from hypothesis import HealthCheck, event, settings

from tfcompiler.cli import main

# TFC_FUZZ_SCALE=20 runs twenty times the examples: a deeper search by hand than CI's budget allows
SCALE = int(os.environ.get("TFC_FUZZ_SCALE", "1"))
FUZZ = settings(derandomize=True, database=None, deadline=5000, print_blob=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# A case may not lift the worker's peak resident memory past this (a tiny model compiles in ~300 MiB; a
# case that allocates what its input asks for without a bound would reach gigabytes)
PEAK_MEMORY = 3 << 30


def peak_memory() -> int:
    """This process's peak resident memory in bytes so far (Linux counts KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_cli(*args: str) -> tuple[int, str]:
    """`tfc ARGS` in this process: its exit code (argparse's own exits too) and its stderr."""
    err = io.StringIO()
    before = peak_memory()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(list(args))
        except SystemExit as exit_:  # argparse: 2 for a usage error, 0 for --help
            code = exit_.code if isinstance(exit_.code, int) else 1
    after = peak_memory()
    assert after <= max(before, PEAK_MEMORY), f"tfc {' '.join(args)[:300]}: peak memory {after / 2 ** 30:.1f} GiB"
    return code, err.getvalue()


def assert_clean(code: int, err: str) -> None:
    event(f"exit {code}")  # --hypothesis-show-statistics: how many examples got how far
    assert code in (0, 1, 2), f"exit {code}: {err[-2000:]}"
    assert "Traceback" not in err, err[-2000:]


def files_in(folder: Path) -> list[str]:
    """Every file and folder under ``folder``, as sorted relative paths: what a command left there."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))
