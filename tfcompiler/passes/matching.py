"""Match results: what a pass's pattern found at a node, or why it did not match (onnxscript's
``MatchResult``). A failed match carries its reason, which ``tfc compile --explain`` prints; the
same match functions serve the rewrite and the pass's ``ensures`` check (nothing matching is left)."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Mapping

from .report import span


@dataclass(frozen=True)
class Match:
    """Truthy when the pattern matched, with what it bound; falsy with the reason it did not."""

    reason: str = ""
    bound: Mapping[str, Any] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return not self.reason

    @classmethod
    def fail(cls, reason: str) -> "Match":
        return cls(reason=reason)

    @classmethod
    def of(cls, **bound) -> "Match":
        return cls(bound=bound)


def misses(failed: list[tuple[str, str]], what: str) -> list[str]:
    """Notes for the nodes a pattern did not match, one per reason: (origin, reason) pairs ->
    "left 2 layer_norm: its input is not a residual sum (at encoder.embeddings, ...)"."""
    by_reason = Counter(reason for _, reason in failed)
    return [f"left {count} {what}: {reason} (at {span(o for o, r in failed if r == reason)})"
            for reason, count in sorted(by_reason.items())]
