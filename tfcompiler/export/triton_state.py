"""Which of the values a model carries from call to call Triton can keep itself, and why not where it cannot.

Triton's sequence batcher with implicit state (Triton's docs: user_guide/implicit_state_management.md)
feeds each `state` input the `state` output of the same sequence's previous request, and a sequence's first
request the `initial_state` (zeros here) at the state's dims with every variable-size axis set to 1 (the
scheduler sizes the first request's state so, whatever `initial_state` says: core's sequence_state.cc).
A state therefore never starts empty, and it starts as the runtime starts it only when

- all its axes but the batch are fixed (a linear-attention sum, an RNN's h and c): zeros, the runtime's
  start too; or
- it is a KV cache over past positions that the attention mask covers, in a model that takes left padding
  exactly (metadata `tfcompiler.left_padding: exact`): its one zero position is a left pad, which the
  client masks (a 0 in the attention mask's first column) for as long as the cache keeps it, as the
  runtime masks a left-padded row's pads.

It cannot when the encoder model gives the value's start (an LSTM decoder that starts from the encoder's
state), nor when no input masks the zero position (segment memories, memory slots): there the client
carries the values itself (`--state client`).
"""
from __future__ import annotations

import re

from .onnx_ports import Carried, Interface

KV_ROLES = ("past_key", "past_value")


def variable_axes(shape: tuple) -> list[str]:
    """The dynamic axes but the batch (the runtime's rule: an axis whose name says batch)."""
    return [axis for axis in shape if isinstance(axis, str) and "batch" not in axis]


def is_kv_cache(carried: Carried) -> bool:
    past = carried.past
    return past.role in KV_ROLES or (not past.role and past.name.startswith("past_key_values."))


def why_not_implicit(face: Interface, carried: Carried, given: dict[str, str]) -> str:
    """"" when Triton can keep ``carried`` as an implicit state that starts as the runtime starts it, else
    why not. ``given``: the inputs the encoder model feeds, {input: the encoder's output}."""
    past = carried.past
    if past.name in given:
        return f"{past.name} starts from the encoder model's {given[past.name]}, and Triton starts a state at zeros"
    variable = variable_axes(past.shape)
    if not variable:
        return ""
    mask = face.input("padding_mask", "attention_mask")
    covered = mask is not None and bool(mask.shape) and isinstance(mask.shape[-1], str) and all(
        re.search(rf"(?<![\w.]){re.escape(axis)}(?![\w.])", mask.shape[-1]) for axis in variable)
    if not (is_kv_cache(carried) and covered):
        return (f"{past.name}: Triton starts its axis {variable[0]!r} at one zero position, which no input of the "
                "model masks")
    left_padding = face.metadata.get("tfcompiler.left_padding")
    if left_padding != "exact":
        return (f"{past.name}: Triton starts it at one zero position, a left pad that the attention mask hides "
                "exactly only in a model that takes left padding exactly, and this one does not "
                f"({left_padding or 'it has no tfcompiler.left_padding metadata'})")
    return ""
