"""Parity with Hugging Face transformers: BertModel, GPT2LMHeadModel and LlamaForCausalLM built from small configs with
random weights (no downloads), saved with save_pretrained, imported with `tfc import-hf`, compiled,
and run on onnxruntime against the torch model, with and without padding."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from conftest import whole_input
from tfcompiler import compile_spec, parse_spec
from tfcompiler.cli import main

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

TOLERANCE = 1e-4
SHAPES = [(1, 6), (3, 13)]  # (batch, length)


def randomise(model, seed: int):
    """Every parameter random, norms and biases included, so none can be silently dropped."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            scale = 0.2 if p.dim() == 1 else 1 / np.sqrt(p.shape[-1])
            base = 1.0 if name.endswith("weight") and p.dim() == 1 else 0.0
            p.copy_(base + scale * torch.randn(p.shape, generator=generator))
    return model.eval()


def import_and_compile(model, tmp_path):
    model.save_pretrained(tmp_path / "hf")
    assert main(["import-hf", str(tmp_path / "hf"), "-o", str(tmp_path / "imported")]) == 0
    compiled = compile_spec(tmp_path / "imported" / "spec.yaml",
                            weights=str(tmp_path / "imported" / "weights.safetensors"))
    compiled.model.save(str(tmp_path / "model.onnx"))
    return ort.InferenceSession(str(tmp_path / "model.onnx"))


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """key, make_model -> (torch model, onnxruntime session, folder of model.onnx), made once per key: the
    cases that differ only in their padding share one model and one session."""
    made = {}

    def get(key, make_model):
        if key not in made:
            model, folder = make_model(), tmp_path_factory.mktemp("hf")
            made[key] = model, import_and_compile(model, folder), folder
        return made[key]
    return get


def padded_mask(batch: int, length: int, pad: int) -> np.ndarray:
    mask = np.ones((batch, length), np.int64)
    if pad:
        mask[0, length - pad:] = 0
    return mask


def assert_close(got, want, what):
    error = float(np.abs(got - want).max())
    assert error <= TOLERANCE * max(1.0, float(np.abs(want).max())), f"{what}: {error}"


@pytest.mark.parametrize("pad, chunk", [(0, 0), (3, 0), (3, 3)])
def test_bert_matches_transformers(imported, pad, chunk):
    """chunk: Hugging Face's chunk_size_feed_forward, imported as the FFN's token chunks (a Loop). Its
    chunking needs the length to be a multiple of the chunk size (ours pads the last chunk), so at
    13 tokens the torch model takes its FFN whole: the same numbers."""
    config = transformers.BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=128, vocab_size=100, max_position_embeddings=64,
                                     type_vocab_size=2, attn_implementation="eager", chunk_size_feed_forward=chunk)
    model, session, folder = imported(("bert", chunk), lambda: randomise(transformers.BertModel(config), seed=0))
    loops = [node.op_type for node in onnx.load(folder / "model.onnx").graph.node].count("Loop")
    assert loops == (2 if chunk else 0)
    rng = np.random.default_rng(0)
    for batch, length in SHAPES:
        ids = rng.integers(0, 100, (batch, length))
        types = rng.integers(0, 2, (batch, length))
        mask = padded_mask(batch, length, pad)
        got = session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})
        for layer in model.encoder.layer:
            layer.chunk_size_feed_forward = chunk if chunk and length % chunk == 0 else 0
        with torch.no_grad():
            want = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                         token_type_ids=torch.from_numpy(types))
        assert_close(got[0], want.last_hidden_state.numpy(), f"last_hidden_state {batch}x{length}")
        assert_close(got[1], want.pooler_output.numpy(), f"pooler_output {batch}x{length}")


@pytest.mark.parametrize("pad", [0, 3])
def test_gpt2_matches_transformers(imported, pad):
    config = transformers.GPT2Config(n_embd=64, n_layer=2, n_head=4, vocab_size=100, n_positions=64,
                                     bos_token_id=0, eos_token_id=0, attn_implementation="eager")
    model, session, _ = imported("gpt2", lambda: randomise(transformers.GPT2LMHeadModel(config), seed=1))
    rng = np.random.default_rng(1)
    for batch, length in SHAPES:
        ids = rng.integers(0, 100, (batch, length))
        mask = padded_mask(batch, length, pad)
        (got,) = session.run(["logits"], whole_input(session, {"input_ids": ids, "attention_mask": mask}))
        with torch.no_grad():
            want = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).logits.numpy()
        # Padded positions too: both add the float32 minimum to padded keys, so even rows whose
        # query is padding agree.
        assert_close(got, want, f"logits {batch}x{length}")


