"""The `frames` input's rules and run-time checks: located compile-time errors for a subsampler that cannot run
(a kernel of 0, an odd channel count a GLU cannot halve, too few features for unpadded Conv2d) and for frames read
by a decoder; Model.run names frames too short for the subsampler or too long for max_length, features of
another count and non-finite features; the subsampled mask's length arithmetic against Hugging Face's; the
conv2d subsampler against ESPnet's Conv2dSubsampling in torch; the `ctc` head over the subsampled states."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from safetensors.numpy import save_file

from test_errors import check_fails
from tfc_runtime import Model
from tfcompiler.builders import build_graph
from tfcompiler.builders.weights import declared_params
from tfcompiler.compiler import compile_spec
from tfcompiler.language import parse_spec

SPEC = """
tfc: 1
name: speech
topology: encoder
model: {width: 16, heads: 2, ffn_width: 32, vocab_size: 1, max_length: 10}
input: {kind: frames, subsampler: conv2d, features: 11, channels: 4, padding: none}
positional: learned
block: {placement: pre}
encoder: {layers: 1}
"""


@pytest.mark.parametrize("old, new, expected", [
    ("padding: none}", "padding: none, kernels: [3, 0]}", ("input.kernels: kernel sizes are at least 1",)),
    ("features: 11", "features: 6", ("spec.yaml:6:", "input.features: 6 features are too few for the 2 unpadded "
                                     "convolutions of kernels [3, 3] (stride 2): give at least 7")),
    ("topology: encoder", "topology: decoder", ("input 'frames' is subsampled by convolutions",)),
])
def test_bad_frames_get_a_located_error(tmp_path, capsys, old, new, expected):
    assert old in SPEC
    text = SPEC.replace(old, new)
    if "decoder" in new:
        text = text.replace("encoder: {layers: 1}", "decoder: {layers: 1}")
    check_fails(tmp_path, capsys, text, *expected)


def test_odd_glu_channels_are_refused(tmp_path, capsys):
    spec = SPEC.replace("subsampler: conv2d", "subsampler: conv1d_glu").replace("channels: 4", "channels: 5")
    check_fails(tmp_path, capsys, spec, "spec.yaml:6:", "input.channels: a GLU halves the channels of each "
                "convolution: give an even count, got 5")


def test_run_names_bad_frames(tmp_path):
    """Unpadded 3×3 convolutions need 7 frames for one state; max_length 10 takes 46 frames at most
    ((46 - 3) // 2 + 1 = 22, (22 - 3) // 2 + 1 = 10)."""
    compile_spec(parse_spec(SPEC, "speech.yaml")).model.save(str(tmp_path / "m.onnx"))
    model = Model(str(tmp_path / "m.onnx"))

    def run(frames, features=11):
        return model.run(input_features=np.zeros((2, frames, features), np.float32),
                         attention_mask=np.ones((2, frames), np.int64))
    assert run(7)["last_hidden_state"].shape == (2, 1, 16)
    assert run(46)["last_hidden_state"].shape == (2, 10, 16)
    with pytest.raises(ValueError, match=r"input_features: axis 1 \(frames\) is 6: too short for the model's "
                                         r"subsampler, which needs at least 7 frames"):
        run(6)
    with pytest.raises(ValueError, match=r"axis 1 \(frames\) is 47: the model takes at most 46 frames \(their "
                                         r"subsampled states must fit its max_length 10\)"):
        run(47)
    with pytest.raises(ValueError, match=r"input_features: axis 2 must be 11"):
        run(9, features=10)
    features = np.zeros((2, 9, 11), np.float32)
    features[1, 4, 3] = np.inf
    with pytest.raises(ValueError, match=r"input_features\[1, 4, 3\]: expected a finite number, got inf"):
        model.run(input_features=features, attention_mask=np.ones((2, 9), np.int64))


@pytest.mark.parametrize("subsampler, padding", [("conv1d_glu", "half"), ("conv2d", "half"), ("conv2d", "none")])
def test_subsampled_mask_follows_each_rows_length(subsampler, padding):
    """The compiled model's mask of the states (its SubsampledMask node, on onnxruntime) marks the first n'
    states of a row of n real frames, n' = (n + 2·pad - k) // 2 + 1 twice: Hugging Face's Speech2Text
    (`_get_feat_extract_output_lengths`: (n - 1) // 2 + 1 per layer, for k = 5, pad = 2), Dong et al.'s padded
    3×3 and ESPnet's unpadded (n - 3) // 2 + 1."""
    text = SPEC.replace("subsampler: conv2d", f"subsampler: {subsampler}").replace("padding: none",
                                                                                   f"padding: {padding}")
    model = compile_spec(parse_spec(text, "speech.yaml")).model.to_proto()
    (node,) = [node for node in model.graph.node if node.name.endswith("SubsampledMask")]
    model.graph.output.append(onnx.helper.make_tensor_value_info(node.output[0], onnx.TensorProto.INT64, None))
    session = ort.InferenceSession(model.SerializeToString())
    frames = 40
    lengths = np.arange(7, frames + 1, 3)
    mask = (np.arange(frames)[None, :] < lengths[:, None]).astype(np.int64)
    features = np.zeros((len(lengths), frames, 11), np.float32)
    got = session.run([node.output[0]], {"input_features": features, "attention_mask": mask})[0]
    k, pad = (5, 2) if subsampler == "conv1d_glu" else (3, 1 if padding == "half" else 0)
    expected, width = lengths, frames
    for _ in range(2):
        expected, width = (expected + 2 * pad - k) // 2 + 1, (width + 2 * pad - k) // 2 + 1
    if padding == "half":  # Hugging Face's arithmetic, which ignores the kernel, agrees for odd kernels
        assert (expected == (((lengths - 1) // 2 + 1) - 1) // 2 + 1).all()
    assert got.shape == (len(lengths), width)
    assert (got == (np.arange(width)[None, :] < expected[:, None])).all()


@pytest.mark.parametrize("padding", ["half", "none"])
def test_conv2d_subsampler_matches_torch(tmp_path, padding):
    """Speech-Transformer's front end as ESPnet's Conv2dSubsampling writes it in torch (Conv2d 3×3 stride 2 + ReLU,
    twice, then (B, T', C·F') through a Linear), with the compiled model's weights: the embeddings' output (its
    `frames` linear map, read off the ONNX graph) equal at fp32."""
    torch = pytest.importorskip("torch")
    text = SPEC.replace("padding: none", f"padding: {padding}")
    spec = parse_spec(text, "speech.yaml")
    pad, channels = (1 if padding == "half" else 0), 4
    convs = torch.nn.Sequential(torch.nn.Conv2d(1, channels, 3, 2, pad), torch.nn.ReLU(),
                                torch.nn.Conv2d(channels, channels, 3, 2, pad), torch.nn.ReLU())
    features_out = spec.input.feature_width()
    out = torch.nn.Linear(channels * features_out, 16)
    generator = torch.Generator().manual_seed(0)
    for p in [*convs.parameters(), *out.parameters()]:
        with torch.no_grad():
            p.copy_(torch.randn(p.shape, generator=generator) / 3)
    weights = {f"embeddings.conv.{i}.{name}": getattr(convs[2 * i], name).detach().numpy()
               for i in range(2) for name in ("weight", "bias")}
    weights.update({"embeddings.frames.weight": out.weight.detach().numpy().T.copy(),
                    "embeddings.frames.bias": out.bias.detach().numpy()})
    rng = np.random.default_rng(1)
    for name, (shape, _) in declared_params(build_graph(spec)).items():
        weights.setdefault(name, rng.standard_normal(shape).astype(np.float32))
    save_file(weights, str(tmp_path / "w.safetensors"))
    model = compile_spec(spec, weights=str(tmp_path / "w.safetensors")).model.to_proto()
    (node,) = [node for node in model.graph.node if node.name.endswith("embeddings/frames/Add")]
    model.graph.output.append(onnx.helper.make_tensor_value_info(node.output[0], onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(model.SerializeToString())
    features = rng.standard_normal((2, 29, 11)).astype(np.float32)
    got = session.run([node.output[0]], {"input_features": features, "attention_mask": np.ones((2, 29), np.int64)})[0]
    with torch.no_grad():
        x = convs(torch.from_numpy(features)[:, None])  # ESPnet: x.unsqueeze(1), conv, then view(b, t, c * f)
        b, c, t, f = x.shape
        want = out(x.transpose(1, 2).reshape(b, t, c * f)).numpy()
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 1e-4 * max(1.0, float(np.abs(want).max()))


def test_ctc_head_reads_an_encoder(tmp_path, capsys):
    """The `ctc` head scores an encoder's states (B, T', V): the logits of every subsampled frame; over a
    decoder's states it is a located error."""
    spec = parse_spec(SPEC + "head: {kind: ctc, vocab: 7}\n", "speech.yaml")
    session = ort.InferenceSession(compile_spec(spec).model.serialize())
    (logits,) = session.run(None, {"input_features": np.zeros((2, 46, 11), np.float32),
                                   "attention_mask": np.ones((2, 46), np.int64)})
    assert logits.shape == (2, 10, 7)
    text = SPEC.replace("topology: encoder", "topology: encoder-decoder") + "decoder: {layers: 1, input: tokens}\n"
    check_fails(tmp_path, capsys, text + "head: {kind: ctc}\n", "spec.yaml:11:", "head.kind: 'ctc' scores every "
                "state of an encoder (its frames, aligned by CTC): it needs topology 'encoder', got 'encoder-decoder'")
