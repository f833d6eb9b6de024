"""The generate loop of the deploy runtime (tfc_runtime.Generator): greedy decoding equals the argmax of
a full forward step by step; a KV cache (kept in onnxruntime) gives the fallback's tokens; left-padded
rows equal the rows alone; end-of-sequence, min_new_tokens and every logits processor behave as
Hugging Face transformers' own; seeded sampling is reproducible and draws the softmax's frequencies;
`tfc generate` prints JSON and clear errors."""
from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from conftest import ROOT, tiny_spec
from kv_toy import VOCAB, toy_decoder
from tfc_runtime import Generator, Model, random_inputs
from tfc_runtime.generation_logits import Choice, pick, process
from tfc_runtime.generation_step import present_of

from tfcompiler import compile_spec, parse_spec
from tfcompiler.language.shrink import shrink_spec
from tfcompiler.cli import main

LLAMA = """\
tfc: 1
name: tiny-llama
topology: decoder
model: {width: 32, heads: 4, kv_heads: 2, ffn_width: 48, vocab_size: 50, max_length: 32, bias: false}
positional: {kind: rope, layout: half_split, base: 10000}
block: {placement: pre, norm: {kind: rms_norm, epsilon: 1e-5}, ffn: {activation: swiglu}}
decoder: {layers: 2}
head: {kind: lm, tied: false}
"""
WINDOW = LLAMA.replace("name: tiny-llama", "name: tiny-window").replace(
    "block: {", "block: {attention: {kind: sliding_window, window: 3}, ")
BLOCKS = LLAMA.replace("name: tiny-llama", "name: tiny-blocks").replace(
    "block: {", "block: {attention: {kind: block_local, block: 2}, ")  # blocks counted from the first column