@pytest.mark.parametrize("scaling", [None, {"rope_type": "linear", "factor": 2.0}])
def test_llama_matches_transformers(tmp_path, scaling):
    rope = {"rope_theta": 500.0, "rope_type": "default"} if scaling is None else {"rope_theta": 500.0, **scaling}
    config = transformers.LlamaConfig(hidden_size=64, intermediate_size=96, num_attention_heads=4,
                                      num_key_value_heads=2, num_hidden_layers=2, vocab_size=100,
                                      max_position_embeddings=64, rms_norm_eps=1e-6, rope_parameters=rope,
                                      attn_implementation="eager")
    model = randomise(transformers.LlamaForCausalLM(config), seed=2)
    session = import_and_compile(model, tmp_path)
    rng = np.random.default_rng(2)
    for batch, length in SHAPES:
        ids = rng.integers(0, 100, (batch, length))
        mask = np.ones((batch, length), np.int64)
        (got,) = session.run(["logits"], whole_input(session, {"input_ids": ids, "attention_mask": mask}))
        with torch.no_grad():
            want = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).logits.numpy()
        assert_close(got, want, f"logits {batch}x{length}")


def test_import_rejects_unsupported_model_types(tmp_path, capsys):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text('{"model_type": "mamba"}')
    assert main(["import-hf", str(tmp_path / "m"), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert ("model_type 'mamba' is not supported" in err
            and "bert, big_bird, deberta-v2, decision_transformer, deit, funnel, gpt2, informer, llama, longformer, "
                "nystromformer, reformer, speech_to_text, speecht5, t5, time_series_transformer, vit" in err)
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_import_lists_missing_tensors(tmp_path, capsys):
    config = transformers.GPT2Config(n_embd=32, n_layer=1, n_head=4, vocab_size=50, n_positions=16,
                                     bos_token_id=0, eos_token_id=0)
    transformers.GPT2LMHeadModel(config).save_pretrained(tmp_path / "hf")
    from safetensors.numpy import load_file, save_file

    path = tmp_path / "hf" / "model.safetensors"
    tensors = load_file(str(path))
    del tensors["transformer.h.0.ln_2.weight"]
    save_file(tensors, str(path))
    assert main(["import-hf", str(tmp_path / "hf"), "-o", str(tmp_path / "out")]) == 1
    assert "h.0.ln_2.weight" in capsys.readouterr().err


def _gpt2_checkpoint(folder):
    """A tiny GPT2LMHeadModel saved to folder; returns the safetensors path and its tensors."""
    from safetensors.numpy import load_file

    config = transformers.GPT2Config(n_embd=32, n_layer=1, n_head=4, vocab_size=50, n_positions=16,
                                     bos_token_id=0, eos_token_id=0)
    transformers.GPT2LMHeadModel(config).save_pretrained(folder)
    path = folder / "model.safetensors"
    return path, load_file(str(path))


def test_import_refuses_tensors_it_cannot_place(tmp_path, capsys):
    """A tensor the importer reads nowhere (here a task head it does not know) fails the import, named
    with its shape, and nothing is written."""
    from safetensors.numpy import save_file

    path, tensors = _gpt2_checkpoint(tmp_path / "hf")
    tensors["score.weight"] = np.ones((3, 32), np.float32)
    save_file(tensors, str(path))
    assert main(["import-hf", str(tmp_path / "hf"), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "1 checkpoint tensor(s) of GPT2LMHeadModel have no place" in err and "score.weight [3, 32]" in err
    assert "Traceback" not in err and not (tmp_path / "out").exists() and "--drop-unplaced" in err
    # asked for, the import leaves them out and lists them
    assert main(["import-hf", str(tmp_path / "hf"), "-o", str(tmp_path / "out"), "--drop-unplaced"]) == 0
    err = capsys.readouterr().err
    assert "left out 1 checkpoint tensor(s) the model does not read (--drop-unplaced):\n  score.weight [3, 32]" in err
    assert (tmp_path / "out" / "spec.yaml").is_file()


@pytest.mark.parametrize("same", [True, False])
def test_import_accepts_tied_copies_and_buffers_only_when_redundant(tmp_path, capsys, same):
    """Older checkpoints store a tied LM head a second time, and buffers (GPT-2's causal mask): the
    copy is skipped when it equals the embedding, and named when it does not (then it is not tied)."""
    from safetensors.numpy import save_file

    path, tensors = _gpt2_checkpoint(tmp_path / "hf")
    tensors["lm_head.weight"] = tensors["transformer.wte.weight"] + (0 if same else 1)
    tensors["transformer.h.0.attn.bias"] = np.tril(np.ones((1, 1, 16, 16), np.float32))
    save_file(tensors, str(path))
    assert main(["import-hf", str(tmp_path / "hf"), "-o", str(tmp_path / "out")]) == (0 if same else 1)
    err = capsys.readouterr().err
    assert ("lm_head.weight [50, 32]" in err) != same and "attn.bias" not in err


def test_import_accepts_t5s_unread_cross_attention_bias(tmp_path):
    """The original T5 checkpoints store a relative bias for the first cross-attention layer that T5
    never reads (and transformers ignores on load): recognised by its name, not imported."""
    from safetensors.numpy import load_file, save_file

    config = transformers.T5Config(d_model=32, d_kv=8, d_ff=48, num_layers=1, num_heads=4, vocab_size=50,
                                   relative_attention_num_buckets=8, decoder_start_token_id=0)
    transformers.T5Model(config).save_pretrained(tmp_path / "hf")
    path = tmp_path / "hf" / "model.safetensors"
    tensors = load_file(str(path))
    tensors["decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight"] = np.ones((8, 4), np.float32)
    save_file(tensors, str(path))
    assert main(["import-hf", str(tmp_path / "hf"), "-o", str(tmp_path / "out")]) == 0


SMALL_ENCODER = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                     vocab_size=100)
SMALL_DEBERTA = dict(**SMALL_ENCODER, max_position_embeddings=64, relative_attention=True, position_buckets=8,
                     max_relative_positions=12, norm_rel_ebd="layer_norm", share_att_key=True,
                     pos_att_type=["p2c", "c2p"], position_biased_input=False, type_vocab_size=0,
                     attn_implementation="eager")


@pytest.mark.parametrize("family, make", [
    ("bert", lambda: transformers.BertForSequenceClassification(transformers.BertConfig(
        **SMALL_ENCODER, max_position_embeddings=64, type_vocab_size=2, num_labels=3, attn_implementation="eager"))),
    ("longformer", lambda: transformers.LongformerForSequenceClassification(transformers.LongformerConfig(
        **SMALL_ENCODER, max_position_embeddings=80, attention_window=4, pad_token_id=1, num_labels=3,
        attn_implementation="eager"))),
    ("funnel", lambda: transformers.FunnelForSequenceClassification(transformers.FunnelConfig(
        vocab_size=100, block_sizes=[1, 2], d_model=32, n_head=4, d_head=8, d_inner=48, num_labels=3))),
    ("deberta", lambda: transformers.DebertaV2ForSequenceClassification(transformers.DebertaV2Config(
        **SMALL_DEBERTA, pooler_hidden_act="tanh", num_labels=3))),
    # the pooler's activation from the config: DeBERTa-v2's default gelu, Nyströmformer's hidden_act
    ("deberta-gelu", lambda: transformers.DebertaV2ForSequenceClassification(transformers.DebertaV2Config(
        **SMALL_DEBERTA, num_labels=3))),
    ("nystromformer", lambda: transformers.NystromformerForSequenceClassification(transformers.NystromformerConfig(
        **SMALL_ENCODER, max_position_embeddings=66, num_landmarks=4, segment_means_seq_len=16, num_labels=3)))])
@pytest.mark.parametrize("pad", [0, 3])
def test_sequence_classification_matches_transformers(imported, family, make, pad):
    """*ForSequenceClassification: the task head (a dense layer and an activation over the first token,
    then the labels' linear map) imported as the `classifier` head with num_labels, its logits against
    the torch model's, with and without padding (Nyströmformer at the one length Hugging Face takes
    landmarks at)."""
    model, session, folder = imported(("classify", family), lambda: randomise(make(), seed=7))
    assert [o.name for o in session.get_outputs()] == ["logits"]
    rng = np.random.default_rng(7)
    for batch, length in [(1, 16), (3, 16)] if family == "nystromformer" else [(1, 12), (3, 13)]:
        pad = 0 if family == "nystromformer" else pad  # Hugging Face's Nyströmformer fails on a padded mask
        feeds = {"input_ids": rng.integers(2, 100, (batch, length)), "attention_mask": padded_mask(batch, length, pad)}
        if "token_type_ids" in [i.name for i in session.get_inputs()]:
            feeds["token_type_ids"] = rng.integers(0, 2, (batch, length))
        theirs = dict(feeds)
        if family == "longformer":  # the global token: Hugging Face's default for classification is [CLS]
            feeds["global_attention_mask"] = np.zeros_like(feeds["input_ids"])
            feeds["global_attention_mask"][:, 0] = 1
        (got,) = session.run(["logits"], whole_input(session, feeds))
        with torch.no_grad():
            want = model(**{k: torch.from_numpy(v) for k, v in theirs.items()}).logits.numpy()
        assert got.shape == (batch, 3)
        assert_close(got, want, f"{family} logits {batch}x{length}, pad {pad}")


SMALL_LLAMA = dict(hidden_size=64, intermediate_size=96, num_attention_heads=4, num_key_value_heads=2,
                   num_hidden_layers=2, vocab_size=100, max_position_embeddings=64, attn_implementation="eager")
SMALL_GPT2 = dict(n_embd=64, n_layer=2, n_head=4, vocab_size=100, n_positions=64, attn_implementation="eager")


@pytest.mark.parametrize("name, make", [
    ("bert-tokens", lambda: transformers.BertForTokenClassification(transformers.BertConfig(
        **SMALL_ENCODER, max_position_embeddings=64, num_labels=5, attn_implementation="eager"))),
    ("bert-qa", lambda: transformers.BertForQuestionAnswering(transformers.BertConfig(
        **SMALL_ENCODER, max_position_embeddings=64, attn_implementation="eager"))),
    ("gpt2-tokens", lambda: transformers.GPT2ForTokenClassification(transformers.GPT2Config(
        **SMALL_GPT2, num_labels=5))),
    ("llama-tokens", lambda: transformers.LlamaForTokenClassification(transformers.LlamaConfig(
        **SMALL_LLAMA, num_labels=5))),
    ("llama-qa", lambda: transformers.LlamaForQuestionAnswering(transformers.LlamaConfig(**SMALL_LLAMA))),
    ("deberta-qa", lambda: transformers.DebertaV2ForQuestionAnswering(transformers.DebertaV2Config(**SMALL_DEBERTA))),
    ("t5-tokens", lambda: transformers.T5ForTokenClassification(transformers.T5Config(
        d_model=64, d_kv=12, d_ff=96, num_layers=2, num_heads=4, vocab_size=100, relative_attention_num_buckets=8,
        relative_attention_max_distance=10, num_labels=5, attn_implementation="eager")))])
def test_token_heads_match_transformers(imported, name, make):
    """*ForTokenClassification (logits per token: the `token_classifier` head) and *ForQuestionAnswering
    (start and end logits per token: the `span` head), compared at the real positions of a padded batch."""
    model, session, _ = imported(("tokens", name), lambda: randomise(make(), seed=8))
    outputs = [o.name for o in session.get_outputs() if not o.name.startswith("present.")]  # a decoder's cache
    assert outputs == (["start_logits", "end_logits"] if name.endswith("qa") else ["logits"])
    rng = np.random.default_rng(8)
    for batch, length in SHAPES:
        feeds = {"input_ids": rng.integers(2, 100, (batch, length)), "attention_mask": padded_mask(batch, length, 3)}
        if "token_type_ids" in [i.name for i in session.get_inputs()]:
            feeds["token_type_ids"] = rng.integers(0, 2, (batch, length))
        got = dict(zip(outputs, session.run(outputs, whole_input(session, feeds))))
        with torch.no_grad():
            want = model(**{k: torch.from_numpy(v) for k, v in feeds.items()})
        real = feeds["attention_mask"].astype(bool)
        for output in outputs:
            assert got[output].shape == tuple(getattr(want, output).shape)
            assert_close(got[output][real], getattr(want, output).numpy()[real], f"{name} {output} {batch}x{length}")


@pytest.mark.parametrize("make, message", [
    (lambda: transformers.DebertaV2ForSequenceClassification(transformers.DebertaV2Config(
        **SMALL_DEBERTA, pooler_hidden_size=32)), "pooler_hidden_size != hidden_size"),
    (lambda: transformers.BertForMultipleChoice(transformers.BertConfig(**SMALL_ENCODER)),
     "BertForMultipleChoice: multiple-choice heads"),
    # the prediction head of a masked LM, over a causal stack: not a masked LM
    (lambda: transformers.BertLMHeadModel(transformers.BertConfig(**SMALL_ENCODER, is_decoder=True)),
     "BERT with is_decoder=true"),
    (lambda: transformers.ReformerForSequenceClassification(transformers.ReformerConfig(
        hidden_size=32, num_attention_heads=2, attention_head_size=16, feed_forward_size=48, vocab_size=60,
        attn_layers=["lsh"], num_buckets=4, hash_seed=3, is_decoder=True, axial_pos_shape=(4, 8),
        axial_pos_embds_dim=(12, 20), max_position_embeddings=32)), "which has seen only itself")])
def test_import_refuses_task_heads_it_cannot_express(tmp_path, capsys, make, message):
    make().save_pretrained(tmp_path / "hf")
    assert main(["import-hf", str(tmp_path / "hf"), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert message in err and str(tmp_path / "hf") in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


MASKED_LMS = {
    "bert": lambda: transformers.BertForMaskedLM(transformers.BertConfig(
        **SMALL_ENCODER, max_position_embeddings=64, type_vocab_size=2, attn_implementation="eager")),
    "bert-untied": lambda: transformers.BertForMaskedLM(transformers.BertConfig(
        **SMALL_ENCODER, max_position_embeddings=64, hidden_act="gelu_new", tie_word_embeddings=False,
        attn_implementation="eager")),
    "nystromformer": lambda: transformers.NystromformerForMaskedLM(transformers.NystromformerConfig(
        **SMALL_ENCODER, max_position_embeddings=66, num_landmarks=4, segment_means_seq_len=16)),
    "deberta": lambda: transformers.DebertaV2ForMaskedLM(transformers.DebertaV2Config(**SMALL_DEBERTA)),
    "deberta-legacy-false": lambda: transformers.DebertaV2ForMaskedLM(transformers.DebertaV2Config(
        **SMALL_DEBERTA, legacy=False, hidden_act="relu")),
    # RoBERTa's head applies gelu whatever hidden_act is
    "longformer": lambda: transformers.LongformerForMaskedLM(transformers.LongformerConfig(
        **SMALL_ENCODER, max_position_embeddings=80, attention_window=4, pad_token_id=1, hidden_act="relu",
        attn_implementation="eager")),
    "funnel": lambda: transformers.FunnelForMaskedLM(transformers.FunnelConfig(
        vocab_size=100, block_sizes=[1, 2], num_decoder_layers=1, d_model=32, n_head=4, d_head=8, d_inner=48))}


@pytest.mark.parametrize("family", sorted(MASKED_LMS))
def test_masked_lm_matches_transformers(imported, family):
    """*ForMaskedLM: the `lm` head with the transform (dense, the config's activation, LayerNorm) and the
    vocabulary map tied to the word embeddings (or its own, untied) plus its bias; Funnel's map alone.
    logits (B, S, vocab) at the real positions of a padded batch (Nyströmformer: unpadded, at its
    landmark length)."""
    model, session, _ = imported(("masked-lm", family), lambda: randomise(MASKED_LMS[family](), seed=10))
    assert [o.name for o in session.get_outputs()] == ["logits"]
    rng = np.random.default_rng(10)
    for batch, length in [(1, 16), (3, 16)] if family == "nystromformer" else SHAPES:
        feeds = {"input_ids": rng.integers(2, 100, (batch, length)),
                 "attention_mask": padded_mask(batch, length, 0 if family == "nystromformer" else 3)}
        ours = dict(feeds)
        if "token_type_ids" in [i.name for i in session.get_inputs()]:
            feeds["token_type_ids"] = ours["token_type_ids"] = np.zeros_like(feeds["input_ids"])
        if family == "longformer":  # no global token: Hugging Face's default for masked LM
            ours["global_attention_mask"] = np.zeros_like(feeds["input_ids"])
        (got,) = session.run(["logits"], ours)
        with torch.no_grad():
            want = model(**{k: torch.from_numpy(v) for k, v in feeds.items()}).logits.numpy()
        assert got.shape == want.shape == (batch, length, 100)
        real = feeds["attention_mask"].astype(bool)
        assert_close(got[real], want[real], f"{family} logits {batch}x{length}")


@pytest.mark.parametrize("family, make", [
    ("gpt2", lambda: transformers.GPT2ForSequenceClassification(transformers.GPT2Config(
        **SMALL_GPT2, num_labels=3, pad_token_id=0))),
    ("llama", lambda: transformers.LlamaForSequenceClassification(transformers.LlamaConfig(
        **SMALL_LLAMA, num_labels=3, pad_token_id=0)))])
@pytest.mark.parametrize("side", ["right", "left"])
def test_decoder_sequence_classification_matches_transformers(imported, family, make, side):
    """A decoder's *ForSequenceClassification: `score` (no bias) at the last real token, imported as the
    `classifier` head with `dense: false` and `pooling: last`, compiled without a cache. Hugging Face
    takes the rightmost token that is not pad_token_id, the compiled model the rightmost position the
    attention mask marks: the same token in right- and left-padded batches whose padding is
    pad_token_id (and no real token is)."""
    model, session, folder = imported(("decoder-classify", family), lambda: randomise(make(), seed=11))
    assert [o.name for o in session.get_outputs()] == ["logits"]
    assert [i.name for i in session.get_inputs()] == ["input_ids", "attention_mask"]
    spec = (folder / "imported" / "spec.yaml").read_text()
    assert "generation:" not in spec and "dense: false" in spec and "pooling: last" in spec
    rng = np.random.default_rng(11)
    for batch, length in SHAPES:
        ids = rng.integers(1, 100, (batch, length))
        mask = np.ones((batch, length), np.int64)
        for row, pad in enumerate([3, 0, 5][:batch]):
            padded = slice(length - pad, length) if side == "right" else slice(0, pad)
            mask[row, padded], ids[row, padded] = 0, 0
        (got,) = session.run(["logits"], {"input_ids": ids, "attention_mask": mask})
        with torch.no_grad():
            want = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).logits.numpy()
        assert got.shape == (batch, 3)
        assert_close(got, want, f"{family} logits {batch}x{length}, {side} padding")


@pytest.mark.parametrize("model_class", ["T5ForSequenceClassification", "T5ForQuestionAnswering"])
def test_t5_task_heads_match_transformers(imported, model_class):
    """T5's sequence classifier (dense, tanh, out_proj at the eos) and question answering read the decoder,
    which Hugging Face feeds the input shifted right when given no decoder input: the compiled model is
    fed that shifted input and decoder_attention_mask = attention_mask, in a right-padded batch whose rows
    end with their eos (Hugging Face's classifier reads the last eos, ours the last real position)."""
    config = transformers.T5Config(d_model=64, d_kv=12, d_ff=96, num_layers=2, num_heads=4, vocab_size=100,
                                   relative_attention_num_buckets=8, relative_attention_max_distance=10,
                                   decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, num_labels=3,
                                   attn_implementation="eager")
    if model_class.endswith("Answering"):
        config.num_labels = 2
    model, session, _ = imported(("t5", model_class), lambda: randomise(getattr(transformers, model_class)(config),
                                                                         seed=12))
    outputs = [o.name for o in session.get_outputs()]
    assert outputs == (["logits"] if model_class.endswith("Classification") else ["start_logits", "end_logits"])
    rng = np.random.default_rng(12)
    for batch, length in SHAPES:
        ids, mask = rng.integers(2, 100, (batch, length)), padded_mask(batch, length, 3)
        ends = mask.sum(1) - 1
        ids[np.arange(batch), ends] = 1  # eos closes each row; pad (0) after it
        ids[mask == 0] = 0
        shifted = np.concatenate([np.zeros((batch, 1), ids.dtype), ids[:, :-1]], axis=1)
        got = session.run(outputs, {"input_ids": ids, "attention_mask": mask, "decoder_input_ids": shifted,
                                    "decoder_attention_mask": mask})
        with torch.no_grad():
            want = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))
        for name, ours in zip(outputs, got):
            theirs = getattr(want, name).numpy()
            assert ours.shape == theirs.shape
            real = mask.astype(bool) if theirs.ndim == 2 and theirs.shape == mask.shape else slice(None)
            assert_close(ours[real], theirs[real], f"{model_class} {name} {batch}x{length}")


@pytest.mark.parametrize("feed_forward", ["relu", "gated-gelu"])
def test_t5_matches_transformers(tmp_path, feed_forward):
    """Encoder-decoder with bucketed relative bias (bidirectional in the encoder, causal in the
    decoder, one table per stack), unscaled attention; lengths past max_distance hit the last
    buckets. Encoder padding is masked in both the encoder and the cross-attention."""
    config = transformers.T5Config(d_model=64, d_kv=12, d_ff=96, num_layers=2, num_decoder_layers=3,
                                   num_heads=4, vocab_size=100, relative_attention_num_buckets=8,
                                   relative_attention_max_distance=10, feed_forward_proj=feed_forward,
                                   decoder_start_token_id=0, attn_implementation="eager")
    model = randomise(transformers.T5Model(config), seed=3)
    session = import_and_compile(model, tmp_path)
    rng = np.random.default_rng(3)
    for batch, length in SHAPES:
        ids, decoder_ids = rng.integers(0, 100, (batch, length)), rng.integers(0, 100, (batch, length + 2))
        mask, decoder_mask = padded_mask(batch, length, 3), np.ones((batch, length + 2), np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask, "decoder_input_ids": decoder_ids,
                 "decoder_attention_mask": decoder_mask}
        got = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
        with torch.no_grad():
            want = model(**{k: torch.from_numpy(v) for k, v in feeds.items()})
        assert_close(got["last_hidden_state"], want.last_hidden_state.numpy(), f"decoder {batch}x{length}")
        real = mask.astype(bool)  # T5 leaves padded encoder positions unmasked as queries: compare real ones
        assert_close(got["encoder_last_hidden_state"][real], want.encoder_last_hidden_state.numpy()[real],
                     f"encoder {batch}x{length}")


@pytest.mark.parametrize("buckets", [8, 0])
def test_deberta_v2_matches_transformers(tmp_path, buckets):
    """Disentangled attention with log buckets (or plain clipping), relative embeddings with their
    LayerNorm, shared key projections, 1/√(3d). Compared at unpadded positions: DeBERTa zeroes
    padded positions after its embeddings (those positions' outputs are not defined by ours)."""
    config = transformers.DebertaV2Config(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                          intermediate_size=96, vocab_size=100, max_position_embeddings=64,
                                          relative_attention=True, position_buckets=buckets,
                                          max_relative_positions=12 if buckets else 6,
                                          norm_rel_ebd="layer_norm", share_att_key=True,
                                          pos_att_type=["p2c", "c2p"], position_biased_input=False,
                                          type_vocab_size=0, layer_norm_eps=1e-7, attn_implementation="eager")
    model = randomise(transformers.DebertaV2Model(config), seed=4)
    session = import_and_compile(model, tmp_path)
    rng = np.random.default_rng(4)
    for batch, length in SHAPES:
        ids, mask = rng.integers(0, 100, (batch, length)), padded_mask(batch, length, 3)
        (got,) = session.run(None, {"input_ids": ids, "attention_mask": mask})
        with torch.no_grad():
            want = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))
        real = mask.astype(bool)
        assert_close(got[real], want.last_hidden_state.numpy()[real], f"last_hidden_state {batch}x{length}")


