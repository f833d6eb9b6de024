"""What a positional scheme contributes: a change to the embeddings (absolute schemes), a change
to each self-attention's new queries and keys (rotary: made before they join a KV cache) or to its
scores over all the keys (an additive bias such as ALiBi), or both."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class PositionalScheme:
    # (ctx, options, spec, hidden (B, S, D), positions (1, S), mask (B, S) or None) -> hidden
    embed: Callable | None = None
    # (ctx, options, spec, parts: AttentionParts, site: Site) -> parts, for self-attention, before
    # the keys join the cache (rotate) or after it (attend)
    rotate: Callable | None = None
    attend: Callable | None = None
