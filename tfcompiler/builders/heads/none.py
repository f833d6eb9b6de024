"""Head `none`: the last stack's states as they are, `last_hidden_state` (an encoder-decoder's also gives
its encoder's, `encoder_last_hidden_state`)."""
from __future__ import annotations

from dataclasses import dataclass

from ...language.kinds import HEADS, HeadKind


@dataclass(frozen=True, kw_only=True)
class NoHead(HeadKind):
    """The hidden states only."""

    PAPER = "—"
    COMPUTES = "`last_hidden_state` (B, S, D): the last stack's states"
    LOWERING = "nothing"
    no_cache_because = ""  # a step's states, for a caller's own head


def build_no_head(ctx, options: NoHead, spec, hidden, mask) -> dict:
    return {"last_hidden_state": hidden}


HEADS.register("none", NoHead, build_no_head, examples={
    "states_only_encoder": """
topology: encoder
block: {placement: post}
encoder: {layers: 1}
head: {kind: none}
""",
})
