"""Recurrence on the deploy side: a model compiled with a stack `memory` (Transformer-XL) takes
`past_memories.N` and returns `present_memories.N`, one with stateful recurrent layers takes
`past_states.K.h` (`.c`) and returns `present_states.K.h` (`.c`); `Segments` keeps them between
calls, so a long sequence can be fed in pieces. The first call starts from empty memories and zero
states."""
from __future__ import annotations

import numpy as np

from .session import Model

CARRIED = ("memory", "recurrent_state")  # input roles that a call's outputs feed to the next call


class Segments:
    """``Segments(Model("txl.onnx"))``; ``run(input_ids=..., attention_mask=...)`` per segment,
    ``reset()`` to start a new sequence."""

    def __init__(self, model: Model):
        self.model = model
        self.ports = [p for p in model.inputs if p.role in CARRIED]
        if not self.ports:
            raise ValueError("the model carries nothing between calls (compile it with a stack `memory` or "
                             "stateful recurrent layers)")
        self.memories: dict[str, np.ndarray] = {}

    def reset(self) -> None:
        self.memories = {}

    def run(self, feeds: dict[str, np.ndarray] | None = None, **named) -> dict[str, np.ndarray]:
        feeds = {**(feeds or {}), **named}
        batch = len(next(iter(feeds.values())))
        for port in self.ports:  # a memory starts empty, a state at zero
            first = (batch, 0, port.shape[-1]) if port.role == "memory" else (port.shape[0], batch, port.shape[-1])
            feeds[port.name] = self.memories.get(port.name, np.zeros(first, port.dtype))
        outputs = self.model.run(feeds)
        self.memories = {"past_" + name[len("present_"):]: value for name, value in outputs.items()
                         if name.startswith("present_")}
        return {name: value for name, value in outputs.items() if not name.startswith("present_")}
