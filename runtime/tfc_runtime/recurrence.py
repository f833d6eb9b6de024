"""Segment recurrence on the deploy side: a model compiled with a stack `memory` (Transformer-XL)
takes `past_memories.N` and returns `present_memories.N`; `Segments` keeps them between calls, so a
long sequence can be fed segment by segment. The first call starts from empty memories."""
from __future__ import annotations

import numpy as np

from .session import Model

PAST, PRESENT = "past_memories.", "present_memories."


class Segments:
    """``Segments(Model("txl.onnx"))``; ``run(input_ids=..., attention_mask=...)`` per segment,
    ``reset()`` to start a new sequence."""

    def __init__(self, model: Model):
        self.model = model
        self.ports = [p for p in model.inputs if p.role == "memory"]
        if not self.ports:
            raise ValueError("the model has no segment memory inputs (compile it with a stack `memory`)")
        self.memories: dict[str, np.ndarray] = {}

    def reset(self) -> None:
        self.memories = {}

    def run(self, feeds: dict[str, np.ndarray] | None = None, **named) -> dict[str, np.ndarray]:
        feeds = {**(feeds or {}), **named}
        batch = len(next(iter(feeds.values())))
        for port in self.ports:
            width = port.shape[-1]
            feeds[port.name] = self.memories.get(port.name, np.zeros((batch, 0, width), port.dtype))
        outputs = self.model.run(feeds)
        self.memories = {PAST + name[len(PRESENT):]: value for name, value in outputs.items()
                         if name.startswith(PRESENT)}
        return {name: value for name, value in outputs.items() if not name.startswith(PRESENT)}