SPECS = {"gpt2-like": tiny_spec(), "llama-like": LLAMA, "llama-window": WINDOW, "llama-blocks": BLOCKS}
PROMPTS = [[3, 4, 5, 6, 7], [8, 9], [10, 11, 12]]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Path per name: the compiled tiny specs and the hand-written toy decoder (cached, windowed, with a
    running state), each with its uncached twin (`NAME-full`: compiled --no-cache)."""
    folder, paths = tmp_path_factory.mktemp("generate"), {}
    for name, text in SPECS.items():
        for cache in (True, False):
            paths[name + ("" if cache else "-full")] = folder / f"{name}-{cache}.onnx"
            compile_spec(parse_spec(text), cache=cache).model.save(paths[name + ("" if cache else "-full")])
    paths["llama-like-ort"] = folder / "llama-ort.onnx"  # GroupQueryAttention: presents share the pasts' buffers
    compile_spec(parse_spec(LLAMA), target="ort-cpu").model.save(paths["llama-like-ort"])
    for name, options in {"toy": {}, "toy-window": {"window": 3}, "toy-state": {"state": True}}.items():
        for cache in (True, False):
            paths[name + ("" if cache else "-full")] = folder / f"{name}-{cache}.onnx"
            paths[name + ("" if cache else "-full")].write_bytes(toy_decoder(cache, **options))
    return paths


def reference_greedy(path, prompts: list[list[int]], steps: int) -> np.ndarray:
    """Each row alone, `steps` times: its whole sequence through onnxruntime, argmax of the last logits;
    then the rows left-padded with 0s into one array."""
    session = ort.InferenceSession(str(path))
    rows = []
    for prompt in prompts:
        ids = np.array([prompt], np.int64)
        for _ in range(steps):
            feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids),
                     "position_ids": np.arange(ids.shape[1])[None]}
            for i in session.get_inputs():  # empty pasts: the cached form recomputes everything too
                if i.name.startswith("past_"):
                    feeds[i.name] = np.zeros([1 if "batch" in str(d) else 0 if isinstance(d, str) else d
                                              for d in i.shape], np.float32)
            logits = session.run(["logits"], {i.name: feeds[i.name] for i in session.get_inputs()})[0]
            ids = np.concatenate([ids, logits[:, -1:].argmax(-1)], axis=1)
        rows.append(ids[0])
    width = max(map(len, rows))
    return np.array([[0] * (width - len(row)) + row.tolist() for row in rows])


@pytest.mark.parametrize("name", ["gpt2-like", "llama-like", "llama-window", "gpt2-like-full", "llama-like-ort", "toy",
                                  "toy-window", "toy-state-full"])
def test_greedy_is_the_argmax_of_the_full_forward_step_by_step(models, name):
    out = Generator(models[name]).generate(PROMPTS, max_new_tokens=6)
    np.testing.assert_array_equal(out, reference_greedy(models[name], PROMPTS, 6))


@pytest.mark.parametrize("name", ["gpt2-like", "llama-like", "llama-window", "toy", "toy-window", "toy-state"])
def test_the_cache_gives_the_fallbacks_tokens_and_logits(models, name):
    cached, full = Generator(models[name]), Generator(models[name + "-full"])
    assert cached.cached and not full.cached
    options = dict(max_new_tokens=12, output_logits=True, return_dict_in_generate=True)
    fast = cached.generate(PROMPTS, **options)
    for slow in (full.generate(PROMPTS, **options), cached.generate(PROMPTS, use_cache=False, **options)):
        np.testing.assert_array_equal(fast.sequences, slow.sequences)
        np.testing.assert_allclose(np.stack(fast.logits), np.stack(slow.logits), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["gpt2-like", "llama-like", "llama-window", "gpt2-like-full", "llama-blocks",
                                  "llama-blocks-full", "llama-like-ort", "toy", "toy-window", "toy-full"])
def test_left_padded_rows_equal_the_rows_alone(models, name):
    generator = Generator(models[name])
    batch = generator.generate(PROMPTS, max_new_tokens=8)
    width = max(map(len, PROMPTS))
    for row, prompt in zip(batch, PROMPTS):
        alone = generator.generate([prompt], max_new_tokens=8)[0]
        np.testing.assert_array_equal(row[width - len(prompt):], alone)


def test_a_shared_cache_buffer_gives_the_growing_caches_logits(models, monkeypatch):
    """GroupQueryAttention appends into one preallocated buffer per past, bound once as past and present;
    prompts read in chunks (PREFILL_CHUNK made small) and left-padded rows give the portable model's logits."""
    import tfc_runtime.generation_step as step

    made = []
    monkeypatch.setattr(step, "PREFILL_CHUNK", 2)
    monkeypatch.setattr(step.CachedSteps, "__init__", lambda self, *args, _init=step.CachedSteps.__init__: (
        _init(self, *args), made.append(self))[0])
    options = dict(max_new_tokens=7, output_logits=True, return_dict_in_generate=True)
    shared = Generator(models["llama-like-ort"]).generate(PROMPTS, **options)
    assert made[0].shared == {f"present.{i}.{kind}" for i in range(2) for kind in ("key", "value")}
    assert made[0].outputs == [] and made[0].values["present.0.key"].shape()[2] == 5 + 7  # the prompt + new tokens
    growing = Generator(models["llama-like"]).generate(PROMPTS, **options)
    assert not made[1].shared
    np.testing.assert_array_equal(shared.sequences, growing.sequences)
    np.testing.assert_allclose(np.stack(shared.logits), np.stack(growing.logits), rtol=1e-4, atol=1e-4)


def test_the_repetition_penalty_leaves_the_padding_out(models):
    generator = Generator(models["toy"])
    alone = generator.generate([[8, 9]], max_new_tokens=4, repetition_penalty=1000.0)
    pad = int(alone[0, 2])  # penalized in the padded row, were the padding counted as seen
    batch = generator.generate([[8, 9], [3, 4, 5]], max_new_tokens=4, repetition_penalty=1000.0, pad_token_id=pad)
    np.testing.assert_array_equal(batch[0], [pad] + alone[0].tolist())