@pytest.mark.parametrize("pad", [0, 3])
def test_longformer_matches_transformers(imported, pad):
    """Sliding window, global tokens from the global_attention_mask input with their own projections;
    lengths that are and are not a multiple of the window (Hugging Face pads to one inside)."""
    config = transformers.LongformerConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                           intermediate_size=128, vocab_size=100, max_position_embeddings=80,
                                           attention_window=[4, 8], pad_token_id=1, attn_implementation="eager")
    model, session, _ = imported("longformer", lambda: randomise(transformers.LongformerModel(config), seed=4))
    rng = np.random.default_rng(4)
    for batch, length in [(1, 12), (3, 13)]:
        ids = rng.integers(2, 100, (batch, length))
        mask = padded_mask(batch, length, pad)
        chosen = np.zeros((batch, length), np.int64)
        chosen[:, 0] = 1
        chosen[-1, 5] = 1  # a global token inside the sequence too
        got = session.run(None, {"input_ids": ids, "attention_mask": mask, "global_attention_mask": chosen})
        with torch.no_grad():
            want = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                         global_attention_mask=torch.from_numpy(chosen))
        real = mask.astype(bool)
        assert_close(got[0][real], want.last_hidden_state.numpy()[real], f"last_hidden_state {batch}x{length}")


