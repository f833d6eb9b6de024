"""Shared test helpers: tiny specs and running compiled models on onnxruntime."""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests import `reference` as a plain module

ROOT = Path(__file__).resolve().parents[1]

TINY = """\
tfc: 1
name: tiny
topology: {topology}
model: {{width: 32, heads: 4, ffn_width: 48, vocab_size: 50, max_length: 32}}
positional: {positional}
block: {{placement: {placement}}}
{stacks}
head: {{kind: {head}}}
"""


def tiny_spec(topology="decoder", positional="learned", placement="pre", head="lm") -> str:
    """YAML text of a two-layer model small enough for the NumPy interpreter."""
    stacks = {"encoder": "encoder: {layers: 2}", "decoder": "decoder: {layers: 2}",
              "encoder-decoder": "encoder: {layers: 2}\ndecoder: {layers: 2}"}[topology]
    return TINY.format(topology=topology, positional=positional, placement=placement, head=head,
                       stacks=stacks)


NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64}


SOURCE_NAMES = ("input_ids", "inputs_embeds", "input_features", "input_values")  # what a stack's input layer reads


def random_source(spec, rng: np.random.Generator, batch: int, length: int, stack: str = "decoder"):
    """A random input for a stack's input layer, with the name of the graph input that reads it (Hugging
    Face's; a decoder's takes the `decoder_` prefix in a one-graph encoder-decoder): token ids (B, S), float
    vectors or mel frames (B, S, F), speech frames (B, 4·S, F: a few per state after the subsampler)."""
    read = spec.input_of(stack)
    kind = type(read).KIND
    if type(read).reads_tokens:
        return "input_ids", rng.integers(0, spec.model.vocab_size, (batch, length))
    shape = {"vectors": lambda: (batch, length, read.width(spec)), "frames": lambda: (batch, 4 * length, read.features),
             "mel_frames": lambda: (batch, length, read.mels)}
    if kind not in shape:
        raise ValueError(f"no random source for input {kind!r}: add it here")
    name = {"vectors": "inputs_embeds", "frames": "input_features", "mel_frames": "input_values"}[kind]
    return name, rng.standard_normal(shape[kind]()).astype(np.float32)


def whole_input(session: ort.InferenceSession, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Feeds plus what a decoder compiled with a KV cache also takes to read its whole input in one
    call: an empty past, zero layer states, and positions counted from the first column, as a forward
    without position_ids counts them in Hugging Face and as a model without a cache does."""
    feeds = dict(feeds)
    source = feeds.get("input_ids", feeds.get("inputs_embeds"))  # token ids (B, S) or vectors (B, S, F)
    batch, length = source.shape[:2] if source is not None else (None, None)
    for port in session.get_inputs():
        if port.name.startswith("past_key_values."):
            feeds.setdefault(port.name, np.zeros((batch, port.shape[1], 0, port.shape[3]), NUMPY_TYPES[port.type]))
        elif port.name.startswith("past_state."):
            feeds.setdefault(port.name, np.zeros((batch, *port.shape[1:]), NUMPY_TYPES[port.type]))
        elif port.name == "position_ids":
            feeds.setdefault(port.name, np.tile(np.arange(length), (batch, 1)))
    return feeds


def onnx_runner(model_bytes: bytes):
    """feeds -> {output name: array} on one onnxruntime session: a model run at several lengths loads once."""
    session = ort.InferenceSession(model_bytes)
    names = [o.name for o in session.get_outputs()]

    def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(names, session.run(None, {i.name: feeds[i.name] for i in session.get_inputs()})))
    return run


def run_onnx(model_bytes: bytes, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return onnx_runner(model_bytes)(feeds)


@pytest.fixture
def memory_path(tmp_path):
    """A folder in memory (tmpfs) where the machine has one, else tmp_path: full-size models write
    hundreds of MB, and the external-data writer syncs its file to disk."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    folder = Path(tempfile.mkdtemp(prefix="tfc-test-", dir=shm))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
