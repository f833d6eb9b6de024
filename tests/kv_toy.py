"""A hand-written one-layer decoder in ONNX, with and without a KV cache, for the generate loop's tests.

It follows the cached-model contract the compiler emits (Hugging Face / Optimum names:
`past_key_values.0.key` -> `present.0.key`, a mask over past + new tokens, `position_ids`, an
overridable `logits_to_keep`), so the runtime's cache handling is tested on its own, apart from the
compiler. Options: a sliding `window` (the present keeps only the last `window` keys, shorter than
P + S) and a fixed-size running-sum `state` (`past_state.0.s` -> `present_state.0.s`). The cached and
the uncached forms compute the same last-position logits, which is what generation reads."""
from __future__ import annotations

import json

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

WIDTH, VOCAB, MAX_POSITIONS = 8, 23, 64
_BIG = np.iinfo(np.int64).max


def _const(name: str, value) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


def toy_decoder(cache: bool, window: int | None = None, state: bool = False, keep: bool = True,
                seed: int = 0) -> bytes:
    """The model's bytes; the same seed gives the same weights whatever the form."""
    rng = np.random.default_rng(seed)
    weights = {"embed": rng.standard_normal((VOCAB, WIDTH)), "positions": rng.standard_normal((MAX_POSITIONS, WIDTH)),
               "wq": rng.standard_normal((WIDTH, WIDTH)), "wk": rng.standard_normal((WIDTH, WIDTH)),
               "wv": rng.standard_normal((WIDTH, WIDTH)), "wo": rng.standard_normal((WIDTH, VOCAB))}
    inits = [_const(n, w.astype(np.float32)) for n, w in weights.items()]
    inits += [_const("scale", np.float32(WIDTH ** -0.5)), _const("neg", np.float32(-1e9)), _const("one", np.int64(1)),
              _const("zero", np.int64(0)), _const("two", np.int64(2)), _const("axis1", np.array([1])),
              _const("big", np.array([_BIG])), _const("last_axis", np.array([-1]))]
    if cache and window:
        inits.append(_const("axis2", np.array([2])))
    n = helper.make_node
    nodes = [n("Gather", ["embed", "input_ids"], ["tok"]), n("Gather", ["positions", "position_ids"], ["pos"]),
             n("Add", ["tok", "pos"], ["x"])]
    for w in ("q", "k", "v"):
        nodes += [n("MatMul", ["x", f"w{w}"], [f"{w}3"]), n("Unsqueeze", [f"{w}3", "axis1"], [f"{w}_new"])]
    inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch_size", "sequence_length"]),
              helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch_size", "total_length"]),
              helper.make_tensor_value_info("position_ids", TensorProto.INT64, ["batch_size", "sequence_length"])]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch_size", "kept", VOCAB])]
    roles = {"input_ids": "token_ids", "attention_mask": "padding_mask", "position_ids": "position_ids"}
    for w, role in (("k", "key"), ("v", "value")):
        if cache:
            past = f"past_key_values.0.{role}"
            inputs.append(helper.make_tensor_value_info(past, TensorProto.FLOAT,
                                                        ["batch_size", 1, "past_sequence_length", WIDTH]))
            roles[past] = f"past_{role}"
            nodes.append(n("Concat", [past, f"{w}_new"], [f"{w}_all"], axis=2))
            kept = f"{w}_all"
            if window:  # a bounded cache keeps its window only
                inits.append(_const(f"{w}_start", np.array([-window])))
                nodes.append(n("Slice", [f"{w}_all", f"{w}_start", "big", "axis2"], [f"{w}_kept"]))
                kept = f"{w}_kept"
            nodes.append(n("Identity", [kept], [f"present.0.{role}"]))
            outputs.append(helper.make_tensor_value_info(f"present.0.{role}", TensorProto.FLOAT,
                                                         ["batch_size", 1, "present_length", WIDTH]))
        else:
            nodes.append(n("Identity", [f"{w}_new"], [f"{w}_all"]))
    # query i (the last S of T keys) sees key j when j <= i (and i - window < j), and j is no padding
    nodes += [n("Shape", ["k_all"], ["k_shape"]), n("Gather", ["k_shape", "two"], ["T"]),
              n("Shape", ["q_new"], ["q_shape"]), n("Gather", ["q_shape", "two"], ["S"]),
              n("Sub", ["T", "S"], ["first"]), n("Range", ["first", "T", "one"], ["rows"]),
              n("Range", ["zero", "T", "one"], ["cols"]), n("Unsqueeze", ["rows", "last_axis"], ["rows2"]),
              n("LessOrEqual", ["cols", "rows2"], ["causal"])]
    allowed = "causal"
    if window:
        inits.append(_const("window", np.int64(window)))
        nodes += [n("Sub", ["rows2", "window"], ["oldest"]), n("Greater", ["cols", "oldest"], ["recent"]),
                  n("And", ["causal", "recent"], ["banded"])]
        allowed = "banded"
    nodes += [n("Cast", ["attention_mask"], ["mask_b"], to=TensorProto.BOOL),
              n("Unsqueeze", ["mask_b", "axes12"], ["mask4"]),
              n("And", [allowed, "mask4"], ["allowed"]),
              n("Transpose", ["k_all"], ["kT"], perm=[0, 1, 3, 2]), n("MatMul", ["q_new", "kT"], ["raw"]),
              n("Mul", ["raw", "scale"], ["scores"]), n("Where", ["allowed", "scores", "neg"], ["masked"]),
              n("Softmax", ["masked"], ["probs"], axis=-1), n("MatMul", ["probs", "v_all"], ["mixed"]),
              n("Squeeze", ["mixed", "axis1"], ["h"]), n("Add", ["h", "x"], ["hidden"])]
    inits.append(_const("axes12", np.array([1, 2])))
    if state:  # a running sum of the real tokens' embeddings, fed to every position (carried when cached)
        inits.append(_const("tenth", np.float32(0.1)))
        nodes += [n("Neg", ["S"], ["minus_S"]), n("Unsqueeze", ["minus_S", "zero"], ["new_start"]),
                  n("Slice", ["attention_mask", "new_start", "big", "axis1"], ["new_mask"]),
                  n("Cast", ["new_mask"], ["new_mask_f"], to=TensorProto.FLOAT),
                  n("Unsqueeze", ["new_mask_f", "last_axis"], ["new_mask3"]), n("Mul", ["tok", "new_mask3"], ["real"]),
                  n("ReduceSum", ["real", "axis1"], ["added"], keepdims=0)]
        if cache:
            inputs.append(helper.make_tensor_value_info("past_state.0.s", TensorProto.FLOAT, ["batch_size", WIDTH]))
            outputs.append(helper.make_tensor_value_info("present_state.0.s", TensorProto.FLOAT, ["batch_size", WIDTH]))
            roles["past_state.0.s"] = "state"
            nodes.append(n("Add", ["past_state.0.s", "added"], ["present_state.0.s"]))
        else:
            nodes.append(n("Identity", ["added"], ["present_state.0.s"]))
        nodes += [n("Mul", ["present_state.0.s", "tenth"], ["s_small"]), n("Unsqueeze", ["s_small", "axis1"], ["s3"]),
                  n("Add", ["hidden", "s3"], ["hidden_s"])]
        hidden = "hidden_s"
    else:
        hidden = "hidden"
    nodes.append(n("MatMul", [hidden, "wo"], ["all_logits"]))
    if keep:  # logits_to_keep = k > 0: the last k positions only
        inits.append(_const("logits_to_keep", np.int64(0)))  # listed as an input too: overridable
        inputs.append(helper.make_tensor_value_info("logits_to_keep", TensorProto.INT64, []))
        nodes += [n("Neg", ["logits_to_keep"], ["minus_k"]), n("Greater", ["logits_to_keep", "zero"], ["some"]),
                  n("Where", ["some", "minus_k", "zero"], ["start0"]), n("Unsqueeze", ["start0", "zero"], ["start"]),
                  n("Slice", ["all_logits", "start", "big", "axis1"], ["logits"])]
    else:
        nodes.append(n("Identity", ["all_logits"], ["logits"]))
    graph = helper.make_graph(nodes, "toy", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # initializers outside the inputs are overridable from IR 4 on
    helper.set_model_props(model, {"tfcompiler.io_roles": json.dumps(roles), "tfcompiler.topology": "decoder",
                                   "tfcompiler.vocab_size": str(VOCAB)})
    onnx.checker.check_model(model)
    return model.SerializeToString()
