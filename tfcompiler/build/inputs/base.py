"""What an input layer hands to its stack, and the I/O names each stack uses."""
from __future__ import annotations

from dataclasses import dataclass

from ...ir.graph import Value
from ...ir.types import DECODER_SEQUENCE, SEQUENCE


@dataclass(frozen=True)
class InputNames:
    prefix: str          # "" or "decoder_" (HF names the decoder's inputs decoder_input_ids, ...)
    sequence_axis: str   # the symbolic length of this stack's sequence


@dataclass(frozen=True)
class StackInput:
    """The first hidden states (B, S, D), the padding mask (B, S) and the value positions are
    counted along (the ids)."""

    hidden: Value
    mask: Value | None
    ids: Value

    @staticmethod
    def input_names(spec, stack_name: str) -> InputNames:
        if spec.topology == "encoder-decoder" and stack_name == "decoder":
            return InputNames("decoder_", DECODER_SEQUENCE)
        return InputNames("", SEQUENCE)
