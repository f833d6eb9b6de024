"""Block-local attention whose neighbouring blocks wrap around the sequence's ends, as Hugging Face's
Reformer takes them (`_look_adjacent`), as one additive bias.

wrapped_blocks_bias(q (B,H,S,Dh), k (B,Hkv,T,Dh)) attrs block, before, after, multiple -> (S, T) float32.

The T keys are cut into n = ⌈T / multiple⌉ · multiple / block blocks (multiple, a multiple of block,
defaults to it; Hugging Face pads its input to a multiple of its layers' chunk lengths): the blocks
past the keys and the last one's missing keys do not exist, as padding would be hidden. Query i
(aligned to the end of the keys, i' = i + T - S) of block a sees the blocks a + k mod n for every
shift k from -before to after; a shift of n blocks or more is no shift (Hugging Face rolls blocks
with slices, which stop at the ends). A block reached by several shifts is
seen as often (Hugging Face concatenates the rolled copies), which is the bias log(count); unseen
blocks get the mask. With before + after < n every block is seen once or not at all.
"""
from __future__ import annotations

import numpy as np

from ..types import TensorType
from .nn import MASKED
from .registry import OpTypeError, register


def block_counts(n: int, before: int, after: int) -> np.ndarray:
    """(n, n) int: how often query block a sees key block b."""
    a = np.arange(n)[:, None]
    counts = np.zeros((n, n), np.int64)
    for k in range(-before, after + 1):
        counts += (a + (k if abs(k) < n else 0)) % n == np.arange(n)[None, :]
    return counts


def _bias(attrs, q, k):
    s, t, block = q.shape[2], k.shape[2], attrs["block"]
    multiple = attrs.get("multiple", block)
    counts = block_counts(-(-t // multiple) * multiple // block, attrs["before"], attrs["after"])
    seen = counts[np.arange(t - s, t)[:, None] // block, np.arange(t)[None, :] // block]
    with np.errstate(divide="ignore"):
        return [np.where(seen > 0, np.log(np.maximum(seen, 1)), MASKED).astype(np.float32)]


def _infer(attrs, types):
    q, k = types
    block = attrs["block"]
    if block < 1 or attrs["before"] < 0 or attrs["after"] < 0 or attrs.get("multiple", block) % block:
        raise OpTypeError(f"wrapped blocks need block >= 1 and before, after >= 0, got {attrs}")
    return [TensorType("float32", (q.shape[2], k.shape[2]))]


register("wrapped_blocks_bias", (2, 2), _infer, _bias)
