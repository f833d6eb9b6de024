"""Input layer `graph`: the nodes of a graph as the tokens of an encoder (the Graph Transformer of Dwivedi &
Bresson 2020, "A Generalization of Transformer Networks to Graphs"), its edges in the attention.

Each node enters as its float features ``node_features`` (B, N, F) times ``nodes.weight`` (F, width) plus
``nodes.bias``, and/or its type id ``node_types`` (B, N) looked up in ``node_types.weight`` (an atom's type in
ZINC). Dwivedi & Bresson's Laplacian positions enter as ``laplacian_eigenvectors`` (B, N, k), the k eigenvectors
of the graph's Laplacian with the smallest non-trivial eigenvalues, given by the caller: an eigenvector's sign is
arbitrary (the paper flips it at random while training), so it is fixed outside the graph, as is the
eigendecomposition; they are projected by ``laplacian.weight`` (k, width) plus ``laplacian.bias`` and added.

The edges reach every self-attention of the stack as terms over its query–key pairs (StackInput.pair_terms):
``adjacency`` (B, N, N), 1 where node i attends node j (an edge j -> i; a symmetric matrix for an undirected
graph), 0 elsewhere, hides the other nodes (the paper's sparse attention over each node's neighbours; with
`self_loops` a node attends itself too). ``edge_types`` (B, N, N) enter as `edge_encoding` says: a learned bias per
head ``edge_bias.weight`` (types, heads) shared by every layer (Graphormer's edge and spatial encodings, Ying et
al. 2021, when the types are edge labels or shortest-path distances), or a vector per type and head in each
layer, ``attention.edges.weight`` (types, heads·head_width), added to the keys and to the values a query reads
from that pair: e_ij = q_i·(k_j + r_ij)/√d, z_i = Σ_j α_ij (v_j + r_ij) (PyTorch Geometric's TransformerConv with
one-hot edge attributes, Shi et al. 2021). The per-pair vectors are never formed: q·r per type (B, H, N, types)
is read out by the one-hot types, and the probabilities summed per type before the table.
``attention_mask`` (B, N) marks the real nodes of a batch of graphs padded to one size.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import ClassVar

import numpy as np

from ...ir.types import BATCH, SEQUENCE
from ...language.kinds import INPUTS, InputKind
from ...language.rules import At
from ...language.schema import option
from ...language.shrink_rules import input_features
from .base import StackInput, padding_mask, scaled

PAIRS = (BATCH, SEQUENCE, SEQUENCE)  # (B, N, N): query node, key node


@dataclass(frozen=True)
class GraphOptions(InputKind):
    """Graph nodes (features and/or type ids) with Laplacian positions; edges as attention masks and biases."""

    PAPER = "Dwivedi & Bresson 2020 (Graph Transformer); edge biases as Graphormer, Ying et al. 2021; edge keys " \
            "and values as TransformerConv, Shi et al. 2021"
    COMPUTES = "node features `node_features` (B, N, F) times a (F, width) matrix plus a bias and/or node types " \
               "looked up, plus the projected Laplacian eigenvectors; `adjacency` (B, N, N) hides non-neighbours " \
               "in every self-attention, `edge_types` (B, N, N) add a learned bias per head (or each layer's " \
               "vectors to the pairs' keys and values)"
    LOWERING = "`MatMul`, `Gather`, `Add`; the pair terms `Equal`/`Where` and `Gather`/`Transpose` once per stack; " \
               "edge keys and values: `Einsum` per layer, the probabilities summed per type"
    no_cache_because: ClassVar[str] = "a graph is read whole, not a node at a time"

    features: int = option(0, doc="F, the length of each node's feature vector `node_features` (B, N, F), "
                           "embedded by `nodes.weight` (F, width) and `nodes.bias`; 0: no node features.",
                           minimum=0, shrink=input_features)
    node_types: int = option(0, doc="The node-type vocabulary: `node_types` (B, N) ids looked up in "
                             "`node_types.weight` (added to the features' embedding where both are read); 0: none.",
                             minimum=0)
    adjacency: bool = option(True, doc="Read `adjacency` (B, N, N): node i attends node j only where it is 1 "
                             "(Dwivedi & Bresson's sparse attention); false: every node attends every node "
                             "(their full-graph variant).")
    self_loops: bool = option(True, doc="With `adjacency`, every node also attends itself (an isolated node "
                              "attends something); false: only where the adjacency's diagonal is 1.")
    edge_types: int = option(0, doc="The edge-type vocabulary: `edge_types` (B, N, N) ids, entering every "
                             "self-attention as `edge_encoding` says; 0: none.", minimum=0)
    edge_encoding: str = option("bias", doc="How edge types enter attention: a learned bias per head "
                                "`edge_bias.weight` (types, heads) added to every layer's scores (Graphormer), or "
                                "each layer's vectors `attention.edges.weight` (types, heads·head_width) added to "
                                "the keys and values of each pair (PyTorch Geometric's TransformerConv with "
                                "edge_dim).", choices=("bias", "keys_values"))
    laplacian: int = option(0, doc="k, the Laplacian eigenvectors per node `laplacian_eigenvectors` (B, N, k), "
                            "projected by `laplacian.weight` (k, width) and `laplacian.bias` and added; 0: none. "
                            "Their signs are fixed by the caller.", minimum=0)

    def parameters(self, spec) -> int:
        width = spec.model.width
        return (self.features + 1) * width * bool(self.features) + self.node_types * width \
            + (self.laplacian + 1) * width * bool(self.laplacian) + self.edge_types * spec.model.heads \
            * (1 if self.edge_encoding == "bias" else spec.model.dh * sum(len(b) for _, _, b in spec.stacks()))

    def problems(self, spec, where):
        if not self.features and not self.node_types:
            yield At("features", "a graph's nodes need features (features: F) or type ids (node_types: V)")
        if self.edge_encoding != "bias" and not self.edge_types:
            yield At("edge_encoding", f"edge_encoding '{self.edge_encoding}' encodes edge types: set edge_types "
                     "(their count)")
        if not self.adjacency and not self.self_loops:
            yield At("self_loops", "without an adjacency every node attends every node, itself included: "
                     "self_loops: false needs adjacency: true")
        if spec.topology != "encoder":
            yield f"input 'graph' reads a graph into an encoder: topology 'encoder', got '{spec.topology}'"
            return
        if type(spec.positional).KIND != "none":  # a node's index says nothing about the graph
            yield At("laplacian", "a graph's nodes have no order: positions come from its Laplacian "
                     f"eigenvectors (laplacian: k); set positional: none (got '{type(spec.positional).KIND}')",
                     located="positional")
        for name, stack, blocks in spec.stacks():
            if stack.memory or stack.memory_slots or stack.resample is not None:
                yield At("adjacency", f"the graph's pair terms cover its N nodes: the {name} stack cannot carry "
                         "memories, memory slots or resample its nodes", located=name)
            for i, block in enumerate(blocks):
                if type(block.attention).KIND != "multi_head":  # the kind that adds the pair terms to its scores
                    yield At("adjacency", f"{name} layer {i}: the graph's adjacency and edge biases enter "
                             f"multi_head attention; attention kind '{type(block.attention).KIND}' does not read "
                             "them", located=setting(spec, name, stack, i, "attention"))
                if block.positional is not None and type(block.positional).KIND != "none":
                    yield At("laplacian", f"{name} layer {i}: a graph's nodes have no order: the block's own "
                             f"positional '{type(block.positional).KIND}' must be none",
                             located=setting(spec, name, stack, i, "positional"))


def setting(spec, stack_name: str, stack, layer: int, key: str) -> str:
    """The spec path that sets layer `layer`'s block `key`: the last override of that layer that sets it, else the
    stack's block, else the top-level block."""
    sets = lambda block: block is not None and any(k.value == key for k, _ in block.value)  # noqa: E731
    for n, override in reversed(list(enumerate(stack.overrides))):
        if override.layers[0] <= layer <= override.layers[-1] and sets(override.block):
            return f"{stack_name}.overrides.{n}.block.{key}"
    for path, block in ((f"{stack_name}.block", stack.block), ("block", spec.block)):
        if sets(block):
            return f"{path}.{key}"
    return stack_name