@pytest.mark.parametrize("name", ["lstm-lm", "transformer-xl-decoder", "compressive-transformer"])
def test_carried_states_and_segment_memories_step(name, tmp_path):
    """Recurrent layers carry their states (past_state.N.h) a step at a time, segment memories a segment
    (here a token) at a time (tests/test_recurrence.py checks those against their reference); padded
    rows equal the rows alone (a memory's batch runs in groups of equal padding)."""
    from tfcompiler.language.shrink import shrink_text

    compile_spec(parse_spec(shrink_text((ROOT / "specs" / f"{name}.yaml").read_text()))).model.save(tmp_path / "m.onnx")
    generator = Generator(tmp_path / "m.onnx")
    assert generator.layout.carried and generator.cached
    batch = generator.generate(PROMPTS, max_new_tokens=6)
    for row, prompt in zip(batch, PROMPTS):
        np.testing.assert_array_equal(row[5 - len(prompt):], generator.generate([prompt], max_new_tokens=6)[0])


def test_an_array_with_a_mask_is_left_padded_inside(models):
    generator = Generator(models["toy"])
    right = np.array([[8, 9, 0, 0, 0], [3, 4, 5, 6, 7]])
    mask = np.array([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1]])
    out = generator.generate(right, attention_mask=mask, max_new_tokens=4, pad_token_id=0)
    np.testing.assert_array_equal(out, generator.generate([[8, 9], [3, 4, 5, 6, 7]], max_new_tokens=4,
                                                          pad_token_id=0))
    assert out[0, :3].tolist() == [0, 0, 0]


def test_end_of_sequence_stops_each_row_and_pads_it(models):
    generator = Generator(models["toy"])
    free = generator.generate(PROMPTS, max_new_tokens=10)
    eos = int(free[0, 5 + 2])  # row 0's third new token
    out = generator.generate(PROMPTS, max_new_tokens=10, eos_token_id=eos, pad_token_id=1)
    ends = []
    for row, free_row in zip(out[:, 5:], free[:, 5:]):
        hits = np.flatnonzero(free_row == eos)
        end = hits[0] + 1 if hits.size else 10
        ends.append(end)
        np.testing.assert_array_equal(row[:end], free_row[:end])  # the same tokens up to its end ...
        assert (row[end:] == 1).all()  # ... then padding
    assert out.shape[1] == 5 + max(ends) and ends[0] == 3  # stops when every row has ended


def test_every_row_ending_stops_early_and_pad_defaults_to_eos(models):
    generator = Generator(models["toy"])
    first = generator.generate([[3, 4]], max_new_tokens=1)[0, -1]
    out = generator.generate([[3, 4]], max_new_tokens=10, eos_token_id=[int(first), 99])
    assert out.tolist() == [[3, 4, first]]
    result = generator.generate([[3, 4], [5]], max_new_tokens=3, eos_token_id=int(first),
                                return_dict_in_generate=True)
    assert result.rows()[0] == [3, 4, first]  # cut after its end of sequence, padding gone
    assert result.sequences[0, 3:].tolist() == [first] * (result.sequences.shape[1] - 3)


def test_min_new_tokens_forbids_the_end_until_then(models):
    generator = Generator(models["toy"])
    first = int(generator.generate([[3, 4]], max_new_tokens=1)[0, -1])
    out = generator.generate([[3, 4]], max_new_tokens=6, min_new_tokens=3, eos_token_id=first)
    assert first not in out[0, 2:5].tolist()
    assert out.shape[1] <= 2 + 6


def test_a_streamer_gets_the_prompt_then_each_step(models):
    class Recorder:
        def __init__(self):
            self.calls, self.ended = [], False

        def put(self, ids):
            self.calls.append(np.array(ids))

        def end(self):
            self.ended = True

    recorder = Recorder()
    out = Generator(models["toy"]).generate(PROMPTS, max_new_tokens=4, streamer=recorder)
    assert recorder.ended and len(recorder.calls) == 5
    np.testing.assert_array_equal(np.concatenate([recorder.calls[0]] + [c[:, None] for c in recorder.calls[1:]], 1),
                                  out)


def test_max_length_caps_the_total_and_refuses_longer_prompts(models):
    generator = Generator(models["toy"])
    assert generator.generate(PROMPTS, max_new_tokens=10, max_length=7).shape == (3, 7)
    with pytest.raises(ValueError, match="more than the model's max_length 4"):
        generator.generate(PROMPTS, max_length=4)


