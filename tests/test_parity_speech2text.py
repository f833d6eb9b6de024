"""Parity with Hugging Face transformers' Speech2Text from a small random config (no hub): Speech2TextModel (the
encoder's last hidden state and the decoder's) and Speech2TextForConditionalGeneration (the logits, teacher-forced)
saved, imported with `tfc import-hf` (the `frames` input with the Conv1d + GLU subsampler, tokens for the decoder),
compiled and run on onnxruntime at fp32, on padded batches (frames masked at the end of some rows, the decoder's
tokens too); greedy generation from speech features through the two-model folder (the runtime's `generate` with
input_features, and `tfc generate --input-features`) against transformers' generate; the configs the import refuses.

Hugging Face gives padded frames and pad-token ids a zero position row; those positions' states are masked and not
compared (tfcompiler leaves them undefined). Every real position is."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tfcompiler.cli import main
from tfc_runtime import Generator
from test_parity_hf import TOLERANCE, import_and_compile, randomise

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

CONFIG = dict(vocab_size=50, d_model=16, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
              decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, conv_channels=12,
              input_feat_per_channel=7, num_conv_layers=2, conv_kernel_sizes=[5, 3], max_source_positions=64,
              max_target_positions=32, attn_implementation="eager")
FRAMES, TOKENS, PAD = 37, 6, 1  # PAD: Speech2Text's pad_token_id


def speech2text(model_class: str, seed: int, **options):
    config = transformers.Speech2TextConfig(**{**CONFIG, **options})
    return randomise(getattr(transformers, model_class)(config), seed=seed)


def batch(rows: int, seed: int):
    """Features (B, T, F) with rows padded at the end (all but the first), decoder ids without the pad id and
    the decoder's mask (the last row's last two tokens padded)."""
    rng = np.random.default_rng(seed)
    features = rng.standard_normal((rows, FRAMES, CONFIG["input_feat_per_channel"])).astype(np.float32)
    mask = np.ones((rows, FRAMES), np.int64)
    for row, length in enumerate([FRAMES, 20, 9][:rows]):
        mask[row, length:] = 0
    ids = rng.integers(PAD + 1, CONFIG["vocab_size"], (rows, TOKENS))
    decoder_mask = np.ones((rows, TOKENS), np.int64)
    if rows > 1:
        decoder_mask[-1, -2:] = 0
    return features, mask, ids, decoder_mask


def assert_close(got, want, real, what: str):
    assert got.shape == want.shape, what
    real = np.broadcast_to(real[..., None], got.shape) if real.ndim < got.ndim else real
    error = float(np.abs(got - want)[real].max())
    assert error <= TOLERANCE * max(1.0, float(np.abs(want[real]).max())), f"{what}: {error}"


@pytest.mark.parametrize("model_class", ["Speech2TextModel", "Speech2TextForConditionalGeneration"])
def test_speech2text_matches_transformers(tmp_path, model_class):
    model = speech2text(model_class, seed=3)
    session = import_and_compile(model, tmp_path)
    names = [o.name for o in session.get_outputs()]
    assert [i.name for i in session.get_inputs()] == ["input_features", "attention_mask", "decoder_input_ids",
                                                      "decoder_attention_mask"]
    for rows in (1, 3):
        features, mask, ids, decoder_mask = batch(rows, seed=rows)
        with torch.no_grad():
            want = model(input_features=torch.from_numpy(features), attention_mask=torch.from_numpy(mask),
                         decoder_input_ids=torch.from_numpy(ids), decoder_attention_mask=torch.from_numpy(decoder_mask))
            encoder = model.get_encoder()(torch.from_numpy(features), attention_mask=torch.from_numpy(mask))
        got = dict(zip(names, session.run(None, {"input_features": features, "attention_mask": mask,
                                                 "decoder_input_ids": ids, "decoder_attention_mask": decoder_mask})))
        real = decoder_mask == 1
        if model_class == "Speech2TextModel":
            states = encoder.last_hidden_state.numpy()
            subsampled = model._get_feature_vector_attention_mask(states.shape[1], torch.from_numpy(mask)).numpy()
            assert rows == 1 or not subsampled.all()  # padded states are left out
            assert_close(got["encoder_last_hidden_state"], states, subsampled == 1, f"encoder, {rows} rows")
            assert_close(got["last_hidden_state"], want.last_hidden_state.numpy(), real, f"decoder, {rows} rows")
        else:
            assert names == ["logits"]
            assert_close(got["logits"], want.logits.numpy(), real, f"logits, {rows} rows")


@pytest.fixture(scope="module")
def asr(tmp_path_factory):
    """Speech2TextForConditionalGeneration and its folder of two models (`tfc compile -o DIR/`: encoder_model reads
    input_features and returns the subsampled mask, decoder_model the tokens with its cache)."""
    folder = tmp_path_factory.mktemp("asr")
    model = speech2text("Speech2TextForConditionalGeneration", seed=11)
    model.save_pretrained(folder / "hf")
    assert main(["import-hf", str(folder / "hf"), "-o", str(folder / "imported")]) == 0
    assert main(["compile", str(folder / "imported" / "spec.yaml"), "--weights",
                 str(folder / "imported" / "weights.safetensors"), "-o", f"{folder}/asr/", "-q"]) == 0
    return model, folder / "asr"


@pytest.mark.parametrize("options", [{}, {"repetition_penalty": 3.0}])
def test_greedy_speech_recognition_matches_transformers(asr, options):
    """Greedy tokens from padded features equal transformers' generate(num_beams=1, do_sample=False), through the
    runtime's generate with input_features. These random weights repeat one token after a few (as small random
    models do); with a repetition penalty every step picks another, so each choice is tested."""
    model, folder = asr
    features, mask, _, _ = batch(3, seed=7)
    with torch.no_grad():
        want = model.generate(input_features=torch.from_numpy(features), attention_mask=torch.from_numpy(mask),
                              max_new_tokens=10, num_beams=1, do_sample=False, **options).numpy()
    # Hugging Face numbers a pad token's position 0 (a zero row): a sequence that picks it before its end
    # would diverge there; these weights pick none
    for row in want:
        ended = np.flatnonzero(row[1:] == model.config.eos_token_id)
        assert PAD not in row[1:1 + (ended[0] if len(ended) else len(row))]
    assert want.shape == (3, 11)
    if options:  # no token twice in a row's new ones
        assert all(len(set(row[1:])) == 10 for row in want)
    got = Generator(folder).generate(input_features=features, attention_mask=mask, max_new_tokens=10, **options)
    np.testing.assert_array_equal(got, want)


def test_generate_cli_transcribes_input_features(asr, tmp_path, capsys):
    """`tfc generate DIR --input-features` with a .npz of features and their mask, or a .npy of one utterance
    (T, F): the runtime's sequences; token ids to a speech encoder, or an unreadable file, are named errors."""
    model, folder = asr
    features, mask, _, _ = batch(3, seed=7)
    np.savez(tmp_path / "speech.npz", input_features=features, attention_mask=mask)
    np.save(tmp_path / "one.npy", features[0])
    for path, rows in ((tmp_path / "speech.npz", slice(None)), (tmp_path / "one.npy", slice(0, 1))):
        capsys.readouterr()
        assert main(["generate", str(folder), "--input-features", str(path), "--max-new-tokens", "5", "--json"]) == 0
        got = json.loads(capsys.readouterr().out)["sequences"]
        want = Generator(folder).generate(input_features=features[rows], attention_mask=mask[rows], max_new_tokens=5,
                                          return_dict_in_generate=True)
        assert got == want.rows() and got[0][0] == model.config.decoder_start_token_id
    assert main(["generate", str(folder), "--input-ids", "[[3, 4]]"]) == 1
    assert "the encoder model takes ['input_features', 'attention_mask']" in capsys.readouterr().err
    assert main(["generate", str(folder), "--input-features", str(tmp_path / "missing.npy")]) == 1
    assert "--input-features" in capsys.readouterr().err
    with pytest.raises(ValueError, match="input_features: give them instead of input_ids"):
        Generator(folder).generate([[3, 4]], input_features=features)


@pytest.mark.parametrize("options, message", [
    (dict(decoder_ffn_dim=48), "encoder_ffn_dim 32 != decoder_ffn_dim 48 is not supported yet"),
    (dict(decoder_attention_heads=4), "encoder_attention_heads 2 != decoder_attention_heads 4"),
    (dict(pad_token_id=0), "pad_token_id 0: Hugging Face then numbers no real frame's position"),
    (dict(conv_kernel_sizes=[5, 4]), "even conv_kernel_sizes [5, 4] is not supported")])
def test_import_refuses_what_one_spec_cannot_hold(tmp_path, capsys, options, message):
    speech2text("Speech2TextModel", seed=1, **options).save_pretrained(tmp_path / "hf")
    assert main(["import-hf", str(tmp_path / "hf"), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
