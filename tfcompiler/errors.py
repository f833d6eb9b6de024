"""User-facing errors. Each carries what the CLI prints: a location when there is one and a message;
the CLI turns them into one clear message and a non-zero exit, never a traceback."""
from __future__ import annotations

from dataclasses import dataclass


class TfcError(Exception):
    """Base of every error the CLI reports without a traceback."""


@dataclass
class Problem:
    """One located problem in a spec: ``file:line:col: path: message``."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class SpecError(TfcError):
    """A spec failed to parse or validate; ``problems`` lists every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class WeightsError(TfcError):
    """Weights do not fit the spec: missing, unexpected or misshapen names, listed together."""


class OutputError(TfcError):
    """An output file could not be written."""
