"""Parity with PyTorch Geometric's TransformerConv (Shi et al. 2021), the public sparse graph attention: each
node attends the sources of its in-edges, softmax((W_q x_i)·(W_k x_j)/√d) over j ∈ N(i), heads concatenated.
Wrapped in Dwivedi & Bresson's Graph Transformer layer (the conv without its root weight, an output projection,
residual and LayerNorm, a ReLU FFN, residual and LayerNorm), after the node features' and Laplacian eigenvectors'
linear embeddings, with a mean over each graph's nodes and a linear readout: against a `graph` encoder with the
same weights. PyG reads a batch as one disjoint graph of all the real nodes; tfcompiler reads it padded to the
largest graph (`attention_mask`), with the self loops PyG is given added by `self_loops`. With edge types, PyG's
`edge_dim` reads them one-hot (its lin_edge's columns are the types' vectors, added to keys and values): the
input's `edge_encoding: keys_values`; the self loops PyG adds are of type 0, as the diagonal of `edge_types`.

What PyG's conv has that `graph` does not express: edge features other than one-hot types (a linear map of real
vectors per edge) and `root_weight` / `beta` (a learned skip instead of the residual). lucidrains'
graph-transformer-pytorch does not compare: its attention is over every node (its adjacency is an edge embedding
added to keys and values, not a mask) and its gated residuals are not a block's residual."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from safetensors.numpy import save_file

from tfcompiler import compile_spec, parse_spec

torch = pytest.importorskip("torch")
geometric = pytest.importorskip("torch_geometric")
from torch_geometric.nn import TransformerConv, global_mean_pool  # noqa: E402
from torch_geometric.utils import add_self_loops  # noqa: E402

D, HEADS, FFN, FEATURES, K, LAYERS, LABELS, TYPES = 16, 4, 32, 5, 3, 2, 3, 4
SIZES = (5, 7)  # nodes of each graph of the batch: the first one padded by two

SPEC = f"""
tfc: 1
name: graph-parity
topology: encoder
model: {{width: {D}, heads: {HEADS}, ffn_width: {FFN}, vocab_size: 1, max_length: 16}}
input: {{kind: graph, features: {FEATURES}, laplacian: {K}}}
positional: none
block: {{placement: post, ffn: {{activation: relu}}}}
encoder: {{layers: {LAYERS}}}
head: {{kind: classifier, labels: {LABELS}, pooling: mean, dense: false}}
"""


class GraphTransformerLayer(torch.nn.Module):
    """Dwivedi & Bresson's layer with PyG's TransformerConv as its attention over neighbours."""

    def __init__(self, edge_dim):
        super().__init__()
        self.conv = TransformerConv(D, D // HEADS, heads=HEADS, root_weight=False, edge_dim=edge_dim)
        self.output = torch.nn.Linear(D, D)
        self.attention_norm = torch.nn.LayerNorm(D)
        self.up, self.down = torch.nn.Linear(D, FFN), torch.nn.Linear(FFN, D)
        self.ffn_norm = torch.nn.LayerNorm(D)

    def forward(self, x, edge_index, edge_attr):
        h = self.attention_norm(x + self.output(self.conv(x, edge_index, edge_attr)))
        return self.ffn_norm(h + self.down(torch.relu(self.up(h))))


class GraphTransformer(torch.nn.Module):
    def __init__(self, edge_dim=None):
        super().__init__()
        self.nodes, self.laplacian = torch.nn.Linear(FEATURES, D), torch.nn.Linear(K, D)
        self.layers = torch.nn.ModuleList(GraphTransformerLayer(edge_dim) for _ in range(LAYERS))
        self.classifier = torch.nn.Linear(D, LABELS)

    def forward(self, features, eigenvectors, edge_index, edge_attr, batch):
        x = self.nodes(features) + self.laplacian(eigenvectors)
        for layer in self.layers:
            x = layer(x, edge_index, edge_attr)
        return x, self.classifier(global_mean_pool(x, batch))


def canonical_weights(module) -> dict[str, np.ndarray]:
    """The module's parameters under tfcompiler's names, matrices (in, out)."""
    p = {k: v.detach().numpy() for k, v in module.state_dict().items()}
    ours = {"nodes": "embeddings.nodes", "laplacian": "embeddings.laplacian", "classifier": "classifier"}
    for i in range(LAYERS):
        for theirs, name in (("conv.lin_query", "attention.query"), ("conv.lin_key", "attention.key"),
                             ("conv.lin_value", "attention.value"), ("output", "attention.output"),
                             ("attention_norm", "attention_norm"), ("up", "ffn.up"), ("down", "ffn.down"),
                             ("ffn_norm", "ffn_norm")):
            ours[f"layers.{i}.{theirs}"] = f"encoder.layers.{i}.{name}"
    weights = {f"encoder.layers.{i}.attention.edges.weight": p[f"layers.{i}.conv.lin_edge.weight"].T
               for i in range(LAYERS) if f"layers.{i}.conv.lin_edge.weight" in p}
    for theirs, name in ours.items():
        weight = p[f"{theirs}.weight"]
        weights[f"{name}.weight"] = weight.T if weight.ndim == 2 else weight
        weights[f"{name}.bias"] = p[f"{theirs}.bias"]
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}


def random_graphs(rng):
    """Padded inputs (B, N, ...) of random undirected graphs without self loops, each node with a neighbour."""
    n = max(SIZES)
    adjacency = np.zeros((len(SIZES), n, n), np.int64)
    mask = np.zeros((len(SIZES), n), np.int64)
    for b, size in enumerate(SIZES):
        edges = np.triu(rng.random((size, size)) < 0.35, 1)
        edges[np.arange(size - 1), np.arange(1, size)] = True  # a path through every node
        adjacency[b, :size, :size] = edges | edges.T
        mask[b, :size] = 1
    types = rng.integers(0, TYPES, (len(SIZES), n, n))
    types[:, np.arange(n), np.arange(n)] = 0  # the self loops' type
    return {"node_features": rng.standard_normal((len(SIZES), n, FEATURES)).astype(np.float32),
            "laplacian_eigenvectors": rng.standard_normal((len(SIZES), n, K)).astype(np.float32),
            "adjacency": adjacency, "attention_mask": mask, "edge_types": types}


def as_pyg(feeds):
    """The real nodes of the padded batch as one disjoint graph: features, eigenvectors, edge_index (source j ->
    target i where node i attends node j, self loops added), the edges' one-hot types and each node's graph."""
    real = feeds["attention_mask"].astype(bool)
    offsets = np.concatenate([[0], np.cumsum(SIZES)[:-1]])
    pairs = np.argwhere(feeds["adjacency"])  # (b, i, j)
    edges = np.stack([pairs[:, 2], pairs[:, 1]]) + offsets[pairs[:, 0]]
    one_hot = np.eye(TYPES, dtype=np.float32)
    edge_index, edge_attr = add_self_loops(torch.from_numpy(edges), torch.from_numpy(one_hot[feeds["edge_types"][
        pairs[:, 0], pairs[:, 1], pairs[:, 2]]]), fill_value=torch.from_numpy(one_hot[0]), num_nodes=int(real.sum()))
    batch = torch.from_numpy(np.repeat(np.arange(len(SIZES)), SIZES))
    return (torch.from_numpy(feeds["node_features"][real]), torch.from_numpy(feeds["laplacian_eigenvectors"][real]),
            edge_index, edge_attr, batch)


@pytest.mark.parametrize("edges", [False, True], ids=["adjacency", "edge_keys_and_values"])
@pytest.mark.parametrize("head", ["classifier", "none"])
def test_graph_transformer_matches_pyg_transformer_conv(tmp_path, head, edges):
    torch.manual_seed(0)
    module = GraphTransformer(TYPES if edges else None).eval()
    weights = canonical_weights(module)
    spec = SPEC.replace(f"laplacian: {K}", f"laplacian: {K}, edge_types: {TYPES}, edge_encoding: keys_values") \
        if edges else SPEC
    if head == "none":
        spec = spec.replace(f"{{kind: classifier, labels: {LABELS}, pooling: mean, dense: false}}", "{kind: none}")
        weights = {k: v for k, v in weights.items() if not k.startswith("classifier")}
    save_file(weights, str(tmp_path / "w.safetensors"))
    session = ort.InferenceSession(compile_spec(parse_spec(spec), weights=str(tmp_path / "w.safetensors"))
                                   .model.serialize())
    feeds = random_graphs(np.random.default_rng(0))
    with torch.no_grad():
        features, eigenvectors, edge_index, edge_attr, batch = as_pyg(feeds)
        nodes, logits = (t.numpy() for t in module(features, eigenvectors, edge_index, edge_attr if edges else None,
                                                   batch))
    got = dict(zip([o.name for o in session.get_outputs()],
                   session.run(None, {i.name: feeds[i.name] for i in session.get_inputs()})))
    if head == "none":  # the real nodes, in order
        np.testing.assert_allclose(got["last_hidden_state"][feeds["attention_mask"].astype(bool)], nodes, atol=1e-4,
                                   rtol=0)
    else:
        np.testing.assert_allclose(got["logits"], logits, atol=1e-4, rtol=0)
