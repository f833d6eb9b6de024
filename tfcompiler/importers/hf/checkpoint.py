"""The pieces every Hugging Face importer shares: the checkpoint's tensors (looked up with or without a
task model's prefix, the missing ones remembered, the placed ones counted so that none is dropped
unseen), activations, and the weights of norms, linear maps and the common attention-output / FFN
layout under tfcompiler's canonical names."""
from __future__ import annotations

from pathlib import Path

import re

import numpy as np

from ...errors import TfcError

PREFIXES = ("", "bert.", "transformer.", "model.", "longformer.", "reformer.", "funnel.", "deberta.",
            "nystromformer.", "vit.", "deit.")
# Tensors transformers saves that are not parameters: each is recomputed from the config by the
# compiled model, so it is recognised by name (and only these names) instead of being imported.
BUFFERS = {r"(^|\.)embeddings\.position_ids$": "position numbers 0..max_length-1 (BERT family)",
           r"(^|\.)embeddings\.token_type_ids$": "default token types, all zero (BERT family)",
           r"(^|\.)rotary_emb\.inv_freq$": "rotary frequencies, from the config's rope settings (Llama)",
           r"(^|\.)h\.\d+\.attn\.(masked_)?bias$": "GPT-2's causal mask and its fill value"}
BUFFER = re.compile("|".join(BUFFERS))
ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
                "relu": "relu", "silu": "silu", "swish": "silu"}


class Checkpoint:
    """A checkpoint's tensors, looked up with or without the task model's prefix; every tensor that
    is asked for and missing is remembered, so one error can list them all, and every one read is
    marked placed, so that `unplaced` can list the rest."""

    def __init__(self, tensors: dict[str, np.ndarray], source: str):
        self.tensors, self.source, self.missing = tensors, source, []
        self.placed: set[str] = set()
        self.copies: dict[str, str] = {}
        self.unread: set[str] = set()

    def __call__(self, key: str) -> np.ndarray:
        found = self.find(key)
        if found is None:
            self.missing.append(key)
            return np.zeros((0,), np.float32)
        self.placed.add(found)
        return self.tensors[found].astype(np.float32)

    def find(self, key: str) -> str | None:
        """The checkpoint's own name for ``key`` (with the task model's prefix, if any), or None."""
        return next((prefix + key for prefix in PREFIXES if prefix + key in self.tensors), None)

    def has(self, key: str) -> bool:
        return self.find(key) is not None

    def tied(self, copy: str, original: str) -> None:
        """``copy``, where the checkpoint has it, is a second stored copy of ``original`` (a head tied to
        the embedding, as older checkpoints save it): not imported, but only if it holds the same numbers."""
        self.copies[copy] = original

    def never_read(self, key: str) -> None:
        """``key`` is a parameter the source model stores but its forward pass never reads."""
        found = self.find(key)
        if found:
            self.unread.add(found)

    def unplaced(self) -> list[str]:
        """The tensors the import did not place, less the known buffers and the tied copies equal to
        their original (a copy that differs is listed: the model it came from does not tie them)."""
        redundant = set(self.unread)
        for copy, original in self.copies.items():
            ours, theirs = self.find(copy), self.find(original)
            if ours and theirs and np.array_equal(self.tensors[ours], self.tensors[theirs]):
                redundant.add(ours)
        return sorted(key for key in self.tensors
                      if key not in self.placed and key not in redundant and not BUFFER.search(key))


def load_tensors(model_dir: Path) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError

    from ...tensor_files import NarrowFloats, read_tensors

    shards = sorted(model_dir.glob("*.safetensors"))
    if shards:
        tensors = {}
        for shard in shards:
            try:
                tensors.update(read_tensors(shard))
            except (OSError, SafetensorError) as e:
                raise TfcError(f"{shard}: cannot read safetensors weights: {e}") from None
            except NarrowFloats as e:
                raise TfcError(f"{shard}: 8-bit float tensors are not read (NumPy has no such type): {e}") from None
        return tensors
    binary = model_dir / "pytorch_model.bin"
    if not binary.exists():
        raise TfcError(f"{model_dir}: no *.safetensors or pytorch_model.bin weights found")
    try:
        import torch
    except ImportError:
        raise TfcError(f"{binary}: reading .bin checkpoints needs torch: pip install 'tfcompiler[hf]'") from None
    state = torch.load(binary, map_location="cpu", weights_only=True)
    return {k: v.float().numpy() for k, v in state.items()}


def activation_kind(name: str) -> str:
    if name not in ACTIVATIONS:
        raise TfcError(f"activation {name!r} is not supported; expected one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def norm_weights(w: Checkpoint, target: str, source: str) -> dict:
    return {f"{target}.weight": w(f"{source}.weight"), f"{target}.bias": w(f"{source}.bias")}


def linear_weights(w: Checkpoint, target: str, source: str, transpose: bool) -> dict:
    weight = w(f"{source}.weight")
    return {f"{target}.weight": weight.T if transpose else weight, f"{target}.bias": w(f"{source}.bias")}


def output_and_ffn(w: Checkpoint, ours: str, transpose: bool, output: str, attention_norm: str, up: str, down: str,
                    ffn_norm: str) -> dict:
    """A layer's attention output projection and norm, and its FFN's two linear maps and norm."""
    return {**linear_weights(w, f"{ours}.attention.output", output, transpose),
            **norm_weights(w, f"{ours}.attention_norm", attention_norm),
            **linear_weights(w, f"{ours}.ffn.up", up, transpose),
            **linear_weights(w, f"{ours}.ffn.down", down, transpose),
            **norm_weights(w, f"{ours}.ffn_norm", ffn_norm)}


def ffn_section(config: dict, activation: str) -> dict:
    """The FFN section: its activation, and Hugging Face's `chunk_size_feed_forward` as `chunk` (how
    many tokens the FFN takes at a time; the same numbers, less memory)."""
    return {"activation": activation, "chunk": config.get("chunk_size_feed_forward") or 0}