def test_a_model_folder_gives_its_special_tokens(models, tmp_path):
    (tmp_path / "model.onnx").write_bytes(models["toy"].read_bytes())
    free = Generator(tmp_path).generate([[3, 4]], max_new_tokens=4)
    (tmp_path / "generation.json").write_text(json.dumps({"eos_token_id": int(free[0, 3])}))
    assert Generator(tmp_path).generate([[3, 4]], max_new_tokens=4).tolist() == [free[0, :4].tolist()]


# --- the logits processors against Hugging Face transformers' own -----------------------------------------

def hf_processors(choice: Choice, prompt_width: int, padding: list[int], eos: list[int]):
    transformers = pytest.importorskip("transformers")
    import torch
    from transformers.generation import logits_process as lp

    processors = []
    if choice.repetition_penalty != 1.0:
        processors.append(lp.RepetitionPenaltyLogitsProcessor(choice.repetition_penalty,
                                                              prompt_ignore_length=torch.tensor(padding)))
    if choice.min_new_tokens:
        processors.append(lp.MinNewTokensLengthLogitsProcessor(prompt_width, choice.min_new_tokens, eos))
    if choice.do_sample:
        if choice.temperature != 1.0:
            processors.append(lp.TemperatureLogitsWarper(choice.temperature))
        if choice.top_k:
            processors.append(lp.TopKLogitsWarper(choice.top_k))
        if choice.top_p < 1.0:
            processors.append(lp.TopPLogitsWarper(choice.top_p))
    return transformers.LogitsProcessorList(processors)


@pytest.mark.parametrize("choice", [
    Choice(repetition_penalty=1.7), Choice(repetition_penalty=0.6), Choice(min_new_tokens=3),
    Choice(do_sample=True, temperature=0.7, top_k=0), Choice(do_sample=True, top_k=5),
    Choice(do_sample=True, top_k=0, top_p=0.8), Choice(do_sample=True, top_k=0, top_p=0.0),
    Choice(do_sample=True, temperature=1.3, top_k=7, top_p=0.6, repetition_penalty=1.2, min_new_tokens=9),
], ids=repr)
def test_processors_match_transformers(choice):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    scores = (rng.standard_normal((4, 40)) * 3).astype(np.float32)
    ids = rng.integers(0, 40, (4, 9))
    padding = [0, 2, 5, 1]  # left padding of each row's prompt (6 columns), then 3 generated tokens
    seen = np.zeros(scores.shape, bool)
    for row, pad in zip(range(4), padding):
        seen[row, ids[row, pad:]] = True
    eos = np.array([ids[0, 7], 39])
    ours = process(scores, choice, seen, new_tokens=3, eos=eos)
    theirs = hf_processors(choice, 6, padding, eos.tolist())(torch.tensor(ids), torch.tensor(scores)).numpy()
    np.testing.assert_array_equal(np.isinf(ours), np.isinf(theirs))
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)
    filters = choice.min_new_tokens > 3 or (choice.do_sample and (choice.top_k > 0 or choice.top_p < 1))
    assert bool(np.isinf(ours).any()) == filters  # the comparison saw some filtering where there is some


@pytest.mark.parametrize("k", [1, 7, 300, 1000])
def test_top_k_keeps_ties_and_matches_transformers_on_a_large_vocabulary(k):
    torch = pytest.importorskip("torch")
    from transformers.generation.logits_process import TopKLogitsWarper

    rng = np.random.default_rng(k)
    scores = np.concatenate([rng.integers(0, 40, (2, 1000)), rng.standard_normal((1, 1000))]).astype(np.float32)
    ours = process(scores, Choice(do_sample=True, top_k=k), None, 0, np.array([]))
    theirs = TopKLogitsWarper(k)(None, torch.tensor(scores)).numpy()
    np.testing.assert_array_equal(ours, theirs)
    assert (np.isfinite(ours).sum(1)[:2] > k).any() or k == 1000  # ties at the k-th score were kept