@pytest.mark.parametrize("model_class, pad", [("FunnelModel", 0), ("FunnelModel", 3), ("FunnelBaseModel", 3)])
def test_funnel_matches_transformers(imported, model_class, pad):
    """Query pooling by mean with [CLS] kept apart and the last token truncated, the key mask pooled by
    its minimum, relative positions in tokens at every level, the segment term with [CLS] (type 2) in
    both segments, and (FunnelModel) the upsampling decoder with the first block's residual; even and
    odd lengths."""
    config = transformers.FunnelConfig(vocab_size=100, block_sizes=[2, 1, 2], num_decoder_layers=2, d_model=32,
                                       n_head=4, d_head=6, d_inner=48, hidden_act="gelu_new")
    model, session, _ = imported(model_class, lambda: randomise(getattr(transformers, model_class)(config), seed=5))
    rng = np.random.default_rng(5)
    for batch, length in [(1, 12), (3, 13)]:
        ids = rng.integers(0, 100, (batch, length))
        mask = padded_mask(batch, length, pad)
        types = np.concatenate([np.full((batch, 1), 2), np.sort(rng.integers(0, 2, (batch, length - 1)))], axis=1)
        got = session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})
        with torch.no_grad():
            want = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                         token_type_ids=torch.from_numpy(types)).last_hidden_state.numpy()
        assert got[0].shape == want.shape
        real = mask.astype(bool) if want.shape[1] == length else np.ones(want.shape[:2], bool)
        assert_close(got[0][real], want[real], f"{model_class} last_hidden_state {batch}x{length}")


