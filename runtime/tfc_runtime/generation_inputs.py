"""What `Generator.generate` takes, checked and put in shape: the prompts left-padded into one array
with their mask (as Hugging Face pads a decoder's batch), the end-of-sequence ids, and the options.
Bad input raises ValueError saying which argument, which row, and what was expected."""
from __future__ import annotations

import difflib
from dataclasses import dataclass

import numpy as np

from .generation_logits import Choice


@dataclass(frozen=True)
class Prompts:
    ids: np.ndarray  # int64 [B, S], each row's tokens at its end
    mask: np.ndarray  # int64 [B, S], 0 over the left padding

    @property
    def lengths(self) -> np.ndarray:
        return self.mask.sum(axis=1)


INT64_END = 2 ** 63  # token ids travel as int64


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_real(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def left_padded(input_ids, attention_mask, pad_id: int, vocab: int | None) -> Prompts:
    """A list of token-id lists (any lengths), or an int array [B, S] with an optional 0/1 mask of the
    same shape; rows padded elsewhere than on the left are re-padded there."""
    if isinstance(input_ids, np.ndarray):
        if input_ids.ndim != 2 or not np.issubdtype(input_ids.dtype, np.integer):
            raise ValueError(f"input_ids: expected an integer array [batch, length], got {input_ids.dtype} "
                             f"{list(input_ids.shape)}")
        mask = np.ones(input_ids.shape, np.int64) if attention_mask is None else np.asarray(attention_mask)
        if mask.shape != input_ids.shape or not np.isin(mask, (0, 1)).all():
            raise ValueError(f"attention_mask: expected 0s and 1s of the shape of input_ids {list(input_ids.shape)}, "
                             f"got {mask.dtype} {list(mask.shape)}")
        rows = [row[keep == 1] for row, keep in zip(input_ids.astype(np.int64), mask)]
        already = bool((np.diff(mask, axis=1) >= 0).all())  # zeros then ones on every row
    elif isinstance(input_ids, (list, tuple)) and input_ids:
        if attention_mask is not None:
            raise ValueError("attention_mask: give it with an array of input_ids; a list of lists needs none "
                             "(its rows may differ in length)")
        rows = []
        for r, row in enumerate(input_ids):
            if not isinstance(row, (list, tuple, np.ndarray)) or not all(_is_int(t) for t in row):
                raise ValueError(f"input_ids[{r}]: expected a list of token ids (integers), got {row!r:.80}")
            outside = [t for t in row if not 0 <= t < (vocab or INT64_END)]
            if outside:  # before the int64 array: an id past its range cannot go in one
                raise ValueError(f"input_ids[{r}]: token {outside[0]} is outside the vocabulary [0, {vocab})")
            rows.append(np.asarray(row, np.int64).reshape(-1))
        already, mask = False, None
    else:
        raise ValueError(f"input_ids: expected a list of token-id lists or an integer array [batch, length], "
                         f"got {input_ids!r:.80}")
    for r, row in enumerate(rows):
        if not len(row):
            raise ValueError(f"input_ids[{r}]: the prompt is empty (give at least one token, e.g. the BOS token)")
        bad = row[(row < 0) | (row >= (vocab or np.iinfo(np.int64).max))]
        if bad.size:
            raise ValueError(f"input_ids[{r}]: token {int(bad[0])} is outside the vocabulary [0, {vocab})")
    if already:
        return Prompts(input_ids.astype(np.int64), mask.astype(np.int64))
    width = max(len(row) for row in rows)
    ids, mask = np.full((len(rows), width), pad_id, np.int64), np.zeros((len(rows), width), np.int64)
    for r, row in enumerate(rows):
        ids[r, width - len(row):], mask[r, width - len(row):] = row, 1
    return Prompts(ids, mask)


def token_list(value, name: str) -> tuple[int, ...]:
    """None, an id, or a list of ids (several end-of-sequence tokens)."""
    values = [] if value is None else [value] if _is_int(value) else value
    if not isinstance(values, (list, tuple)) or not all(_is_int(v) and 0 <= v < INT64_END for v in values):
        raise ValueError(f"{name}: expected a token id (an integer in [0, 2**63)) or a list of them, "
                         f"got {value!r:.80}")
    return tuple(int(v) for v in values)


def choice(do_sample, temperature, top_k, top_p, repetition_penalty, min_new_tokens) -> Choice:
    checks = [("do_sample", do_sample, isinstance(do_sample, (bool, np.bool_)), "true or false"),
              ("temperature", temperature, _is_real(temperature) and temperature > 0, "a number > 0"),
              ("top_k", top_k, _is_int(top_k) and top_k >= 0, "an integer >= 0 (0: no top-k)"),
              ("top_p", top_p, _is_real(top_p) and 0 <= top_p <= 1, "a number in [0, 1]"),
              ("repetition_penalty", repetition_penalty, _is_real(repetition_penalty) and repetition_penalty > 0,
               "a number > 0 (1: no penalty)"),
              ("min_new_tokens", min_new_tokens, _is_int(min_new_tokens) and min_new_tokens >= 0, "an integer >= 0")]
    for name, value, ok, expected in checks:
        if not ok:
            raise ValueError(f"{name}: expected {expected}, got {value!r}")
    return Choice(bool(do_sample), float(temperature), int(top_k), float(top_p), float(repetition_penalty),
                  int(min_new_tokens))


def check_count(value, name: str, least: int, optional: bool = False) -> None:
    if (value is None and optional) or (_is_int(value) and value >= least):
        return
    raise ValueError(f"{name}: expected an integer >= {least}{' or None' if optional else ''}, got {value!r}")


def reject_unknown(options: dict, known: list[str]) -> None:
    if options:
        name = sorted(options)[0]
        near = difflib.get_close_matches(name, known, n=1)
        raise ValueError(f"unknown option {name!r}" + (f"; did you mean {near[0]!r}?" if near else
                                                       f"; the options are {', '.join(known)}"))
