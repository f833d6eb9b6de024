"""What the linearised attention kinds share: projections, padded keys removed from the sums (their
features zeroed), the canonical `linear_attention` op, and the output projection. Each kind supplies
its feature map φ; positions can come only from the embeddings (there are no scores to bias)."""
from __future__ import annotations

from ...language.kinds import POSITIONS
from .multi_head import output_projection, project


def no_score_positions(kind: str, spec):
    """problems(): a positional scheme that acts on scores has nothing to act on here."""
    scheme = POSITIONS.builder(spec.positional)
    if scheme.attend is not None or scheme.rotate is not None:
        yield (f"{kind} attention has no scores for positional '{type(spec.positional).KIND}' to act on; "
               "use an embedding scheme (learned, sinusoidal, ...)")


def attend_linear(ctx, spec, site, feature_map, eps: float, gate=None):
    """feature_map(ctx, x (B,H,S,Dh), is_query) -> φ(x) (B,H,S,F); ``gate``: logits (B,H,S) of a
    gated recurrence (causal); returns (B, S, D)."""
    query, key, value = project(ctx, spec, site)
    phi_q, phi_k = feature_map(ctx, query, True), feature_map(ctx, key, False)
    if site.mask is not None:  # a padded key adds nothing to Σ φ(k) vᵀ or Σ φ(k)
        keep = ctx.op("cast", ctx.op("unsqueeze", site.mask, axes=(1, 3)), dtype="float32")  # (B,1,T,1)
        phi_k = ctx.op("mul", phi_k, keep, label="DropPadding")
    context = ctx.op("linear_attention", phi_q, phi_k, value, *([gate] if gate is not None else []),
                     causal=site.causal, eps=float(eps), label="LinearAttention")
    return output_projection(ctx, spec, context)