@pytest.mark.parametrize("landmarks", [8, 4])
def test_nystromformer_matches_transformers(tmp_path, landmarks):
    """Segment-mean landmarks, six Newton-Schulz steps from Hugging Face's Z0 (pinv_scale: global), the
    per-head value convolution, at Hugging Face's one landmark length (segment_means_seq_len); batches of
    one and three (the global Z0 scale spans the batch)."""
    config = transformers.NystromformerConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                              intermediate_size=128, vocab_size=100, max_position_embeddings=66,
                                              num_landmarks=landmarks, segment_means_seq_len=32, conv_kernel_size=5)
    model = randomise(transformers.NystromformerModel(config), seed=6)
    session = import_and_compile(model, tmp_path)
    rng = np.random.default_rng(6)
    for batch in (1, 3):
        ids = rng.integers(0, 100, (batch, 32))
        mask, types = np.ones_like(ids), np.zeros_like(ids)
        got = session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})[0]
        with torch.no_grad():
            want = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                         token_type_ids=torch.from_numpy(types)).last_hidden_state.numpy()
        assert_close(got, want, f"nystromformer {landmarks} landmarks, batch {batch}")


def test_nystromformer_with_as_many_landmarks_as_tokens_is_refused(tmp_path, capsys):
    config = transformers.NystromformerConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                                              intermediate_size=64, vocab_size=50, num_landmarks=16,
                                              segment_means_seq_len=16)
    transformers.NystromformerModel(config).save_pretrained(tmp_path / "hf")
    assert main(["import-hf", str(tmp_path / "hf"), "-o", str(tmp_path / "out")]) == 1
    assert "plain attention plus the value convolution" in capsys.readouterr().err