def test_seeded_sampling_is_reproducible_and_draws_the_softmax(models):
    generator = Generator(models["toy"])
    options = dict(max_new_tokens=8, do_sample=True, top_k=0)
    first = generator.generate(PROMPTS, seed=7, **options)
    np.testing.assert_array_equal(first, generator.generate(PROMPTS, seed=7, **options))
    assert not np.array_equal(first, generator.generate(PROMPTS, seed=8, **options))

    logits = np.log(np.array([[0.4, 0.25, 0.15, 0.1, 0.06, 0.04]], np.float32))
    draws = pick(np.repeat(logits, 20000, axis=0), np.random.default_rng(0))
    counts, expected = np.bincount(draws, minlength=6), 20000 * np.exp(logits[0])
    chi_square = float(((counts - expected) ** 2 / expected).sum())
    assert chi_square < 30, (counts, expected)  # 5 degrees of freedom: p < 2e-5 of a false alarm
    kept = pick(np.repeat(process(logits, Choice(do_sample=True, top_k=2), None, 0, np.array([])), 2000, 0),
                np.random.default_rng(1))
    assert set(np.unique(kept)) == {0, 1}


# --- bad input, the runtime's model wrapper, the CLI ------------------------------------------------------

@pytest.mark.parametrize("prompts, options, message", [
    ([[3, 4], []], {}, r"input_ids\[1\]: the prompt is empty"),
    ([3, 4], {}, r"input_ids\[0\]: expected a list of token ids"),
    ("3 4", {}, "input_ids: expected a list of token-id lists"),
    ([[3, VOCAB]], {}, r"token 23 is outside the vocabulary \[0, 23\)"),
    ([[3, 4.5]], {}, "expected a list of token ids"),
    (np.array([[3, 4]]), {"attention_mask": np.array([[1, 2]])}, "attention_mask: expected 0s and 1s"),
    ([[3]], {"temperature": 0}, "temperature: expected a number > 0"),
    ([[3]], {"top_p": 1.5}, r"top_p: expected a number in \[0, 1\]"),
    ([[3]], {"top_k": -1}, "top_k: expected an integer >= 0"),
    ([[3]], {"max_new_tokens": 0}, "max_new_tokens: expected an integer >= 1"),
    ([[3]], {"eos_token_id": "2"}, "eos_token_id: expected a token id"),
    ([[3]], {"streamer": object()}, "streamer: expected an object with put"),
    ([[3]], {"top_q": 0.5}, "unknown option 'top_q'; did you mean 'top_p'"),
])
def test_bad_input_is_a_clear_value_error(models, prompts, options, message):
    with pytest.raises(ValueError, match=message):
        Generator(models["toy"]).generate(prompts, **options)


def test_each_past_is_fed_by_its_present():
    pairs = {"past_key_values.3.key": "present.3.key", "past_key_values.0.value": "present.0.value",
             "past_state.2.s": "present_state.2.s", "past_memories.1": "present_memories.1",
             "past_states.0.h": "present_states.0.h"}
    assert {past: present_of(past) for past in pairs} == pairs


def test_a_past_without_its_present_is_refused(models, tmp_path):
    model = onnx.load(str(models["toy"]))
    for node in model.graph.node:
        node.output[:] = ["kept_value" if o == "present.0.value" else o for o in node.output]
    next(o for o in model.graph.output if o.name == "present.0.value").name = "kept_value"
    onnx.save(model, tmp_path / "unpaired.onnx")
    with pytest.raises(ValueError, match=r"inputs \['past_key_values.0.value'\] have no `present` output"):
        Generator(tmp_path / "unpaired.onnx")


def test_an_encoder_is_refused(tmp_path):
    compile_spec(parse_spec(tiny_spec("encoder", head="lm"))).model.save(tmp_path / "encoder.onnx")
    with pytest.raises(ValueError, match="needs a decoder-only model, or an encoder-decoder's folder .*; this one "
                                         "is encoder"):
        Generator(tmp_path / "encoder.onnx")


