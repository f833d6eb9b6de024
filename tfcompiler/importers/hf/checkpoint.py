"""The pieces every Hugging Face importer shares: the checkpoint's tensors (looked up with or without a
task model's prefix, the missing ones remembered), activations, and the weights of norms, linear maps
and the common attention-output / FFN layout under tfcompiler's canonical names."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import TfcError

PREFIXES = ("", "bert.", "transformer.", "model.", "longformer.", "reformer.")
ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
                "relu": "relu", "silu": "silu", "swish": "silu"}


class Checkpoint:
    """A checkpoint's tensors, looked up with or without the task model's prefix; every tensor that
    is asked for and missing is remembered, so one error can list them all."""

    def __init__(self, tensors: dict[str, np.ndarray], source: str):
        self.tensors, self.source, self.missing = tensors, source, []

    def __call__(self, key: str) -> np.ndarray:
        for prefix in PREFIXES:
            if prefix + key in self.tensors:
                return self.tensors[prefix + key].astype(np.float32)
        self.missing.append(key)
        return np.zeros((0,), np.float32)

    def has(self, key: str) -> bool:
        return any(prefix + key in self.tensors for prefix in PREFIXES)


def load_tensors(model_dir: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    shards = sorted(model_dir.glob("*.safetensors"))
    if shards:
        tensors = {}
        for shard in shards:
            tensors.update(load_file(str(shard)))
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
