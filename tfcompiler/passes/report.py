"""What the pass runner records and ``tfc compile --explain`` prints: per pass, whether it changed the
graph, its node counts and time, its notes (what matched, why the rest did not), and the nodes it
made or marked (``rewritten_by``), counted per op type and spec origin."""
from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Iterable

NUMBER = re.compile(r"^\d+$")


def span(origins: Iterable[str], limit: int = 4) -> str:
    """Origins in a few words: those that differ only in their last index merge into a range
    (``decoder.layers.0.ffn`` .. ``decoder.layers.11.ffn`` -> ``decoder.layers.0..11.ffn``)."""
    indices: dict[tuple, set[int]] = defaultdict(set)
    for origin in set(origins):
        parts = origin.split(".") if origin else ["(no origin)"]
        at = max((i for i, part in enumerate(parts) if NUMBER.match(part)), default=None)
        if at is None:
            indices[tuple(parts), None].add(0)
        else:
            indices[tuple(parts[:at] + ["#"] + parts[at + 1:]), at].add(int(parts[at]))
    words = []
    for (parts, at), numbers in sorted(indices.items(), key=lambda item: (item[0][0], min(item[1]))):
        if at is None:
            words.append(".".join(parts))
        else:
            words.append(".".join(parts).replace("#", _ranges(sorted(numbers)), 1))
    return ", ".join(words[:limit]) + (f" and {len(words) - limit} more" if len(words) > limit else "")


def _ranges(numbers: list[int]) -> str:
    """[0, 1, 2, 5] -> "0..2,5"."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return ",".join(f"{a}..{b}" if b > a else f"{a}" for a, b in runs)


@dataclass
class PassRecord:
    name: str
    changed: bool
    notes: list[str]
    seconds: float
    nodes_before: int
    nodes_after: int
    rewrites: Counter = field(default_factory=Counter)  # (op type, origin) -> nodes made or marked

    def rewritten(self) -> list[str]:
        """One line per op type: how many nodes the pass made or marked (rewritten_by), and where."""
        by_type: dict[str, list[str]] = defaultdict(list)
        for (op_type, origin), count in sorted(self.rewrites.items()):
            by_type[op_type] += [origin] * count
        return [f"rewrote {len(origins)} {op_type} at {span(origins)}" for op_type, origins in sorted(by_type.items())]


@dataclass
class PipelineReport:
    records: list[PassRecord] = field(default_factory=list)
    dumps: dict[str, str] = field(default_factory=dict)

    def explain(self) -> str:
        lines = []
        for r in self.records:
            status = "changed" if r.changed else "unchanged"
            lines.append(f"{r.name}: {status}, {r.nodes_before} -> {r.nodes_after} nodes, "
                         f"{r.seconds * 1000:.1f} ms")
            lines.extend(f"  {note}" for note in r.notes)
            lines.extend(f"  {line}" for line in r.rewritten())
        return "\n".join(lines)
