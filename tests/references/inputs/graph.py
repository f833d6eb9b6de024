"""Input layer `graph` (Dwivedi & Bresson 2020): node i's state h_i = F_i W_nodes + b_nodes (float features)
plus E_types[t_i] (type ids), each where the spec reads it, times √d or a given scale, plus λ_i W_lap + b_lap
(the Laplacian eigenvectors, k per node). Every self-attention score s_hij gains the pair terms: -inf (fp32's
lowest) where A_ij = 0 and i ≠ j with self loops (node i attends only its neighbours j, A_ij = 1, and itself),
and the edge type's learned bias per head B[e_ij, h] (Graphormer's b_φ(i,j)); or, with edge keys and values,
the layer's vector r = R[e_ij, h] added to key j and to value j as query i reads them (TransformerConv):
s_hij = scale · q_hi·(k_hj + r), z_hi = Σ_j α_hij (v_hj + r)."""
from __future__ import annotations

import numpy as np

from ..formulas import NEG
from ..registry import INPUTS
from .tokens import scaled


@INPUTS.register("graph")
class Graph:
    def source(self, feeds, prefix: str):
        """The stack's input: the node features (B, N, F), else the node types (B, N)."""
        return feeds["node_features"] if "node_features" in feeds else feeds["node_types"]

    def embed(self, ref, options, scope: str, source, token_types):
        x = 0.0
        if options.features:
            x = ref.feeds["node_features"].astype("float64") @ ref.w[f"{scope}.nodes.weight"] \
                + ref.w[f"{scope}.nodes.bias"]
        if options.node_types:
            x = x + ref.w[f"{scope}.node_types.weight"][ref.feeds["node_types"]]
        x = scaled(ref.spec, x)
        if options.laplacian:
            x = x + ref.feeds["laplacian_eigenvectors"].astype("float64") @ ref.w[f"{scope}.laplacian.weight"] \
                + ref.w[f"{scope}.laplacian.bias"]
        return x

    def pair_terms(self, ref, options, scope: str) -> list:
        """What every self-attention adds over its query-key pairs: term(ref, logits, site) updates its Logits."""
        terms = []
        if options.adjacency:
            allowed = ref.feeds["adjacency"] != 0
            if options.self_loops:
                allowed = allowed | np.eye(allowed.shape[-1], dtype=bool)
            terms.append(lambda ref, logits, site: add_bias(logits, np.where(allowed, 0.0, NEG)[:, None]))
        if options.edge_types and options.edge_encoding == "bias":
            edges = ref.w[f"{scope}.edge_bias.weight"][ref.feeds["edge_types"]].transpose(0, 3, 1, 2)
            terms.append(lambda ref, logits, site: add_bias(logits, edges))
        elif options.edge_types:
            terms.append(lambda ref, logits, site: edge_keys_and_values(ref, logits, site, ref.feeds["edge_types"]))
        return terms


def add_bias(logits, bias):
    logits.bias = logits.bias + bias


def edge_keys_and_values(ref, logits, site, types):
    """The layer's vector per pair, r (B, S, T, H, d), in the keys (scaled, as q·k) and in the values."""
    b, h, s, d = logits.q.shape
    r = ref.w[f"{site.name}.edges.weight"].reshape(-1, h, d)[types]
    logits.bias = logits.bias + logits.scale * np.einsum("bhsd,bsthd->bhst", logits.q, r)
    before = logits.value_term
    logits.value_term = lambda probs: np.einsum("bhst,bsthd->bhsd", probs, r) + (before(probs) if before else 0.0)
