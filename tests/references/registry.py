"""The test side's kind registries: the NumPy reference of each input layer, positional scheme,
attention kind and head registers itself here under the kind's name (the ``KIND`` of the spec's options
section), and ``Reference`` dispatches through them — no ``kind ==`` chains. Also the two records a
kind's reference is handed: the attention call (``Site``) and the score terms it may add to
(``Logits``)."""
from __future__ import annotations

import dataclasses
from typing import Any, Callable


class Registry:
    """References by kind name; ``@ATTENTION.register("nystrom")`` on a class adds an instance."""

    def __init__(self, name: str):
        self.name = name
        self.kinds: dict[str, Any] = {}

    def register(self, kind: str):
        def add(cls):
            if kind in self.kinds:
                raise ValueError(f"{self.name} reference {kind!r} registered twice")
            self.kinds[kind] = cls()
            return cls
        return add

    def __getitem__(self, options):
        """The reference of a parsed options section, by its kind."""
        kind = type(options).KIND
        if kind not in self.kinds:
            raise KeyError(f"no NumPy reference for {self.name} kind {kind!r} (tests/references/: a module per kind)")
        return self.kinds[kind]


INPUTS = Registry("input")
POSITIONS = Registry("positional")
ATTENTION = Registry("attention")
HEADS = Registry("head")


@dataclasses.dataclass
class Site:
    """One attention call: the query input x (B, S, D), padding bias of the keys (B, T) or None,
    whether queries only see earlier keys, the layer's weight prefix, the positional scheme of a
    self-attention (None for cross-attention), the stack's name, the stack's running state (dict, or
    None), and the queries' positions (default T-S .. T-1)."""

    x: Any
    key_bias: Any
    causal: bool
    options: Any
    name: str
    positional: Any = None
    stack: str | None = None
    state: dict | None = None
    positions: Any = None


@dataclasses.dataclass
class Logits:
    """The terms of softmax(scale · q kᵀ + bias) v + value_term(probabilities) that positional
    schemes and attention options change: q, k (B, H, S, d) and (B, Hkv, T, d), the scale, an
    additive bias broadcastable to (B, H, S, T), and Shaw's value term."""

    q: Any
    k: Any
    scale: float
    bias: Any
    value_term: Callable | None = None
