"""Output heads (the `head` registry): each kind registers itself from its own file here; base.py holds the
pooling they share. ``build_head`` builds the spec's head over the last stack's states."""
from ...language.kinds import HEADS
from ...submodules import import_submodules

import_submodules(__name__, __path__)


def build_head(ctx, spec, hidden, mask) -> dict:
    """The graph outputs by their Hugging Face names; `mask` (B, S) marks hidden's real rows (None: all are)."""
    return HEADS.builder(spec.head)(ctx, spec.head, spec, hidden, mask)
