"""The lowering table: IR op -> its ONNX emitter. A leaf: each lowering module registers the ops it
lowers (`@lowers("rope")`), and `tfcompiler.lower`'s `__init__` imports those modules, so this table
never imports the modules that fill it. The ops that map one-to-one onto an ONNX op are data here.

An emitter is `emitter(e, attrs, inputs, types, label) -> output names`: the Emitter, the IR op's
attributes, its inputs' ONNX names and IR types, and the spec label its node is named after.
"""
from __future__ import annotations

from typing import Callable

from .emit import Emitter

Lowering = Callable[..., list[str]]

EMITTERS: dict[str, Lowering] = {}

# IR ops that are one ONNX op with the same inputs and no attributes
DIRECT = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "pow": "Pow", "neg": "Neg",
          "relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid", "sqrt": "Sqrt", "exp": "Exp",
          "sin": "Sin", "cos": "Cos", "abs": "Abs", "log": "Log", "elu": "Elu", "equal": "Equal", "less": "Less",
          "where": "Where", "matmul": "MatMul"}


def register(name: str, emitter: Lowering) -> Lowering:
    """Make `emitter` the lowering of IR op `name` (once: a second lowering of an op is a bug)."""
    if name in EMITTERS or name in DIRECT:
        raise ValueError(f"IR op {name!r} has two lowerings")
    EMITTERS[name] = emitter
    return emitter


def lowers(*names: str) -> Callable[[Lowering], Lowering]:
    """Decorator: the function lowers the IR ops `names`."""
    def decorate(emitter: Lowering) -> Lowering:
        for name in names:
            register(name, emitter)
        return emitter
    return decorate


def emit_op(e: Emitter, op, inputs: list[str], in_types, label: str) -> list[str]:
    """Lower one IR node; returns the ONNX names of its outputs."""
    if op.type in DIRECT:
        return [e.node1(DIRECT[op.type], *inputs, label=label or DIRECT[op.type])]
    return EMITTERS[op.type](e, op.attrs, inputs, in_types, label)
