"""One model call per decode step: what a decoder takes (`Layout`), and the two ways to get the next
logits from it.

`CachedSteps` feeds only the new tokens and the past the previous call returned: the carried values
(KV caches `past_key_values.N.key`, running states `past_state.N.*`, memories, RNN states) stay
onnxruntime `OrtValue`s bound with IO binding, so a step is one `run` and only the logits come back to
NumPy. `FullSteps` is the exact fallback for models without carried inputs (compiled `--no-cache`):
every step recomputes the whole left-padded sequence from empty pasts. An encoder-decoder's decoder
model also takes what its encoder model gave (cross-attention keys and values, the source's mask): the
same values at every step.

The mask fed covers the past and the new tokens: its last P + S columns of the mask history, P being
the length the previous call's cache came back with (a sliding-window cache keeps fewer than all)."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from .session import CARRIED, Model

LOGITS_TO_KEEP = "logits_to_keep"
# A long prompt enters the cache this many tokens a call: the scores and activations stay a chunk's
# (the compiler packs a cached decoder's projections counting on it), and the logits are the same
PREFILL_CHUNK = 512
# an encoder-decoder's decoder model takes what the encoder model gave, the same at every step
GIVEN_ROLES = ("cross_key", "cross_value", "encoder_mask")


def present_of(past: str) -> str:
    """The output that feeds input `past` on the next call; the one pairing rule.
    `past_key_values.N.key` -> `present.N.key` (Hugging Face's names), `past_X` -> `present_X`
    (`past_state.N.s`, `past_memories.N`, `past_states.K.h`)."""
    head = "past_key_values."
    return "present." + past[len(head):] if past.startswith(head) else "present_" + past[len("past_"):]


@dataclass(frozen=True)
class Carried:
    past: str  # input name
    present: str  # the output that feeds it next step
    shape: tuple  # the input's declared shape
    dtype: type
    grows: bool  # a KV cache: its axis 2 is the past length the mask covers


@dataclass(frozen=True)
class Layout:
    """The decoder's generation inputs, found by role (`tfcompiler.io_roles`) or by the Hugging Face name."""

    tokens: str
    mask: str | None
    positions: str | None
    carried: tuple[Carried, ...]
    given: tuple[str, ...]  # from an encoder model: cross-attention keys and values, the source's mask
    keeps_logits: bool  # has the overridable `logits_to_keep`
    mask_covers_past: bool

    @classmethod
    def of(cls, model: Model) -> "Layout":
        def find(role: str, name: str) -> str | None:
            return next((p.name for p in model.inputs if p.role == role or (not p.role and p.name == name)), None)

        # the ids a step feeds back: tokens, or an image's intensities (tfcompiler's input kind `pixels`)
        tokens = find("token_ids", "input_ids") or find("intensities", "input_ids")
        mask, positions = find("padding_mask", "attention_mask"), find("position_ids", "position_ids")
        outputs = {p.name for p in model.outputs}
        vectors = [p.name for p in model.inputs if p.role == "vectors"]
        if vectors:
            raise ValueError(f"cannot generate with this model: it reads vectors ({', '.join(vectors)}), and "
                             "generation feeds back the token ids it picks; run it a call at a time with Model.run")
        if tokens is None or "logits" not in outputs:
            raise ValueError(f"generation needs a model that takes token ids and returns `logits`; this one takes "
                             f"{[p.name for p in model.inputs]} and returns {sorted(outputs)}")
        given = tuple(p.name for p in model.inputs if p.role in GIVEN_ROLES or (
            not p.role and (p.name == "encoder_attention_mask" or ".encoder." in p.name)))
        carried = tuple(Carried(p.name, present_of(p.name), p.shape, p.dtype,
                                p.role in ("past_key", "past_value") or p.name.startswith("past_key_values."))
                        for p in model.inputs
                        if p.name not in given and (p.role in CARRIED or p.name.startswith("past_")))
        unpaired = [c.past for c in carried if c.present not in outputs]
        others = [p.name for p in model.inputs
                  if p.name not in {tokens, mask, positions, *given, *(c.past for c in carried)}]
        problems = ([f"inputs {unpaired} have no `present` output to feed them"] if unpaired else []) + \
            ([f"inputs {others} are not generation inputs (token ids, mask, positions, pasts)"] if others else [])
        if problems:
            raise ValueError(f"cannot generate with this model: {'; '.join(problems)}")
        shape = {p.name: p.shape for p in model.inputs}
        covers_past = mask is not None and shape[mask][-1] != shape[tokens][-1]
        return cls(tokens, mask, positions, carried, given,
                   any(p.name == LOGITS_TO_KEEP for p in model.overridable), covers_past)


def initial_shape(carried: Carried, batch: int) -> list[int]:
    """A carried value before the first token: the past axes (`past_...`) empty, the batch axes sized."""
    shape = []
    for axis in carried.shape:
        if not isinstance(axis, int) and not str(axis).startswith("past_") and "batch" not in str(axis):
            raise ValueError(f"input {carried.past}: cannot size its axis {axis!r} before the first token")
        shape.append(axis if isinstance(axis, int) else 0 if str(axis).startswith("past_") else batch)
    return shape


class CachedSteps:
    """Prefill with the prompt, then one token a call; the carried values never leave onnxruntime.

    A model whose cache kernel appends in place (`tfcompiler.cache_buffer: shared`, onnxruntime's
    GroupQueryAttention) gets one buffer per past of `capacity` positions, bound once as both the past
    input and the present output: a step then copies no cache and binds only the new tokens, the
    mask and the positions (the logits too go to one buffer, when the model keeps only the last)."""

    def __init__(self, model: Model, layout: Layout, batch: int, given: dict[str, np.ndarray],
                 capacity: int | None = None):
        self.session, self.layout = model.session, layout
        self.device = "cuda" if model.providers[0] == "CUDAExecutionProvider" else "cpu"
        self.binding = self.session.io_binding()
        shared = capacity is not None and model.metadata.get("tfcompiler.cache_buffer") == "shared"
        self.shared = {c.present for c in layout.carried if c.grows} if shared else set()
        self.values = {}
        for c in layout.carried:
            shape = initial_shape(c, batch)
            if c.present in self.shared:
                shape[2] = capacity
            self.values[c.present] = ort.OrtValue.ortvalue_from_numpy(np.zeros(shape, c.dtype), self.device)
            if c.present in self.shared:  # bound once: get_outputs() lists them first, in this order
                self.binding.bind_ortvalue_input(c.past, self.values[c.present])
                self.binding.bind_ortvalue_output(c.present, self.values[c.present])
        self.logits = None
        if layout.keeps_logits:  # the LM head runs on the last position only; bound once, for every call
            self.binding.bind_ortvalue_input(LOGITS_TO_KEEP, ort.OrtValue.ortvalue_from_numpy(np.array(1, np.int64)))
            if self.shared:
                vocab = next(p.shape[-1] for p in model.outputs if p.name == "logits")
                self.logits = ort.OrtValue.ortvalue_from_numpy(np.zeros((batch, 1, vocab), np.float32))
                self.binding.bind_ortvalue_output("logits", self.logits)
        self.outputs = [p.name for p in model.outputs if p.name not in self.shared and
                        (self.logits is None or p.name != "logits")]
        self.bound = [c.present for c in layout.carried if c.present in self.shared] + \
            (["logits"] if self.logits is not None else []) + self.outputs
        for name, value in given.items():  # the same at every step: bound once too
            self.binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(value, self.device))
        self.fed = 0  # columns of the sequence already in the cache
        self.run_seconds = 0.0

    def past_length(self) -> int:
        if self.shared:  # the buffers' length is their capacity; what is filled is what was fed
            return self.fed
        grown = [self.values[c.present].shape()[2] for c in self.layout.carried if c.grows]
        return max(grown) if grown else self.fed

    def __call__(self, tokens: np.ndarray, mask: np.ndarray, positions: np.ndarray) -> np.ndarray:
        while tokens.shape[1] - self.fed > PREFILL_CHUNK:
            end = self.fed + PREFILL_CHUNK
            self.step(tokens[:, :end], mask[:, :end], positions[:, :end])
        return self.step(tokens, mask, positions)

    def step(self, tokens: np.ndarray, mask: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """One call: the columns of `tokens` after those already fed, the mask's last past + new columns."""
        layout, binding, new = self.layout, self.binding, slice(self.fed, tokens.shape[1])
        binding.bind_cpu_input(layout.tokens, np.ascontiguousarray(tokens[:, new]))
        if layout.mask:
            width = tokens.shape[1] - self.fed + (self.past_length() if layout.mask_covers_past else 0)
            binding.bind_cpu_input(layout.mask, np.ascontiguousarray(mask[:, -width:]))
        if layout.positions:
            binding.bind_cpu_input(layout.positions, np.ascontiguousarray(positions[:, new]))
        for c in layout.carried:
            if c.present not in self.shared:
                binding.bind_ortvalue_input(c.past, self.values[c.present])
        for name in self.outputs:  # unallocated each call: onnxruntime sizes them (the past grows)
            binding.bind_output(name, "cpu" if name == "logits" else self.device)
        start = time.perf_counter()
        self.session.run_with_iobinding(binding)
        self.run_seconds += time.perf_counter() - start
        if self.outputs:
            values = dict(zip(self.bound, binding.get_outputs()))
            self.values.update((c.present, values[c.present]) for c in layout.carried if c.present in values)
        self.fed = tokens.shape[1]
        logits = self.logits if self.logits is not None else values["logits"]
        return logits.numpy()[:, -1].astype(np.float32, copy=False)


class FullSteps:
    """The exact fallback: each call runs the whole left-padded sequence from empty pasts."""

    def __init__(self, model: Model, layout: Layout, batch: int, given: dict[str, np.ndarray],
                 capacity: int | None = None):
        self.session, self.layout, self.given = model.session, layout, given
        self.run_seconds = 0.0

    def __call__(self, tokens: np.ndarray, mask: np.ndarray, positions: np.ndarray) -> np.ndarray:
        layout = self.layout
        feeds = {c.past: np.zeros(initial_shape(c, len(tokens)), c.dtype) for c in layout.carried} | self.given
        if layout.keeps_logits:
            feeds[LOGITS_TO_KEEP] = np.array(1, np.int64)
        feeds[layout.tokens] = tokens
        if layout.mask:
            feeds[layout.mask] = mask
        if layout.positions:
            feeds[layout.positions] = positions
        start = time.perf_counter()
        logits = self.session.run(["logits"], feeds)[0]
        self.run_seconds += time.perf_counter() - start
        return logits[:, -1].astype(np.float32, copy=False)


class Grouped:
    """For a model that cannot take left padding exactly (`tfcompiler.left_padding` says what shifts, or a
    forward-only graph counts positions from the first column): the rows run in groups of equal padding,
    unpadded, each group with its own steps (and cache)."""

    def __init__(self, make, padding: np.ndarray, given: dict[str, np.ndarray]):
        """make(batch, given) -> steps; padding: each row's left padding."""
        self.groups = [(np.flatnonzero(padding == p), int(p)) for p in np.unique(padding)]
        self.steps = [make(len(rows), {name: value[rows] for name, value in given.items()})
                      for rows, _ in self.groups]

    @property
    def run_seconds(self) -> float:
        return sum(steps.run_seconds for steps in self.steps)

    def __call__(self, tokens: np.ndarray, mask: np.ndarray, positions: np.ndarray) -> np.ndarray:
        out = None
        for (rows, pad), steps in zip(self.groups, self.steps):
            logits = steps(tokens[rows, pad:], mask[rows, pad:], positions[rows, pad:])
            out = np.empty((len(tokens), logits.shape[1]), np.float32) if out is None else out
            out[rows] = logits
        return out
