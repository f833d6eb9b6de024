"""onnx's ReferenceEvaluator, which computes in the model's own types (true fp16 and bf16 arithmetic,
unlike onnxruntime's CPU provider, which has no bf16 kernels), with two of its ops corrected:
its Loop joins scan outputs with np.vstack, which concatenates arrays of two or more axes instead
of stacking them, and its GatherElements requires the indices to match the data on every other
axis, where the standard lets them be smaller."""
from __future__ import annotations

import numpy as np
from onnx.reference import ReferenceEvaluator
from onnx.reference.op_run import OpRun


class Loop(OpRun):
    """The standard's Loop for what tfcompiler emits: a trip count, loop-carried values, scan outputs."""

    def need_context(self) -> bool:
        return True  # the body reads the outer graph's tensors

    def _run(self, trips, cond, *carried, context=None, body=None, attributes=None, bindings=None):
        names = self.body.input_names
        state = {**(context or {}), **dict(zip(names[2:], carried))}
        count = len(self.body.output_names) - 1 - len(carried)
        scans = [[] for _ in range(count)]
        iteration = 0
        while cond and (trips is None or iteration < trips):
            state[names[0]], state[names[1]] = np.array(iteration, np.int64), cond
            outputs = self._run_body(state, attributes=attributes, bindings=bindings)
            cond, values = outputs[0], outputs[1:]
            state.update(zip(names[2:], values[:len(carried)]))
            for scan, value in zip(scans, values[len(carried):]):
                scan.append(value)
            iteration += 1
        return tuple(state[name] for name in names[2:]) + tuple(np.stack(scan) for scan in scans)


class GatherElements(OpRun):
    def _run(self, data, indices, axis=0):
        axis %= data.ndim
        index = list(np.indices(indices.shape, sparse=True))
        index[axis] = np.where(indices < 0, indices + data.shape[axis], indices)
        return (data[tuple(index)],)


def evaluator(model) -> ReferenceEvaluator:
    return ReferenceEvaluator(model, new_ops=[Loop, GatherElements])
