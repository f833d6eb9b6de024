"""ONNX lowering of the `attention` op: the target's lowering for long inputs where one applies
(lower/long_inputs.py: flash attention or query blocks, chosen by an `If` on the key length), the
dense lowering (lower/dense_attention.py) otherwise."""
from __future__ import annotations

from .dense_attention import emit_standard_attention
from .long_inputs import emit_long_input_attention
from .registry import lowers


@lowers("attention")
def emit_attention(e, attrs, inputs, types, label):
    """The target's lowering for long inputs where it has one that applies
    (tfcompiler.lower.long_inputs), the standard lowering otherwise."""
    return (emit_long_input_attention(e, attrs, inputs, types, label)
            or emit_standard_attention(e, attrs, inputs, types, label))
