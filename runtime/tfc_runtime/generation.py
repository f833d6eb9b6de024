"""Text generation with a compiled decoder: `Generator(path).generate(prompts, ...)` returns what Hugging
Face's `generate` returns for a decoder-only model — int64 [B, S + N], the left-padded prompts then the
new tokens, rows that ended (end-of-sequence) padded after it — with the same options and semantics
(greedy or seeded sampling, temperature, top-k, top-p, repetition penalty, min new tokens, a streamer).

A model with a KV cache (or other carried state) decodes one token a call with the cache kept in
onnxruntime (`generation_step.CachedSteps`; a Transformer-XL's memories the same way, each token a
segment); one without recomputes the whole sequence each step
(`FullSteps`), the exact fallback. Special token ids come from the model folder's `generation.json`,
then from the model's `tfcompiler.generation` metadata."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from . import generation_inputs as check
from .generation_logits import pick, process
from .generation_seq2seq import DECODER_FILE, ENCODER_FILE, encoded, encoded_frames, start_tokens
from .generation_step import CachedSteps, FullSteps, Grouped, Layout
from .session import Model

MODEL_FILES = ("model.onnx", "decoder_model.onnx")  # in a model folder, the first that exists
OPTIONS = ["max_new_tokens", "min_new_tokens", "do_sample", "temperature", "top_k", "top_p", "repetition_penalty",
           "eos_token_id", "pad_token_id", "seed", "streamer", "max_length", "use_cache", "return_dict_in_generate",
           "output_logits", "decoder_start_token_id", "input_features"]


@dataclass(frozen=True)
class Generation:
    """One `generate` call: the sequences and how long they took."""

    sequences: np.ndarray  # int64 [B, S + N], as `generate` returns it
    prompt_mask: np.ndarray  # int64 [B, S]
    eos: tuple[int, ...]
    seconds: float  # the whole loop, prompt included
    first_token_seconds: float  # the prompt's call and the first choice
    run_seconds: float  # inside onnxruntime
    steps: int
    logits: tuple[np.ndarray, ...] = ()  # with output_logits: each step's raw logits, float32 [B, V]

    def rows(self) -> list[list[int]]:
        """Each row: its prompt without padding, then its new tokens up to and with its end-of-sequence."""
        width, out = self.prompt_mask.shape[1], []
        for row, mask in zip(self.sequences.tolist(), self.prompt_mask):
            new = row[width:]
            ends = [i for i, token in enumerate(new) if token in self.eos]
            out.append([t for t, keep in zip(row, mask) if keep] + (new[:ends[0] + 1] if ends else new))
        return out

    @property
    def new_tokens(self) -> int:
        """Tokens generated, the padding after an end-of-sequence not counted."""
        return sum(len(row) for row in self.rows()) - int(self.prompt_mask.sum())

    @property
    def tokens_per_second(self) -> float:
        return self.new_tokens / self.seconds if self.seconds > 0 else 0.0


def model_files(path) -> tuple[Path, Path | None, dict]:
    """The .onnx file (a folder's `model.onnx` or `decoder_model.onnx`, or the file given), the encoder
    model beside a `decoder_model.onnx` (an encoder-decoder's folder) or None, and the generation config
    in the folder (`generation.json`; {} if none)."""
    path = Path(path)
    if path.is_dir():
        if (path / ENCODER_FILE).is_file() and (path / DECODER_FILE).is_file():
            model, encoder, folder = path / DECODER_FILE, path / ENCODER_FILE, path
        else:
            found = [path / name for name in MODEL_FILES if (path / name).is_file()]
            if not found:
                raise FileNotFoundError(f"{path}: a model folder needs {' or '.join(MODEL_FILES)}")
            model, encoder, folder = found[0], None, path
    elif path.is_file():
        model, encoder, folder = path, None, path.parent
    else:
        raise FileNotFoundError(f"{path}: no such model file or folder")
    config = folder / "generation.json"
    try:
        return model, encoder, json.loads(config.read_text(encoding="utf-8")) if config.is_file() else {}
    except json.JSONDecodeError as error:
        raise ValueError(f"{config}: not valid JSON ({error})") from None


class Generator:
    """``Generator("model_dir", device="cuda").generate([[5, 6, 7], [8, 9]], max_new_tokens=32)``."""

    def __init__(self, path, device: str = "cpu", intra_op_threads: int | None = None,
                 session_options: ort.SessionOptions | None = None):
        file, encoder, config = model_files(path)
        self.folder = file.parent
        self.model = Model(file, device, intra_op_threads, session_options)
        self.encoder = Model(encoder, device, intra_op_threads, session_options) if encoder else None
        meta = self.model.metadata
        topology = meta.get("tfcompiler.topology", "decoder")
        if topology != "decoder" and self.encoder is None:
            raise ValueError(f"{file}: generation needs a decoder-only model, or an encoder-decoder's folder with "
                             f"{ENCODER_FILE} and {DECODER_FILE}; this one is {topology}")
        self.layout = Layout.of(self.model)
        if bool(self.layout.given) != bool(self.encoder):
            raise ValueError(f"{file}: its inputs {list(self.layout.given)} come from an encoder model, but there "
                             f"is no {ENCODER_FILE} beside it" if self.layout.given else
                             f"{file}: the decoder model takes nothing from {ENCODER_FILE}")
        self.config = {**json.loads(meta.get("tfcompiler.generation") or "{}"), **config}
        if "max_length" not in self.config and meta.get("tfcompiler.max_length"):
            self.config["max_length"] = int(meta["tfcompiler.max_length"])
        self.vocab = int(meta["tfcompiler.vocab_size"]) if meta.get("tfcompiler.vocab_size") else None

    @property
    def cached(self) -> bool:
        """Whether a step feeds only the new token and what the last call carried (else it recomputes the
        whole sequence). A tfcompiler model says so (`tfcompiler.cache`: `kv`; `memory`, a segment memory
        that each token enters as a segment of its own; or why not)."""
        return bool(self.layout.carried) and self.model.metadata.get("tfcompiler.cache", "kv") in ("kv", "memory")

    def generate(self, input_ids=None, attention_mask=None, max_new_tokens: int = 20, min_new_tokens: int = 0,
                 do_sample: bool = False, temperature: float = 1.0, top_k: int = 50, top_p: float = 1.0,
                 repetition_penalty: float = 1.0, eos_token_id=None, pad_token_id=None, seed=None,
                 streamer=None, max_length=None, use_cache: bool = True, return_dict_in_generate: bool = False,
                 output_logits: bool = False, decoder_start_token_id=None, input_features=None, **unknown):
        """Hugging Face's `generate` for a decoder-only model (see the module docstring), or for an
        encoder-decoder (input_ids are the source, or `input_features` (B, frames, F) with their
        `attention_mask` for a speech encoder; the sequences start with `decoder_start_token_id`); with
        `return_dict_in_generate` a `Generation` (sequences, per-row results, timings) instead of the array.
        `max_length` caps prompt + new tokens (default: the model's, if it states one) and `max_new_tokens`
        the new ones: the tighter wins. `use_cache=False` recomputes every step even on a model with a cache;
        `output_logits` keeps each step's raw logits in the `Generation`."""
        check.reject_unknown(unknown, OPTIONS)
        choice = check.choice(do_sample, temperature, top_k, top_p, repetition_penalty, min_new_tokens)
        check.check_count(max_new_tokens, "max_new_tokens", 1)
        check.check_count(max_length, "max_length", 1, optional=True)
        check.check_count(seed, "seed", 0, optional=True)
        if streamer is not None and not (callable(getattr(streamer, "put", None))
                                         and callable(getattr(streamer, "end", None))):
            raise ValueError(f"streamer: expected an object with put(ids) and end() methods, got {streamer!r}")
        eos = check.token_list(self.config.get("eos_token_id") if eos_token_id is None else eos_token_id,
                               "eos_token_id")
        pad = self.config.get("pad_token_id") if pad_token_id is None else pad_token_id
        pad = eos[0] if pad is None and eos else pad  # Hugging Face's default
        check.token_list(pad, "pad_token_id")
        limit = max_length or self.config.get("max_length")
        if input_features is not None:  # speech: the encoder reads the frames, the prompt is the start token
            if self.encoder is None or input_ids is not None:
                raise ValueError("input_features: give them instead of input_ids, to an encoder-decoder's folder "
                                 "whose encoder reads speech features")
            given = encoded_frames(self.encoder, self.layout.given, input_features, attention_mask)
            batch = len(input_features)
        else:
            prompts = check.left_padded(input_ids, attention_mask, 0 if pad is None else pad, self.vocab)
            if limit and prompts.ids.shape[1] > limit:
                raise ValueError(f"input_ids: the prompt has {prompts.ids.shape[1]} tokens, more than the model's "
                                 f"max_length {limit}")
            given = encoded(self.encoder, self.layout.given, prompts) if self.encoder is not None else {}
            batch = len(prompts.ids)
        if self.encoder is not None:  # the source, encoded once; the decoder starts from its start token
            start = decoder_start_token_id if decoder_start_token_id is not None else \
                self.config.get("decoder_start_token_id", self.config.get("bos_token_id"))
            check.token_list(start, "decoder_start_token_id")
            prompts = start_tokens(batch, start)
        width = prompts.ids.shape[1]
        new = min(max_new_tokens, limit - width) if limit else max_new_tokens
        steps = self._steps(use_cache, prompts, given, capacity=width + new)
        rng = np.random.default_rng(seed) if choice.do_sample else None
        result = self._decode(steps, prompts, new=new,
                              choice=choice, rng=rng, eos=eos, pad=pad, streamer=streamer, output_logits=output_logits)
        return result if return_dict_in_generate else result.sequences

    def _steps(self, use_cache: bool, prompts: check.Prompts, given: dict, capacity: int):
        """The model calls: with the cache if it has one (`capacity` positions, where its kernel appends in
        place), in groups of equal padding if it cannot take left padding exactly (see `Grouped`)."""
        kind = CachedSteps if use_cache and self.cached else FullSteps
        exact = self.model.metadata.get("tfcompiler.left_padding", "exact") == "exact" and (
            kind is CachedSteps or self.layout.positions is not None)
        padding = prompts.ids.shape[1] - prompts.lengths
        if exact or len(set(padding)) == 1:
            return kind(self.model, self.layout, len(prompts.ids), given, capacity)
        return Grouped(lambda batch, part: kind(self.model, self.layout, batch, part, capacity), padding, given)

    def _decode(self, steps, prompts: check.Prompts, *, new: int, choice, rng, eos: tuple[int, ...], pad,
                streamer, output_logits: bool) -> Generation:
        """Hugging Face's sampling loop (`GenerationMixin._sample`), one model call a token."""
        (batch, width), total = prompts.ids.shape, prompts.ids.shape[1] + new
        tokens = np.zeros((batch, total), np.int64)
        tokens[:, :width] = prompts.ids
        mask = np.ones((batch, total), np.int64)
        mask[:, :width] = prompts.mask
        positions = np.where(mask == 0, 1, np.cumsum(mask, axis=1) - 1)  # Hugging Face's, for left padding
        eos_ids, unfinished, seen, kept = np.array(eos, np.int64), np.ones(batch, bool), None, []
        if streamer is not None:
            streamer.put(prompts.ids.copy())
        start, first, t = time.perf_counter(), 0.0, width
        while t < total:
            logits = steps(tokens[:, :t], mask[:, :t], positions[:, :t])
            if output_logits:
                kept.append(logits.copy())
            if choice.repetition_penalty != 1.0:
                seen = seen if seen is not None else seen_tokens(prompts, logits.shape[1])
            chosen = pick(process(logits, choice, seen, t - width, eos_ids), rng)
            if eos:  # rows that ended get padding
                chosen = np.where(unfinished, chosen, pad)
            tokens[:, t] = chosen
            t += 1
            first = first or time.perf_counter() - start
            if seen is not None:
                inside = chosen < seen.shape[1]
                seen[np.arange(batch)[inside], chosen[inside]] = True
            if streamer is not None:
                streamer.put(chosen.copy())
            if eos:
                unfinished &= ~np.isin(chosen, eos_ids)
                if not unfinished.any():
                    break
        seconds = time.perf_counter() - start
        if streamer is not None:
            streamer.end()
        return Generation(tokens[:, :t].copy(), prompts.mask, eos, seconds, first, steps.run_seconds, t - width,
                          tuple(kept))


def seen_tokens(prompts: check.Prompts, vocab: int) -> np.ndarray:
    """bool [B, V]: the tokens of each prompt, its padding left out (Hugging Face's `prompt_ignore_length`)."""
    seen = np.zeros((len(prompts.ids), vocab), bool)
    rows, cols = np.nonzero(prompts.mask)
    ids = prompts.ids[rows, cols]
    seen[rows[ids < vocab], ids[ids < vocab]] = True
    return seen
