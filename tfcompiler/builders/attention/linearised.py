"""What the linearised attention kinds share: projections, padded keys removed from the sums (their
features zeroed), the canonical `linear_attention` op, and the output projection. Each kind supplies
its feature map φ; positions can come only from the embeddings (there are no scores to bias).

In a decoder compiled with a cache the running sums are the layer's state: Σ φ(k) vᵀ as
`past_state.{i}.kv_sum` (B, H, F, Dv) and Σ φ(k) as `past_state.{i}.k_sum` (B, H, F), per query head
(RFA's gate decays them per query head), zeros before the first call; the sums after the call are
`present_state.{i}.*`. A step then costs O(1) in the length.
"""
from __future__ import annotations

from ...language.kinds import POSITIONS
from .multi_head import output_projection, project

SUMS = ("kv_sum", "k_sum")


def no_score_positions(kind: str, spec):
    """problems(): a positional scheme that acts on scores has nothing to act on here."""
    scheme = POSITIONS.builder(spec.positional)
    if scheme.attend is not None or scheme.rotate is not None:
        yield (f"{kind} attention has no scores for positional '{type(spec.positional).KIND}' to act on; "
               "use an embedding scheme (learned, sinusoidal, ...)")


def past_states(ctx, site, shapes: dict) -> list:
    """A cached layer's past states {name: shape without the batch} as inputs, in order; [] without a cache."""
    return [site.cache.state(ctx, name, shape) for name, shape in shapes.items()] if site.cache else []


def present_states(site, names, values) -> None:
    """Declare a cached layer's states after this call (the op's outputs after its first)."""
    for name, value in zip(names, values):
        site.cache.update(name, value)


def attend_linear(ctx, spec, site, feature_map, eps: float, gate=None):
    """feature_map(ctx, x (B,H,S,Dh), is_query) -> φ(x) (B,H,S,F); ``gate``: logits (B,H,S) of a
    gated recurrence (causal); returns (B, S, D)."""
    query, key, value = project(ctx, spec, site)
    phi_q, phi_k = feature_map(ctx, query, True), feature_map(ctx, key, False)
    mask = site.own_mask(ctx)
    if mask is not None:  # a padded key adds nothing to Σ φ(k) vᵀ or Σ φ(k)
        keep = ctx.op("cast", ctx.op("unsqueeze", mask, axes=(1, 3)), dtype="float32")  # (B,1,T,1)
        phi_k = ctx.op("mul", phi_k, keep, label="DropPadding")
    _, heads, _, features = ctx.type_of(phi_q).shape
    past = past_states(ctx, site, {"kv_sum": (heads, features, spec.model.dh), "k_sum": (heads, features)})
    outputs = ctx.graph.add("linear_attention", [phi_q, phi_k, value, *([gate] if gate is not None else []), *past],
                            dict(causal=site.causal, eps=float(eps), **({"stateful": True} if past else {})),
                            origin=ctx.origin, label="LinearAttention")
    present_states(site, SUMS, outputs[1:])
    return output_projection(ctx, spec, outputs[0])
