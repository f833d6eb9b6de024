"""Input layer `graph` (Dwivedi & Bresson 2020): node i's state h_i = F_i W_nodes + b_nodes (float features)
plus E_types[t_i] (type ids), each where the spec reads it, times √d or a given scale, plus λ_i W_lap + b_lap
(the Laplacian eigenvectors, k per node). Every self-attention score s_hij gains the pair terms: -inf (fp32's
lowest) where A_ij = 0 and i ≠ j with self loops (node i attends only its neighbours j, A_ij = 1, and itself),
and the edge type's learned bias per head B[e_ij, h] (Graphormer's b_φ(i,j))."""
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

    def pair_bias(self, ref, options, scope: str):
        """(B, H|1, N, N) added to every self-attention's scores, or None."""
        bias = None
        if options.adjacency:
            allowed = ref.feeds["adjacency"] != 0
            if options.self_loops:
                allowed = allowed | np.eye(allowed.shape[-1], dtype=bool)
            bias = np.where(allowed, 0.0, NEG)[:, None]
        if options.edge_types:
            edges = ref.w[f"{scope}.edge_bias.weight"][ref.feeds["edge_types"]].transpose(0, 3, 1, 2)
            bias = edges if bias is None else bias + edges
        return bias