@pytest.mark.parametrize("pad", [0, 5])
def test_bigbird_block_sparse_attention_matches_transformers(tmp_path, pad):
    """BigBird's block-sparse attention (Hugging Face's ITC: first and last block global, a window of
    three blocks, random blocks). Hugging Face draws no random blocks in eval mode (it gathers block
    0 in their place) and new ones per call in train mode, so its sampler is handed the compiled
    model's frozen layout: then both compute the same attention. The spec is BERT's import with
    the `bigbird` kind; at max_length, the one length at which Hugging Face's last block (it pads to
    whole blocks) and the layout's random blocks are both where the compiled model has them."""
    import yaml
    from safetensors.numpy import save_file

    from tfcompiler.importers.hf.checkpoint import Checkpoint
    from tfcompiler.importers.hf.encoders import bert
    from tfcompiler.ir.patterns import Blocks

    block, random_blocks, length = 4, 2, 48  # Hugging Face attends densely up to (5 + 2·random)·block = 36 tokens
    config = transformers.BigBirdConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                        intermediate_size=128, vocab_size=100, max_position_embeddings=length,
                                        type_vocab_size=2, attention_type="block_sparse", block_size=block,
                                        num_random_blocks=random_blocks, hidden_act="gelu")
    model = randomise(transformers.BigBirdModel(config), seed=9)
    weights = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    body, ours = bert(config.to_dict(), Checkpoint(weights, "BigBirdModel"))
    body["block"]["attention"] = {"kind": "bigbird", "block": block, "window_blocks": 3, "global_blocks": 1,
                                  "trailing_global_blocks": 1, "random_blocks": random_blocks, "seed": 11}
    spec = parse_spec(yaml.safe_dump({"tfc": 1, "name": "bigbird", "topology": "encoder", **body}), "bigbird.yaml")
    save_file({k: np.ascontiguousarray(v, np.float32) for k, v in ours.items()}, str(tmp_path / "w.safetensors"))
    compiled = compile_spec(spec, weights=str(tmp_path / "w.safetensors"))
    session = ort.InferenceSession(compiled.model.serialize())

    layouts = [np.asarray(compiled.graph.op(n).attrs["pattern"].layout) for n in compiled.graph.topological()
               if isinstance(compiled.graph.op(n).attrs.get("pattern"), Blocks)]
    assert len(layouts) == 2
    n = length // block
    for layer, layout in zip(model.encoder.layer, layouts):
        rows = []
        for row in range(1, n - 1):  # Hugging Face's random blocks: every row but the global first and last
            drawn = sorted(set(np.flatnonzero(layout[row])) - {0, n - 1, row - 1, row, row + 1})
            assert len(drawn) == random_blocks
            rows.append(drawn)
        layer.attention.self._bigbird_block_rand_mask_with_head = \
            lambda drawn=np.array(rows, np.int32), **_: [drawn] * config.num_attention_heads

    rng = np.random.default_rng(9)
    ids, types = rng.integers(0, 100, (2, length)), rng.integers(0, 2, (2, length))
    mask = padded_mask(2, length, pad)
    got = session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})
    with torch.no_grad():
        want = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                     token_type_ids=torch.from_numpy(types))
    real = mask.astype(bool)
    assert_close(got[0][real], want.last_hidden_state.numpy()[real], "last_hidden_state")


