"""The `graph` input beyond its reference cases (test_components): the adjacency really restricts attention (a
node's output does not move when a node more hops away than the layers changes, and moves when a near one does),
the edge types (as biases or as keys and values) move what they should, the heads over nodes (per-node logits, a
mean readout blind to padded nodes), located compile-time errors, Model.run naming a bad adjacency, Laplacian or
edge type, and the size estimate of the input's weights."""
from __future__ import annotations

import math

import numpy as np
import pytest

from test_errors import check_fails
from tfc_runtime import Model
from tfcompiler.builders import build_graph
from tfcompiler.builders.weights import declared_params
from tfcompiler.compiler import compile_spec
from tfcompiler.language import parse_spec

SPEC = """
tfc: 1
name: graph
topology: encoder
model: {width: 16, heads: 2, ffn_width: 32, vocab_size: 1, max_length: 12}
input: {kind: graph, features: 3, edge_types: 4, laplacian: 2}
positional: none
block: {placement: pre}
encoder: {layers: 2}
head: {kind: token_classifier, labels: 5}
"""
N = 7


def model_of(tmp_path, text: str = SPEC) -> Model:
    compile_spec(parse_spec(text, "graph.yaml"), seed=3).model.save(str(tmp_path / "m.onnx"))
    return Model(str(tmp_path / "m.onnx"))


def path_graph(batch: int = 2, n: int = N, seed: int = 0) -> dict[str, np.ndarray]:
    """A path 0 - 1 - ... - n-1 (undirected, no self loops: the input adds them), random features."""
    rng = np.random.default_rng(seed)
    adjacency = np.zeros((batch, n, n), np.int64)
    adjacency[:, np.arange(n - 1), np.arange(1, n)] = adjacency[:, np.arange(1, n), np.arange(n - 1)] = 1
    return {"node_features": rng.standard_normal((batch, n, 3)).astype(np.float32),
            "laplacian_eigenvectors": rng.standard_normal((batch, n, 2)).astype(np.float32),
            "adjacency": adjacency, "edge_types": rng.integers(0, 4, (batch, n, n)),
            "attention_mask": np.ones((batch, n), np.int64)}


@pytest.mark.parametrize("encoding", ["bias", "keys_values"])
def test_adjacency_restricts_attention(tmp_path, encoding):
    """Two layers on a path: node 0 sees nodes 1 and 2 (two hops), not node 3 or beyond, nor their edge types."""
    model, feeds = model_of(tmp_path, SPEC.replace("edge_types: 4", f"edge_types: 4, edge_encoding: {encoding}")), \
        path_graph()
    before = model.run(feeds)["logits"]
    far = {**feeds, "node_features": feeds["node_features"].copy(), "edge_types": feeds["edge_types"].copy()}
    far["node_features"][:, 3:] += 5.0
    far["edge_types"][:, 3:, :] = (far["edge_types"][:, 3:, :] + 1) % 4  # pairs no path of two hops reaches
    after = model.run(far)["logits"]
    assert np.array_equal(after[:, 0], before[:, 0])
    assert np.abs(after[:, 1] - before[:, 1]).max() > 1e-5  # node 1 reads node 2, which read node 3
    near = {**feeds, "node_features": feeds["node_features"].copy()}
    near["node_features"][:, 2] += 5.0
    assert np.abs(model.run(near)["logits"][:, 0] - before[:, 0]).max() > 1e-5


def test_without_adjacency_every_node_reads_every_node(tmp_path):
    model = model_of(tmp_path, SPEC.replace("edge_types: 4", "edge_types: 4, adjacency: false"))
    feeds = path_graph()
    del feeds["adjacency"]
    before = model.run(feeds)["logits"]
    feeds["node_features"] = feeds["node_features"].copy()
    feeds["node_features"][:, -1] += 5.0
    assert np.abs(model.run(feeds)["logits"][:, 0] - before[:, 0]).max() > 1e-5


@pytest.mark.parametrize("encoding", ["bias", "keys_values"])
def test_edge_types_move_the_pairs_they_label(tmp_path, encoding):
    """The type of the edge 0 -> 1 moves node 0; the type of a pair node 0 does not attend leaves it."""
    model, feeds = model_of(tmp_path, SPEC.replace("edge_types: 4", f"edge_types: 4, edge_encoding: {encoding}")), \
        path_graph()
    before = model.run(feeds)["logits"][:, 0]
    for pair, moves in (((0, 1), True), ((0, 5), False)):
        changed = {**feeds, "edge_types": feeds["edge_types"].copy()}
        changed["edge_types"][:, pair[0], pair[1]] = (changed["edge_types"][:, pair[0], pair[1]] + 1) % 4
        moved = np.abs(model.run(changed)["logits"][:, 0] - before).max()
        assert moved > 1e-5 if moves else moved == 0.0, (pair, moved)


def test_heads_over_nodes_ignore_padded_nodes(tmp_path):
    """token_classifier: logits (B, N, labels) per node; classifier with mean pooling: one row per graph, the mean
    over its real nodes. A padded node's features and edges change neither."""
    per_node = model_of(tmp_path)
    readout_dir = tmp_path / "readout"
    readout_dir.mkdir()
    readout = model_of(readout_dir, SPEC.replace("{kind: token_classifier, labels: 5}",
                                                 "{kind: classifier, labels: 5, pooling: mean, dense: false}"))
    feeds = path_graph()
    feeds["attention_mask"][0, 5:] = 0
    feeds["adjacency"][0, 4, 5] = 1  # an edge into the padding: the padding mask hides the padded key
    logits, graphs = per_node.run(feeds)["logits"], readout.run(feeds)["logits"]
    assert logits.shape == (2, N, 5) and graphs.shape == (2, 5)
    feeds["node_features"][0, 5:] = 100.0
    feeds["adjacency"][0, 5:] = 1
    assert np.array_equal(per_node.run(feeds)["logits"][0, :5], logits[0, :5])
    assert np.allclose(readout.run(feeds)["logits"], graphs, atol=1e-6)