def build_graph_input(ctx, options: GraphOptions, spec, stack_name: str) -> StackInput:
    names = StackInput.input_names(spec, stack_name)
    width, nodes = spec.model.width, names.shape
    hidden = ids = None
    if options.features:
        ids = ctx.input("node_features", "float32", nodes + (options.features,), role="vectors")
        hidden = ctx.linear(ids, width, "nodes")
    if options.node_types:
        types = ctx.input("node_types", "int64", nodes, role="node_types", range=options.node_types)
        table = ctx.param("node_types.weight", (options.node_types, width), "embedding")
        looked_up = ctx.op("gather", table, types, label="NodeTypeEmbedding")
        hidden = looked_up if hidden is None else ctx.op("add", hidden, looked_up)
        ids = types if ids is None else ids
    hidden = scaled(ctx, spec, hidden)
    if options.laplacian:
        vectors = ctx.input("laplacian_eigenvectors", "float32", nodes + (options.laplacian,),
                            role="laplacian_eigenvectors")
        hidden = ctx.op("add", hidden, ctx.linear(vectors, width, "laplacian"), label="LaplacianPositions")
    terms = [partial(hide, adjacency_mask(ctx, options, ids))] if options.adjacency else []
    if options.edge_types:
        types = ctx.input("edge_types", "int64", PAIRS, role="edge_types", range=options.edge_types)
        if options.edge_encoding == "bias":
            terms.append(partial(add_bias, edge_bias(ctx, options, spec, types)))
        else:
            terms.append(partial(edge_keys_and_values, one_hot(ctx, types, options.edge_types)))
    return StackInput(hidden=hidden, mask=padding_mask(ctx, names), ids=ids, pair_terms=tuple(terms))


