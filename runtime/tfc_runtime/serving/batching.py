"""Dynamic batching for `tfc serve`, in NumPy: one request's named inputs (one or more rows) completed and
checked alone, then several requests run as one batch and the outputs cut back to each request's rows.

Rows of different lengths are padded on the right to the longest of the batch (token ids with the pad id,
masks, positions and segment ids with 0) and each output axis that follows a padded axis is cut back to the
row's own length. That is exact — a batched row's outputs are the row's outputs alone — when padding is
invisible to the real tokens: a padding mask covers the axis, or the model is a causal decoder (a real token
never sees the tokens after it). Otherwise (an encoder without a mask, an output axis that is neither the
batch nor a padded axis: a pooled length) only requests of equal shapes share a batch.

What the client may leave out is filled per request: what a decoder carries between calls (KV caches,
memories, states) starts empty, as in one forward over the whole input; a padding mask is all ones;
positions count the mask's ones from 0 (Hugging Face's rule); segment ids are 0."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..generation_step import Carried, initial_shape, present_of
from ..input_checks import as_array, check_shapes
from ..session import CARRIED, Model, Port

# what a client may omit, and what it then is (see `Plan.complete`)
OPTIONAL_ROLES = ("padding_mask", "position_ids", "token_type_ids")
MASKS = ("padding_mask", "encoder_mask")
# an output axis that is a padded axis under another name: the logits a decoder keeps (it is told to keep all)
ALIASES = {"kept_sequence_length": "sequence_length"}


def axis_label(label) -> str | None:
    """A dynamic axis as the padding sees it: `past_sequence_length+sequence_length` (a cached decoder's mask,
    whose past is empty here) is `sequence_length`; fixed sizes are None."""
    if isinstance(label, int) or not label:
        return None
    parts = [part for part in str(label).split("+") if not part.startswith("past_")]
    return ALIASES.get("+".join(parts), "+".join(parts)) if parts else None


def batch_axis(port: Port) -> bool:
    return bool(port.shape) and "batch" in str(port.shape[0])


@dataclass(frozen=True)
class Pending:
    """One request, checked: its arrays (the model's inputs, completed) and its rows."""

    arrays: dict
    rows: int
    sizes: dict  # padded axis -> this request's size
    key: tuple  # requests of one key can share a batch
    last: bool = False  # only the last position of each padded output axis (a decoder's next-token logits)


class Plan:
    """How a model's requests are completed, checked, batched and cut back (see the module docstring)."""

    def __init__(self, model: Model, pad_id: int = 0):
        self.model, self.pad_id = model, pad_id
        self.carried = [Carried(p.name, present_of(p.name), p.shape, p.dtype, False)
                        for p in model.inputs if p.role in CARRIED]
        presents = {c.present for c in self.carried}
        self.given = [p for p in model.inputs if p.role not in CARRIED]
        self.returned = [p for p in model.outputs if p.name not in presents]
        self.padded = {label for p in self.given for label in map(axis_label, p.shape[1:]) if label}
        self.batched = all(batch_axis(p) for p in model.inputs) and all(batch_axis(p) for p in self.returned)
        masked = {axis_label(p.shape[-1]) for p in self.given if p.role in MASKS}
        causal = model.metadata.get("tfcompiler.topology") == "decoder"
        follows = all(axis_label(a) in self.padded or axis_label(a) is None for p in self.returned for a in p.shape[1:])
        self.exact = self.batched and follows and (causal or self.padded <= masked)

    @property
    def required(self) -> list[str]:
        return [p.name for p in self.given if p.role not in OPTIONAL_ROLES]

    def complete(self, inputs: dict) -> dict:
        """The client's inputs plus what it may leave out (see the module docstring), as arrays."""
        carried = sorted({c.past for c in self.carried} & set(inputs))
        if carried:
            raise ValueError(f"inputs {carried} are carried between decoding steps; the server starts them empty "
                             "(use /generate to decode)")
        ports = {p.name: p for p in self.given}
        missing = [name for name in self.required if name not in inputs]
        unknown = sorted(set(inputs) - set(ports))
        if missing or unknown:
            raise ValueError(f"inputs do not fit the model: missing {missing}, unknown {unknown}; it takes "
                             f"{self.required} and optionally {[n for n in ports if n not in self.required]}")
        feeds = {name: as_array(ports[name], value) for name, value in inputs.items()}
        tokens = next((p.name for p in self.given if p.name in feeds and p.role in ("token_ids", "vectors")),
                      next(iter(feeds)))
        check_shapes([ports[tokens]], feeds)  # the shape the others are filled in, checked before it is used
        shape = feeds[tokens].shape[:2]
        mask = next((feeds[p.name] for p in self.given if p.role == "padding_mask" and p.name in feeds), None)
        mask = mask if mask is not None and mask.shape == shape else np.ones(shape, np.int64)
        fills = {"padding_mask": lambda: mask, "token_type_ids": lambda: np.zeros(shape, np.int64),
                 "position_ids": lambda: np.maximum(np.cumsum(mask, axis=1) - 1, 0)}
        for port in self.given:
            if port.name not in feeds and port.role in fills:
                feeds[port.name] = fills[port.role]().astype(port.dtype)
        batch = int(shape[0]) if len(shape) else 1
        for c in self.carried:
            feeds[c.past] = np.zeros(initial_shape(c, batch), c.dtype)
        return feeds

    def pending(self, inputs: dict, last: bool = False) -> Pending:
        """A request checked alone (ValueError naming the input and position, as `Model.run` raises it);
        ``last``: its outputs only at the last position of each padded axis (its last column)."""
        arrays = self.model.checked(self.complete(inputs))
        rows = int(next(iter(arrays.values())).shape[0]) if self.batched else 1
        sizes = {label: arrays[p.name].shape[i + 1] for p in self.given
                 for i, label in enumerate(map(axis_label, p.shape[1:])) if label in self.padded}
        if not self.batched:
            key = (id(arrays),)  # alone
        else:  # what must match between rows that share a batch: every size not padded (all of them if not exact)
            key = tuple((p.name, tuple(n for n, a in zip(arrays[p.name].shape[1:], p.shape[1:])
                                       if not (self.exact and axis_label(a) in self.padded)))
                        for p in self.given)
        return Pending(arrays, rows, sizes, key, last)

    def run(self, requests: list[Pending]) -> list[dict]:
        """Each request's outputs (the presents of a cached decoder left out), its rows batched with others."""
        answers: list = [None] * len(requests)
        groups: dict[tuple, list[int]] = {}
        for i, request in enumerate(requests):
            groups.setdefault(request.key, []).append(i)
        for members in groups.values():
            for i, outputs in zip(members, self._run_group([requests[i] for i in members])):
                answers[i] = outputs
        return answers

    def _run_group(self, requests: list[Pending]) -> list[dict]:
        if len(requests) == 1:
            outputs = self.model.call(requests[0].arrays)
            return [{p.name: self._cut(p, outputs[p.name], requests[0]) for p in self.returned}]
        widths = {label: max(r.sizes[label] for r in requests) for label in self.padded}
        feeds = {p.name: np.concatenate([self._pad(p, r.arrays[p.name], widths) for r in requests])
                 for p in self.given}
        total = sum(r.rows for r in requests)
        feeds |= {c.past: np.zeros(initial_shape(c, total), c.dtype) for c in self.carried}
        outputs, start, answers = self.model.call(feeds), 0, []
        for r in requests:
            answers.append({p.name: self._cut(p, outputs[p.name][start:start + r.rows], r)
                            for p in self.returned})
            start += r.rows
        return answers

    def _pad(self, port: Port, array: np.ndarray, widths: dict) -> np.ndarray:
        pad = [(0, 0)] + [(0, widths[axis_label(a)] - n if axis_label(a) in widths else 0)
                          for a, n in zip(port.shape[1:], array.shape[1:])]
        if not any(after for _, after in pad):
            return array
        value = self.pad_id if port.role == "token_ids" else 0
        return np.pad(array, pad, constant_values=np.asarray(value, array.dtype))

    @staticmethod
    def _cut(port: Port, array: np.ndarray, request: Pending) -> np.ndarray:
        def cut(label):
            size = request.sizes.get(axis_label(label))
            return slice(None) if size is None else slice(size - 1 if request.last else 0, size)
        return array[(slice(None), *map(cut, port.shape[1:]))]