@pytest.mark.parametrize("old, new, expected", [
    ("features: 3, ", "", ("spec.yaml:6:", "input.features: a graph's nodes need features (features: F) or type "
                           "ids (node_types: V)")),
    ("edge_types: 4, ", "edge_encoding: keys_values, ", ("spec.yaml:6:", "input.edge_encoding: edge_encoding "
                                                        "'keys_values' encodes edge types: set edge_types")),
    ("edge_types: 4", "edge_types: 4, adjacency: false, self_loops: false",
     ("input.self_loops: without an adjacency every node attends every node",)),
    ("topology: encoder", "topology: decoder", ("input 'graph' reads a graph into an encoder: topology 'encoder', "
                                                "got 'decoder'",)),
    ("positional: none", "positional: learned", ("spec.yaml:7:", "a graph's nodes have no order: positions come "
                                                 "from its Laplacian eigenvectors (laplacian: k); set positional: "
                                                 "none (got 'learned')")),
    ("block: {placement: pre}", "block: {placement: pre, attention: {kind: linear}}",
     ("spec.yaml:8:", "encoder layer 0: the graph's adjacency and edge biases enter multi_head attention; attention "
      "kind 'linear' does not read them")),
    ("encoder: {layers: 2}", "encoder: {layers: 2, memory: 4}", ("cannot carry memories, memory slots or resample",)),
    ("encoder: {layers: 2}", "encoder: {layers: 2, overrides: [{layers: [1, 1], block: {positional: rope}}]}",
     ("spec.yaml:9:", "encoder layer 1: a graph's nodes have no order: the block's own positional 'rope' must be "
      "none")),
])
def test_bad_graph_specs_get_a_located_error(tmp_path, capsys, old, new, expected):
    assert old in SPEC
    check_fails(tmp_path, capsys, SPEC.replace(old, new), *expected)


@pytest.mark.parametrize("change, message", [
    (lambda f: f.update(adjacency=f["adjacency"][:, :, :-1]),
     r"adjacency: axis 2 \(sequence_length\) is 6, but node_features has sequence_length = 7"),
    (lambda f: f.update(adjacency=f["adjacency"][:, :, :, None]), r"adjacency: expected 3 axes"),
    (lambda f: f["adjacency"].__setitem__((1, 2, 3), 2),
     r"adjacency\[1, 2, 3\]: expected 0 or 1 \(1 where a node attends another, 0 where not\), got 2"),
    (lambda f: f.update(laplacian_eigenvectors=np.zeros((2, N, 3), np.float32)),
     r"laplacian_eigenvectors: axis 2 must be 2 \(shape \['batch_size', 'sequence_length', 2\]\), got shape "
     r"\[2, 7, 3\]"),
    (lambda f: f["laplacian_eigenvectors"].__setitem__((0, 1, 1), np.inf),
     r"laplacian_eigenvectors\[0, 1, 1\]: expected a finite number, got inf"),
    (lambda f: f["edge_types"].__setitem__((1, 0, 6), 4), r"edge_types\[1, 0, 6\]: expected an edge type in \[0, 4\), "
     r"got 4"),
    (lambda f: f["edge_types"].__setitem__((0, 0, 0), -1), r"edge_types\[0, 0, 0\]: expected an edge type in "),
])
def test_run_names_bad_graph_inputs(tmp_path, change, message):
    model, feeds = model_of(tmp_path), path_graph()
    assert model.run(feeds)["logits"].shape == (2, N, 5)
    change(feeds)
    with pytest.raises(ValueError, match=message):
        model.run(feeds)


def test_run_names_a_node_type_out_of_range(tmp_path):
    model = model_of(tmp_path, SPEC.replace("features: 3", "node_types: 6"))
    feeds = path_graph()
    feeds["node_types"] = np.full((2, N), 5, np.int64)
    del feeds["node_features"]
    assert model.run(feeds)["logits"].shape == (2, N, 5)
    feeds["node_types"][1, 3] = 6
    with pytest.raises(ValueError, match=r"node_types\[1, 3\]: expected a node type in \[0, 6\), got 6"):
        model.run(feeds)


@pytest.mark.parametrize("input_section", [
    "{kind: graph, features: 3, edge_types: 4, laplacian: 2}", "{kind: graph, node_types: 9, adjacency: false}",
    "{kind: graph, features: 3, node_types: 5, edge_types: 2}",
    "{kind: graph, features: 3, edge_types: 3, edge_encoding: keys_values}"])
def test_the_size_estimate_counts_the_input_layer(input_section):
    """Its embeddings, and with edge keys and values each layer's table of them."""
    spec = parse_spec(SPEC.replace("{kind: graph, features: 3, edge_types: 4, laplacian: 2}", input_section))
    params = declared_params(build_graph(spec))
    assert spec.input.parameters(spec) == sum(math.prod(shape) for name, (shape, _) in params.items()
                                              if name.startswith("embeddings.") or ".attention.edges." in name)