def test_random_inputs_start_a_cached_model_empty(models):
    model = Model(models["toy"])
    feeds = random_inputs(model, batch=2, sequence=5)
    assert feeds["past_key_values.0.key"].shape == (2, 1, 0, 8) and feeds["attention_mask"].shape == (2, 5)
    np.testing.assert_array_equal(feeds["position_ids"], [[0, 1, 2, 3, 4]] * 2)
    assert model.run(feeds)["logits"].shape == (2, 5, VOCAB)
    last = model.run(feeds, logits_to_keep=np.array(1))
    assert last["logits"].shape == (2, 1, VOCAB) and last["present.0.key"].shape == (2, 1, 5, 8)


def test_cli_prints_json_rows(models, capsys):
    assert main(["generate", str(models["toy"]), "--input-ids", json.dumps(PROMPTS), "--max-new-tokens", "3",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    expected = Generator(models["toy"]).generate(PROMPTS, max_new_tokens=3, return_dict_in_generate=True).rows()
    assert out["sequences"] == expected and [len(r) for r in expected] == [8, 5, 6]
    assert out["tokens_per_second"] > 0


@pytest.mark.parametrize("argv, message", [
    (["--input-ids", "[[3, 4"], "--input-ids: not valid JSON"),
    (["--input-ids", "[[3, 99]]"], "token 99 is outside the vocabulary"),
    (["--prompt", "hello"], "--prompt needs a tokenizer"),
    (["--input-ids", "[[3]]", "--temperature", "-1", "--do-sample"], "temperature: expected a number > 0"),
])
def test_cli_errors_are_one_line(models, capsys, argv, message):
    assert main(["generate", str(models["toy"]), *argv]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_cli_unknown_model_file(tmp_path, capsys):
    assert main(["generate", str(tmp_path / "none.onnx"), "--input-ids", "[[1]]"]) == 1
    assert "no such model file or folder" in capsys.readouterr().err


def test_cli_prompt_text_through_the_folders_tokenizer(models, tmp_path, capsys):
    tokenizers = pytest.importorskip("tokenizers")
    words = {f"w{i}": i for i in range(VOCAB)}
    tokenizer = tokenizers.Tokenizer(tokenizers.models.WordLevel(words, unk_token="w0"))
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tokenizer.decoder = tokenizers.decoders.WordPiece()  # joins words with spaces
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    (tmp_path / "model.onnx").write_bytes(models["toy"].read_bytes())
    assert main(["generate", str(tmp_path), "--prompt", "w3 w4 w5", "--max-new-tokens", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    expected = Generator(models["toy"]).generate([[3, 4, 5]], max_new_tokens=2)[0].tolist()
    assert out["sequences"] == [expected] and out["texts"] == [" ".join(f"w{i}" for i in expected)]


def test_the_terminal_view_streams_new_tokens(capsys):
    from tfcompiler.cli import _TokenEcho

    echo = _TokenEcho(None)
    for ids in ([[3, 4]], [11], [12]):
        echo.put(np.array(ids))
    echo.end()
    assert capsys.readouterr().out == "11 12\n"


# --- against Hugging Face's own generate, on an imported GPT-2 and Llama ----------------------------------

def hf_model(kind: str, transformers):
    """No special tokens: each side stops only at the eos the test gives."""
    ids = dict(eos_token_id=None, bos_token_id=None, pad_token_id=None)
    if kind == "gpt2":
        return transformers.GPT2LMHeadModel(transformers.GPT2Config(
            n_embd=32, n_layer=2, n_head=4, vocab_size=60, n_positions=64, attn_implementation="eager", **ids))
    return transformers.LlamaForCausalLM(transformers.LlamaConfig(
        hidden_size=32, intermediate_size=48, num_attention_heads=4, num_key_value_heads=2, num_hidden_layers=2,
        vocab_size=60, max_position_embeddings=64, attn_implementation="eager", **ids))


@pytest.mark.parametrize("kind, options", [("gpt2", {}), ("gpt2", {"repetition_penalty": 1.3, "min_new_tokens": 4}),
                                           ("llama", {})])
def test_greedy_generation_matches_transformers(tmp_path, kind, options):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from test_parity_hf import import_and_compile, randomise

    hf = randomise(hf_model(kind, transformers), seed=3)
    import_and_compile(hf, tmp_path)
    generator = Generator(tmp_path / "model.onnx")
    assert generator.cached and generator.layout.positions
    prompts = [[3, 4, 5, 6], [7, 8]]
    padded = [[0] * (4 - len(p)) + p for p in prompts]
    mask = [[0] * (4 - len(p)) + [1] * len(p) for p in prompts]

    def theirs(eos):
        with torch.no_grad():
            return hf.generate(torch.tensor(padded), attention_mask=torch.tensor(mask), max_new_tokens=10,
                               do_sample=False, num_beams=1, eos_token_id=eos, pad_token_id=1, **options).numpy()

    free = theirs(None)
    eos = int(free[0, 4 + 5])  # row 0 ends at its sixth new token (min_new_tokens allowing)
    want = theirs(eos)
    assert (want[0, 4 + 6:] == 1).all() and want.shape[1] <= 14
    got = generator.generate(prompts, max_new_tokens=10, eos_token_id=eos, pad_token_id=1, **options)
    np.testing.assert_array_equal(got[:, 4:], want[:, 4:])
    np.testing.assert_array_equal(generator.generate(prompts, max_new_tokens=10, **options)[:, 4:], free[:, 4:])


# --- an encoder-decoder: two models in one folder ---------------------------------------------------------

@pytest.fixture(scope="module", params=["plain", "memory_slots", "lstm_from_encoder"])
def seq2seq(tmp_path_factory, request):
    """A folder with the tiny encoder-decoder's encoder and decoder models (and its start token), and the
    one-graph model, which recomputes everything from the source and the whole decoder sequence; with
    Memformer's slots in the encoder too (a source is a first segment: the learned slots); or LSTMs whose
    decoder starts from the encoder's last states (the encoder model hands them over)."""
    folder = tmp_path_factory.mktemp("seq2seq")
    slots = ", memory_slots: {count: 3, forgetting: gru}" if request.param == "memory_slots" else ""
    spec = parse_spec(tiny_spec("encoder-decoder").replace("encoder: {layers: 2", "encoder: {layers: 2" + slots))
    if request.param == "lstm_from_encoder":
        spec = shrink_spec(ROOT / "specs" / "lstm-seq2seq.yaml")
    for part in ("encoder", "decoder"):
        compile_spec(spec, part=part).model.save(folder / f"{part}_model.onnx")
    (folder / "generation.json").write_text(json.dumps({"decoder_start_token_id": 1}))
    compile_spec(spec).model.save(folder.parent / "whole.onnx")
    return folder, folder.parent / "whole.onnx"


def test_an_encoder_decoder_generates_the_one_graph_models_argmax(seq2seq):
    folder, whole = seq2seq
    sources = [[3, 4, 5, 6, 7], [8, 9], [10, 11, 12]]
    result = Generator(folder).generate(sources, max_new_tokens=6, return_dict_in_generate=True, output_logits=True)
    session = ort.InferenceSession(str(whole))
    slots = {i.name: np.zeros((1, 0, 32), np.float32) for i in session.get_inputs() if i.name == "past_memory_slots"}
    for row, source in enumerate(sources):  # the reference: each source alone, its whole target each step
        target = np.array([[1]])
        for step in range(6):
            (logits,) = session.run(["logits"], {**slots, "input_ids": np.array([source]),
                                                 "attention_mask": np.ones((1, len(source)), np.int64),
                                                 "decoder_input_ids": target,
                                                 "decoder_attention_mask": np.ones_like(target)})
            np.testing.assert_allclose(result.logits[step][row], logits[0, -1], rtol=1e-4, atol=1e-4)
            target = np.concatenate([target, logits[:, -1:].argmax(-1)], axis=1)
        np.testing.assert_array_equal(result.sequences[row], target[0])


def test_an_encoder_decoder_without_its_cache_gives_the_same(seq2seq):
    generator = Generator(seq2seq[0])
    sources = [[3, 4, 5, 6, 7], [8, 9]]
    np.testing.assert_array_equal(generator.generate(sources, max_new_tokens=5),
                                  generator.generate(sources, max_new_tokens=5, use_cache=False))
    with pytest.raises(ValueError, match="decoder_start_token_id: expected a token id"):
        generator.generate(sources, decoder_start_token_id="1")


@pytest.mark.parametrize("tied", [True, False])
def test_greedy_t5_generation_matches_transformers(tmp_path, tied):
    """T5ForConditionalGeneration imported with its LM head (tied: the decoder's output scaled by
    d_model^-0.5), compiled to a folder of two models: the same greedy tokens as transformers' generate
    for sources of different lengths, starting from decoder_start_token_id."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from test_parity_hf import randomise

    config = transformers.T5Config(d_model=32, d_kv=8, d_ff=48, num_layers=2, num_decoder_layers=2, num_heads=4,
                                   vocab_size=60, relative_attention_num_buckets=8, relative_attention_max_distance=10,
                                   decoder_start_token_id=0, pad_token_id=0, eos_token_id=None,
                                   tie_word_embeddings=tied, feed_forward_proj="relu" if tied else "gated-gelu",
                                   attn_implementation="eager")
    hf = randomise(transformers.T5ForConditionalGeneration(config), seed=4)
    hf.save_pretrained(tmp_path / "hf")
    assert main(["import-hf", str(tmp_path / "hf"), "-o", str(tmp_path / "imported")]) == 0
    assert main(["compile", str(tmp_path / "imported" / "spec.yaml"), "--weights",
                 str(tmp_path / "imported" / "weights.safetensors"), "-o", f"{tmp_path}/t5/", "-q"]) == 0
    files = {p.name for p in (tmp_path / "t5").iterdir()}
    assert {"encoder_model.onnx", "decoder_model.onnx", "generation.json"} <= files
    sources = [[3, 4, 5, 6, 7], [8, 9]]
    padded = np.array([s + [0] * (5 - len(s)) for s in sources])
    with torch.no_grad():
        want = hf.generate(torch.tensor(padded), attention_mask=torch.tensor((padded != 0) * 1), max_new_tokens=8,
                           do_sample=False, num_beams=1).numpy()
    got = Generator(tmp_path / "t5").generate(sources, max_new_tokens=8)
    np.testing.assert_array_equal(got, want)


def test_a_model_run_names_the_inputs_whose_shapes_disagree(models):
    """Wrong past shapes, or a mask that does not cover the past and the new tokens: a ValueError naming
    the inputs and axes, before onnxruntime sees them."""
    from tfc_runtime import Model, random_inputs

    model = Model(models["gpt2-like"])
    feeds = random_inputs(model, batch=1, sequence=4)
    past = next(p for p in model.inputs if p.name.startswith("past_key_values."))
    heads = past.shape[1]
    wrong = {past.name: np.zeros((1, heads + 1, 0, past.shape[3]), np.float32)}
    with pytest.raises(ValueError, match=rf"{past.name}: axis 1 must be {heads}"):
        model.run({**feeds, **wrong})
    longer = {past.name: np.zeros((1, heads, 2, past.shape[3]), np.float32)}
    with pytest.raises(ValueError, match=r"\(past_sequence_length\) is 0, but past_key_values.0.key has"):
        model.run({**feeds, **longer})
    with pytest.raises(ValueError, match=r"attention_mask: axis 1 \(past_sequence_length\+sequence_length\) must be 4"):
        model.run({**feeds, "attention_mask": np.ones((1, 5), np.int64)})


def test_a_prompt_longer_than_a_prefill_chunk_enters_the_cache_in_chunks(models, monkeypatch):
    """Chunked prefill gives the tokens of one whole-prompt call."""
    from tfc_runtime import generation_step

    generator = Generator(models["llama-like"])
    whole = generator.generate(PROMPTS, max_new_tokens=4)
    monkeypatch.setattr(generation_step, "PREFILL_CHUNK", 2)
    np.testing.assert_array_equal(Generator(models["llama-like"]).generate(PROMPTS, max_new_tokens=4), whole)