def hide(mask, ctx, spec, parts):
    """A pair term: the adjacency hides keys as the padding does (a mask, kept out of residual scores)."""
    parts.mask_biases.append(mask)


def add_bias(bias, ctx, spec, parts):
    """A pair term: the edge types' bias, computed once, in every layer's scores."""
    parts.add_bias(bias)


def adjacency_mask(ctx, options: GraphOptions, ids):
    """(B, 1, N, N): 0 where node i attends node j (an edge, or i = j with self loops), masked elsewhere."""
    adjacency = ctx.input("adjacency", "int64", PAIRS, role="adjacency")
    with ctx.at("adjacency"):
        if options.self_loops:
            node = ctx.op("positions", ids, axis=1)  # (1, N)
            itself = ctx.op("equal", ctx.op("unsqueeze", node, axes=(2,)), ctx.op("unsqueeze", node, axes=(1,)))
            adjacency = ctx.op("where", itself, ctx.constant(1, dtype="int64"), adjacency, label="SelfLoops")
        bias = ctx.op("where", ctx.op("equal", adjacency, ctx.constant(0, dtype="int64")), ctx.op("mask_value"),
                      ctx.constant(0.0), label="AdjacencyMask")
        return ctx.op("unsqueeze", bias, axes=(1,))


def edge_bias(ctx, options: GraphOptions, spec, types):
    """(B, H, N, N): each pair's edge type's learned bias, per head."""
    table = ctx.param("edge_bias.weight", (options.edge_types, spec.model.heads), "embedding")
    per_pair = ctx.op("gather", table, types, label="EdgeBias")  # (B, N, N, H)
    return ctx.op("transpose", per_pair, perm=(0, 3, 1, 2))


def one_hot(ctx, types, count: int):
    """(B, N, N) ids -> (B, N, N, count) float32, 1 at each pair's type."""
    with ctx.at("edge_types"):
        hit = ctx.op("equal", ctx.op("unsqueeze", types, axes=(3,)), ctx.constant(np.arange(count), dtype="int64"))
        return ctx.op("cast", hit, dtype="float32", label="OneHotEdgeTypes")


def edge_keys_and_values(types_BNNK, ctx, spec, parts):
    """The layer's vectors r (types, H, Dh) added to each pair's key (q·r scaled, a bias) and value (Σ_j α_ij r)."""
    count, heads, dh = ctx.type_of(types_BNNK).shape[-1], spec.model.heads, ctx.type_of(parts.query).shape[-1]
    with ctx.at("edges"):
        table = ctx.op("reshape", ctx.param("weight", (count, heads * dh), "embedding"), shape=(count, heads, dh))
        per_type = ctx.op("einsum", parts.query, table, equation="bhsd,khd->bhsk")  # q·r for every type
        keys = ctx.op("einsum", per_type, types_BNNK, equation="bhsk,bstk->bhst", label="EdgeKeyTerm")
        parts.add_bias(ctx.op("mul", keys, ctx.constant(np.float32(parts.scale))))

    def value_term(probs):
        with ctx.at("edges"):
            per_type = ctx.op("einsum", probs, types_BNNK, equation="bhst,bstk->bhsk")  # α summed per type
            return ctx.op("einsum", per_type, table, equation="bhsk,khd->bhsd", label="EdgeValueTerm")
    parts.value_terms.append(value_term)


INPUTS.register("graph", GraphOptions, build_graph_input, examples={
    "graph_transformer_sparse": """
topology: encoder
input: {kind: graph, features: 6, laplacian: 3}
positional: none
block: {placement: post, ffn: {activation: relu}}
encoder: {layers: 2}
head: {kind: token_classifier, labels: 4}
""",
    "graph_edge_types_readout": """
topology: encoder
input: {kind: graph, node_types: 9, edge_types: 4, laplacian: 2, self_loops: false}
positional: none
block: {placement: pre}
encoder: {layers: 2}
head: {kind: classifier, labels: 3, pooling: mean, dense: false}
""",
    "graph_edge_keys_and_values": """
topology: encoder
model: {kv_heads: 2}
input: {kind: graph, features: 4, edge_types: 3, edge_encoding: keys_values, laplacian: 2}
positional: none
block: {placement: post}
encoder: {layers: 2}
head: {kind: token_classifier, labels: 2}
""",
    "graph_full_attention_with_edge_bias": """
topology: encoder
input: {kind: graph, features: 5, node_types: 7, adjacency: false, edge_types: 3}
positional: none
encoder: {layers: 1}
head: {kind: none}
""",
})
