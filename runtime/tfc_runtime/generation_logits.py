"""The next-token choice of the generate loop, in NumPy: Hugging Face transformers' logits processors
(`transformers.generation.logits_process`, version 5) with the same semantics and order —
repetition penalty, min new tokens, then, when sampling, temperature, top-k and top-p — and the pick:
argmax (greedy) or a draw from the softmax with a seeded `numpy.random.Generator`.

Scores are float32 [B, V], as Hugging Face processes them; every function returns a new array. Top-p
and the draw look at the tokens still possible only (-inf elsewhere adds nothing to a softmax)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Choice:
    """How a step's token is chosen; the values are checked by the caller (`generation_options`)."""

    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 50
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    min_new_tokens: int = 0


def repetition_penalty(scores: np.ndarray, seen: np.ndarray, penalty: float) -> np.ndarray:
    """CTRL's penalty on every token a row has seen (`seen`: bool [B, V], its prompt without the
    padding plus what it generated): a negative score is multiplied, a positive one divided."""
    out, hit = scores.copy(), scores[seen]
    out[seen] = np.where(hit < 0, hit * np.float32(penalty), hit / np.float32(penalty))
    return out


def forbid(scores: np.ndarray, token_ids: np.ndarray) -> np.ndarray:
    """`min_new_tokens`: end-of-sequence ids get -inf until enough tokens are out."""
    out = scores.copy()
    out[:, token_ids[token_ids < scores.shape[-1]]] = -np.inf
    return out


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Keeps the k best scores of each row, and every score tied with the k-th."""
    k = min(max(k, 1), scores.shape[-1])
    kth = np.array([[kth_largest(row, k)] for row in scores], scores.dtype)
    return np.where(scores < kth, np.float32(-np.inf), scores)


def kth_largest(row: np.ndarray, k: int) -> float:
    """Exact, without partitioning a whole vocabulary: the k-th largest of a strided sample is a floor
    that at least k scores reach, so the k-th largest of the row is among the few at or above it."""
    step = int(np.sqrt(len(row) / k))
    if step > 1:
        row = row[row >= np.partition(row[::step], -k)[-k]]
    return np.partition(row, -k)[-k]


def top_p(scores: np.ndarray, p: float) -> np.ndarray:
    """Nucleus filtering: drops the least likely tokens whose probabilities sum to at most 1 - p,
    keeping at least the most likely one."""
    out = scores.copy()
    for row, columns in zip(out, candidates(scores)):
        order = columns[np.argsort(row[columns], kind="stable")]  # ascending, ties by column: Hugging Face's sort
        cumulative = np.cumsum(softmax(row[order]), dtype=np.float32)
        row[order[:-1][cumulative[:-1] <= np.float32(1 - p)]] = -np.inf
    return out


def candidates(scores: np.ndarray) -> list[np.ndarray]:
    """Each row's columns that can still be chosen (not -inf), in column order: after top-k, a few
    dozen of a vocabulary of tens of thousands, so top-p and the draw sort and sum only those."""
    return [np.flatnonzero(row > -np.inf) for row in scores]


def softmax(scores: np.ndarray) -> np.ndarray:
    shifted = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def process(scores: np.ndarray, choice: Choice, seen: np.ndarray | None, new_tokens: int,
            eos: np.ndarray) -> np.ndarray:
    """Hugging Face's processors, in its order (`GenerationMixin._get_logits_processor`)."""
    if choice.repetition_penalty != 1.0:
        scores = repetition_penalty(scores, seen, choice.repetition_penalty)
    if new_tokens < choice.min_new_tokens and eos.size:
        scores = forbid(scores, eos)
    if choice.do_sample:
        if choice.temperature != 1.0:
            scores = scores / np.float32(choice.temperature)
        if choice.top_k:
            scores = top_k(scores, choice.top_k)
        if choice.top_p < 1.0:
            scores = top_p(scores, choice.top_p)
    return scores


def pick(scores: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
    """The next token of each row: argmax without a generator, else one draw from softmax(scores)."""
    if rng is None:
        return scores.argmax(axis=-1)
    chosen = np.empty(len(scores), np.int64)
    for r, (row, columns) in enumerate(zip(scores, candidates(scores))):
        cumulative = np.cumsum(softmax(row[columns].astype(np.float64)))
        # inverse transform: the first token whose cumulative probability exceeds a uniform draw
        chosen[r] = columns[min(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"),
                                len(columns) - 1)]
    return chosen
