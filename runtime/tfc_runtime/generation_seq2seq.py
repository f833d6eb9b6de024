"""An encoder-decoder generates as two models (Optimum's folder layout): `encoder_model.onnx` reads the
source once and returns every decoder layer's cross-attention keys and values (`present.N.encoder.key`);
`decoder_model.onnx` takes them as `past_key_values.N.encoder.key` (the one pairing rule, `present_of`)
with the source's mask, the same at every step, and keeps its own cache. The decoder starts from
`decoder_start_token_id`, as Hugging Face's `generate` does for an encoder-decoder. Sources are padded
on the right, as encoder tokenizers pad (an encoder's positions count from the first column). An encoder
with memory slots (Memformer) reads the source as a first segment: from its learned slots. A speech encoder
reads `input_features` (B, T, F) with their mask instead (as Hugging Face's `generate` does for Speech2Text),
and returns the mask of the states it subsampled them to (`encoder_attention_mask`), which the decoder takes."""
from __future__ import annotations

import numpy as np

from .generation_inputs import Prompts
from .generation_step import present_of
from .session import Model

ENCODER_FILE, DECODER_FILE = "encoder_model.onnx", "decoder_model.onnx"


def encoded(encoder: Model, given: tuple[str, ...], source: Prompts) -> dict[str, np.ndarray]:
    """The decoder model's `given` inputs for this source: the encoder's outputs, and the source's mask."""
    roles = {p.role: p.name for p in encoder.inputs if p.role != "memory"}
    if set(roles) != {"token_ids", "padding_mask"}:
        raise ValueError(f"the encoder model takes {[p.name for p in encoder.inputs]}; generation feeds it token "
                         "ids, their mask and empty memories only")
    source = right_padded(source)
    first = {p.name: np.zeros((len(source.ids), 0, p.shape[-1]), p.dtype) for p in encoder.inputs if p.role == "memory"}
    outputs = encoder.run({roles["token_ids"]: source.ids, roles["padding_mask"]: source.mask, **first})
    return handed_over(outputs, given, source.mask)


def encoded_frames(encoder: Model, given: tuple[str, ...], features, mask) -> dict[str, np.ndarray]:
    """The decoder model's `given` inputs for speech features (B, T, F) and their 0/1 mask (B, T), padded on the
    right (all ones when None): the encoder's outputs, with the mask of its subsampled states."""
    roles = {p.role: p.name for p in encoder.inputs}
    if set(roles) != {"input_features", "padding_mask"}:
        raise ValueError(f"input_features: the encoder model takes {[p.name for p in encoder.inputs]}, not speech "
                         "features (give input_ids)")
    features = np.asarray(features)
    if features.ndim != 3:
        raise ValueError(f"input_features: expected an array [batch, frames, features], got shape "
                         f"{list(features.shape)}")
    mask = np.ones(features.shape[:2], np.int64) if mask is None else mask
    outputs = encoder.run({roles["input_features"]: features, roles["padding_mask"]: mask})
    return handed_over(outputs, given, outputs.get("encoder_attention_mask"))


def handed_over(outputs: dict, given: tuple[str, ...], mask) -> dict[str, np.ndarray]:
    """The decoder model's inputs from the encoder model's outputs: `past_...` from `present...`, and the source's
    mask (the encoder's own output of that name where it shortened the source)."""
    missing = [present_of(name) for name in given if name.startswith("past_") and present_of(name) not in outputs]
    if missing:
        raise ValueError(f"the encoder model does not return {missing}, which the decoder model takes")
    return {name: outputs[present_of(name)] if name.startswith("past_") else outputs.get(name, mask) for name in given}


def right_padded(prompts: Prompts) -> Prompts:
    ids, mask = np.zeros_like(prompts.ids), np.zeros_like(prompts.mask)
    for row, length in enumerate(prompts.lengths):
        ids[row, :length], mask[row, :length] = prompts.ids[row, prompts.ids.shape[1] - length:], 1
    return Prompts(ids, mask)


def start_tokens(batch: int, start) -> Prompts:
    """Every row's decoder prompt: the start token alone."""
    if start is None:
        raise ValueError("decoder_start_token_id: an encoder-decoder needs one (give it, or put it or "
                         "bos_token_id in generation.json)")
    return Prompts(np.full((batch, 1), start, np.int64), np.ones((batch, 1), np.int64))
