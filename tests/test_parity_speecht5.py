"""Parity with Hugging Face transformers' SpeechT5ForTextToSpeech from small random configs (no hub): saved,
imported with `tfc import-hf` (`phonemes` encoder input with Shaw's key term for SpeechT5's relative position
bias, `mel_frames` decoder input with the speaker projection, `spectrogram` head with its BatchNorm folded),
compiled and run on onnxruntime at fp32 against the torch model: the encoder's states (the encoder model of the
generation pair), and with teacher forcing the spectrogram before and after the post-net and the stop logits,
batches padded on both sides included; then mel-frame generation (tfc_runtime.generation_frames) against
`generate_speech` with the vocoder left out.

SpeechT5's decoder pre-net applies dropout in eval mode too ("consistent dropout", Tacotron 2's). With
speech_decoder_prenet_dropout = 0 it does not switch off: its mask keeps a value with probability p (torch.bernoulli
(x, p)) and scales by 1/(1 - p), so at p = 0 it zeroes every activation (at the checkpoints' p = 0.5 the two
readings agree in expectation). The compiled pre-net has no dropout, so the torch model here runs with p = 0 and
that dropout replaced by the identity: the pre-net as SpeechT5 defines it, deterministic."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from tfcompiler.cli import main
from tfcompiler.compiler import compile_spec
from test_parity_hf import TOLERANCE

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

CONFIG = dict(vocab_size=23, hidden_size=16, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
              decoder_attention_heads=2, encoder_ffn_dim=24, decoder_ffn_dim=24, num_mel_bins=5,
              speech_decoder_prenet_units=12, speech_decoder_postnet_units=10, speech_decoder_postnet_layers=3,
              speaker_embedding_dim=7, reduction_factor=2, encoder_max_relative_position=4, max_text_positions=40,
              max_speech_positions=60, speech_decoder_prenet_dropout=0.0)


def speecht5(seed: int = 3, **options):
    """A random SpeechT5ForTextToSpeech, its post-net's BatchNorm statistics random too (else folding is trivial),
    its decoder pre-net without SpeechT5's eval-mode dropout (see the module's docstring)."""
    model = transformers.SpeechT5ForTextToSpeech(transformers.SpeechT5Config(**{**CONFIG, **options})).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():  # as test_parity_hf's randomise, and the scalar α about 1
            scale = 0.2 if p.dim() <= 1 else 1 / np.sqrt(p.shape[-1])
            base = 1.0 if name.endswith(("weight", "alpha")) and p.dim() <= 1 else 0.0
            p.copy_(base + scale * torch.randn(p.shape, generator=generator))
        for name, buffer in model.named_buffers():
            if name.endswith("running_mean"):
                buffer.copy_(0.3 * torch.randn(buffer.shape, generator=generator))
            elif name.endswith("running_var"):
                buffer.copy_(0.5 + torch.rand(buffer.shape, generator=generator))
    model.speecht5.decoder.prenet._consistent_dropout = lambda values, p: values
    return model


def imported(model, tmp_path):
    model.save_pretrained(tmp_path / "hf")
    assert main(["import-hf", str(tmp_path / "hf"), "-o", str(tmp_path / "imported")]) == 0
    return tmp_path / "imported" / "spec.yaml", str(tmp_path / "imported" / "weights.safetensors")


def session(spec, weights, part=None):
    return ort.InferenceSession(compile_spec(spec, weights=weights, part=part).model.serialize())


def run(sess, feeds):
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))


def assert_close(got, want, what: str):
    assert got.shape == want.shape, f"{what}: {got.shape} != {want.shape}"
    error = float(np.abs(got - want).max())
    assert error <= TOLERANCE * max(1.0, float(np.abs(want).max())), f"{what}: {error}"


def batch(rng, model, rows: int, source: int, frames: int, padded: bool):
    """Token ids and frames, the last row padded at the end of both (3 tokens, 2 frames) when `padded`."""
    config = model.config
    feeds = {"input_ids": rng.integers(3, config.vocab_size, (rows, source)),
             "attention_mask": np.ones((rows, source), np.int64),
             "decoder_input_values": rng.standard_normal((rows, frames, config.num_mel_bins)).astype(np.float32),
             "decoder_attention_mask": np.ones((rows, frames), np.int64),
             "speaker_embeddings": rng.standard_normal((rows, config.speaker_embedding_dim)).astype(np.float32)}
    if padded:
        feeds["attention_mask"][-1, -3:] = 0
        feeds["decoder_attention_mask"][-1, -2:] = 0
    return feeds


@pytest.mark.parametrize("options", [{}, dict(reduction_factor=1, speech_decoder_postnet_layers=5, hidden_act="relu",
                                              encoder_max_relative_position=2)])
@pytest.mark.parametrize("rows, padded", [(1, False), (3, True)])
def test_speecht5_matches_transformers(tmp_path, options, rows, padded):
    model = speecht5(**options)
    spec, weights = imported(model, tmp_path)
    whole, encoder = session(spec, weights), session(spec, weights, part="encoder")
    assert [i.name for i in whole.get_inputs()] == ["input_ids", "attention_mask", "decoder_input_values",
                                                    "decoder_attention_mask", "speaker_embeddings"]
    assert sorted(o.name for o in whole.get_outputs()) == ["outputs_before_postnet", "spectrogram", "stop_logits"]
    feeds = batch(np.random.default_rng(rows), model, rows, source=9, frames=7, padded=padded)
    tensors = {name: torch.from_numpy(value) for name, value in feeds.items()}
    with torch.no_grad():
        states = model.speecht5(input_values=tensors["input_ids"], attention_mask=tensors["attention_mask"],
                                decoder_input_values=tensors["decoder_input_values"],
                                decoder_attention_mask=tensors["decoder_attention_mask"],
                                speaker_embeddings=tensors["speaker_embeddings"], use_cache=False)
        before, after, stop = model.speech_decoder_postnet(states.last_hidden_state)
    source = run(encoder, {"input_ids": feeds["input_ids"], "attention_mask": feeds["attention_mask"]})
    assert_close(source["last_hidden_state"], states.encoder_last_hidden_state.numpy(), "encoder last_hidden_state")
    got = run(whole, feeds)
    for name, want in (("outputs_before_postnet", before), ("spectrogram", after), ("stop_logits", stop)):
        assert_close(got[name], want.numpy(), name)


def test_cached_decoder_steps_match_the_whole_model(tmp_path):
    """The generation pair: the encoder model once, the decoder model a frame at a time with its KV cache, each
    step's frames and stop logits as the one-graph model's over the whole prefix."""
    model = speecht5()
    spec, weights = imported(model, tmp_path)
    whole, encoder, decoder = (session(spec, weights, part) for part in (None, "encoder", "decoder"))
    feeds = batch(np.random.default_rng(7), model, 2, source=6, frames=4, padded=False)
    want = run(whole, feeds)
    source = run(encoder, {"input_ids": feeds["input_ids"], "attention_mask": feeds["attention_mask"]})
    past = {name.replace("present", "past_key_values"): value for name, value in source.items()
            if name.startswith("present")}
    names = {i.name for i in decoder.get_inputs()}
    past.update({i.name: np.zeros((2, i.shape[1], 0, i.shape[3]), np.float32) for i in decoder.get_inputs()
                 if i.name.startswith("past_key_values.") and ".decoder." in i.name})  # the decoder's own: empty
    for step in range(4):
        inputs = {"input_values": feeds["decoder_input_values"][:, step:step + 1],
                  "attention_mask": np.ones((2, step + 1), np.int64),
                  "encoder_attention_mask": feeds["attention_mask"],
                  "speaker_embeddings": feeds["speaker_embeddings"], **past}
        if "position_ids" in names:
            inputs["position_ids"] = np.full((2, 1), step, np.int64)
        out = run(decoder, {k: v for k, v in inputs.items() if k in names})
        assert sorted(k for k in out if not k.startswith("present")) == ["outputs_before_postnet", "stop_logits"]
        r = model.config.reduction_factor
        assert_close(out["outputs_before_postnet"], want["outputs_before_postnet"][:, step * r:(step + 1) * r],
                     f"step {step} frames")
        assert_close(out["stop_logits"], want["stop_logits"][:, step * r:(step + 1) * r], f"step {step} stop")
        past.update({name.replace("present", "past_key_values"): value for name, value in out.items()
                     if name.startswith("present") and ".decoder." in name})


def test_generated_frames_match_generate_speech(tmp_path):
    """tfc_runtime's loop (alone, and with the generation pair's KV cache) against SpeechT5's generate_speech
    (vocoder None: the spectrogram), rows stopping at different steps: the decoder's positions scaled up and the
    stop linear sharpened so that the stop probabilities move from step to step (with the random weights alone
    they settle after a step or two), and a minimum length."""
    from tfc_runtime import Model, generate_speech

    model = speecht5(seed=5)
    with torch.no_grad():
        model.speecht5.decoder.prenet.encode_positions.alpha.fill_(6.0)
        model.speech_decoder_postnet.prob_out.weight.mul_(3.0)
        model.speech_decoder_postnet.prob_out.bias.fill_(-1.0)
    spec, weights = imported(model, tmp_path)
    for part in ("model", "encoder_model", "decoder_model"):
        compiled = compile_spec(spec, weights=weights, part=None if part == "model" else part.split("_")[0])
        (tmp_path / f"{part}.onnx").write_bytes(compiled.model.serialize())
    whole, encoder, decoder = (Model(str(tmp_path / f"{part}.onnx"))
                               for part in ("model", "encoder_model", "decoder_model"))
    # the model folder `tfc compile -o DIR/` writes: the generation pair and, for the post-net, model.onnx
    assert main(["compile", str(spec), "--weights", weights, "-o", str(tmp_path / "folder") + "/", "-q"]) == 0
    assert {p.name for p in (tmp_path / "folder").iterdir()} >= {"model.onnx", "encoder_model.onnx",
                                                                  "decoder_model.onnx"}
    rng = np.random.default_rng(0)
    ids = rng.integers(3, CONFIG["vocab_size"], (3, 7))
    mask = np.ones_like(ids)
    mask[0, -2:] = 0
    speaker = rng.standard_normal((3, CONFIG["speaker_embedding_dim"])).astype(np.float32)
    for threshold, shortest in ((1.3, 0.0), (1.3, 2.0), (0.5, 0.0)):
        options = dict(threshold=threshold, minlenratio=shortest, maxlenratio=4.0)
        with torch.no_grad():
            want, lengths = model.generate_speech(torch.from_numpy(ids), torch.from_numpy(speaker),
                                                  attention_mask=torch.from_numpy(mask), return_output_lengths=True,
                                                  **options)
        for how, source, pair in (("recomputed", whole, {}), ("cached", whole, dict(encoder=encoder, decoder=decoder)),
                                  ("the folder", tmp_path / "folder", {})):
            speech = generate_speech(source, ids, mask, speaker, **options, **pair)
            assert speech.lengths == list(lengths), (options, how)
            assert_close(speech.padded(), want.numpy(), f"{options} {how}")
        if (threshold, shortest) == (1.3, 0.0):  # the threshold, not the maximum (14 steps of 2), ends the rows
            assert len(set(lengths)) >= 2 and max(lengths) < 28, f"rows of lengths {lengths}: no stopping rule shown"


def test_generate_speech_refuses_what_it_cannot_run(tmp_path):
    from tfc_runtime import Model, generate_speech

    spec, weights = imported(speecht5(), tmp_path)
    (tmp_path / "model.onnx").write_bytes(compile_spec(spec, weights=weights).model.serialize())
    model, ids = Model(str(tmp_path / "model.onnx")), np.zeros((1, 4), np.int64)
    for arguments, message in ((dict(), "speaker_embeddings: this model reads a speaker vector"),
                               (dict(speaker_embeddings=np.ones((1, 7)), maxlenratio=0), "maxlenratio > 0"),
                               (dict(speaker_embeddings=np.ones((1, 7)), encoder=model), "give both models")):
        with pytest.raises(ValueError, match=message):
            generate_speech(model, ids, **arguments)


@pytest.mark.parametrize("options, refused", [
    (dict(decoder_attention_heads=4), "encoder_attention_heads 2 != decoder_attention_heads 4"),
    (dict(hidden_act="tanh"), "activation 'tanh'")])
def test_speecht5_import_refuses_by_name(tmp_path, capsys, options, refused):
    speecht5(**options).save_pretrained(tmp_path / "hf")
    assert main(["import-hf", str(tmp_path / "hf"), "-o", str(tmp_path / "imported")]) != 0
    assert refused in capsys.readouterr().err
    assert not (tmp_path / "imported").exists()


def test_speech_to_text_is_refused(tmp_path, capsys):
    small = dict(conv_dim=(8, 8), conv_stride=(5, 2), conv_kernel=(10, 3), num_conv_pos_embeddings=4,
                 num_conv_pos_embedding_groups=2)  # its waveform encoder, small
    model = transformers.SpeechT5ForSpeechToText(transformers.SpeechT5Config(**CONFIG, **small))
    model.save_pretrained(tmp_path / "hf")
    assert main(["import-hf", str(tmp_path / "hf"), "-o", str(tmp_path / "imported")]) != 0
    assert "SpeechT5ForTextToSpeech" in capsys.readouterr().err


def test_the_saved_sinusoid_tables_of_older_checkpoints_are_recognised(tmp_path):
    """Older transformers saved each pre-net's positional table `encode_positions.pe` with the weights; the import
    recomputes it from the config and places everything else."""
    from safetensors.numpy import load_file, save_file

    model = speecht5()
    model.save_pretrained(tmp_path / "hf")
    path = next((tmp_path / "hf").glob("*.safetensors"))
    tensors = load_file(str(path))
    for stack in ("encoder", "decoder"):
        tensors[f"speecht5.{stack}.prenet.encode_positions.pe"] = np.zeros((1, 40, 16), np.float32)
    save_file(tensors, str(path), metadata={"format": "pt"})
    assert main(["import-hf", str(tmp_path / "hf"), "-o", str(tmp_path / "imported")]) == 0
