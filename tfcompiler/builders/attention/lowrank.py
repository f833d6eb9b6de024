"""What the low-rank kinds (Linformer, Nyströmformer) share: checks that they are used where their
math holds — bidirectional self-attention with positions from the embeddings — and the padded
keys' 0/1 weights."""
from __future__ import annotations

from .linearised import no_score_positions


def bidirectional_only(kind: str, spec):
    """problems(): the sequence-axis projections mix future tokens into every key."""
    if not spec.bidirectional:
        yield f"{kind} attention is bidirectional: it needs topology 'encoder' or 'hierarchical', got '{spec.topology}'"
    yield from no_score_positions(kind, spec)


def key_weights(ctx, mask):
    """(B, 1, T, 1) float: 1 for real keys, 0 for padding (a constant 1 without a mask)."""
    if mask is None:
        return ctx.constant([[[[1.0]]]])
    return ctx.op("cast", ctx.op("unsqueeze", mask, axes=(1, 3)), dtype="float32")