@pytest.mark.parametrize("model_class, pad, layers", [
    ("ReformerModelWithLMHead", 0, ["lsh", "lsh"]), ("ReformerModelWithLMHead", 3, ["local", "lsh"]),
    ("ReformerModel", 3, ["lsh", "lsh"]), ("ReformerForSequenceClassification", 3, ["lsh", "lsh"]),
    ("ReformerForQuestionAnswering", 3, ["lsh", "lsh"])])
def test_reformer_matches_transformers(tmp_path, model_class, pad, layers):
    """ReformerModelWithLMHead (causal), ReformerModel and its sequence classifier (dense from both
    streams of the first token, tanh, out_proj: the `classifier` head) and question answering (over both
    streams: the `span` head): reversible blocks of LSH attention (and local
    attention in the decoder), axial positions, chunked FFN, at whole chunks longer than one chunk
    (shorter inputs Hugging Face pads or attends in full). Hugging Face draws its rotations from hash_seed
    on every call; the import draws
    the same ones. Hugging Face runs in float64 here, its rotations drawn in float32 as the import
    draws them: in float32 its probabilities, exp(score - logsumexp), of a query that sees only itself
    (a decoder's first position, at the -1e5 self-mask) sum to 0.998, where ours sum to 1."""
    from unittest import mock

    decoder = model_class == "ReformerModelWithLMHead"
    config = transformers.ReformerConfig(
        hidden_size=32, num_attention_heads=2, attention_head_size=16, feed_forward_size=48, vocab_size=60,
        attn_layers=layers, num_buckets=4, num_hashes=2, lsh_attn_chunk_length=4, local_attn_chunk_length=4,
        hash_seed=3,
        is_decoder=decoder, axial_pos_embds=True, axial_pos_shape=(4, 8), axial_pos_embds_dim=(12, 20),
        max_position_embeddings=32, hidden_act="relu", chunk_size_feed_forward=4, pad_token_id=0,
        tie_word_embeddings=False, num_labels=2 if model_class.endswith("Answering") else 3)
    model = randomise(getattr(transformers, model_class)(config), seed=4)
    session = import_and_compile(model, tmp_path)
    model.double()
    draw = torch.randn

    def float32_draw(*shape, dtype=None, **kwargs):
        return draw(*shape, dtype=torch.float32, **kwargs).to(dtype or torch.float32)

    rng = np.random.default_rng(1)
    for batch, length in [(1, 8), (3, 16)]:
        ids = rng.integers(0, 60, (batch, length))
        mask = padded_mask(batch, length, pad)
        outputs = [o.name for o in session.get_outputs()]
        got = session.run(None, {"input_ids": ids, "attention_mask": mask})
        with torch.no_grad(), mock.patch.object(torch, "randn", float32_draw):
            out = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask), use_cache=False)
        for name, ours in zip(outputs, got):
            want = getattr(out, name).numpy()
            assert ours.shape == want.shape
            # padded positions' outputs are not defined
            real = mask.astype(bool) if want.shape[:2] == mask.shape else np.ones(want.shape[:1], bool)
            assert_close(ours[real], want[real], f"{model_class} {name} {batch}x{length}, pad {pad}")
