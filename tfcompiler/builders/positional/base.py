"""What a positional scheme contributes: a change to the embeddings (absolute schemes), a change
to each self-attention's queries and keys (rotary) or scores (an additive bias such as ALiBi), or
both."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class PositionalScheme:
    # (ctx, options, spec, hidden (B, S, D), positions (1, S), mask (B, S) or None) -> hidden
    embed: Callable | None = None
    # (ctx, options, spec, parts: AttentionParts, site: Site) -> parts, for self-attention
    attend: Callable | None = None
