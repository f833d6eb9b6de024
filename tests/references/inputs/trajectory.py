"""Input layer `trajectory` (Decision Transformer, Chen et al. 2021), written from the paper and Hugging Face's
DecisionTransformerModel.forward: per step t, the tokens R̂_t W_R + b_R + E[t̂], s_t W_s + b_s + E[t̂] and
a_t W_a + b_a + E[t̂] (E the timestep table, t̂ the step's timestep), woven into the stream (R̂_1, s_1, a_1,
R̂_2, ...), layer-normalised (epsilon 1e-5), plus GPT-2's position row 0 on every token where the spec keeps it;
the mask (B, T) woven the same way, each step's three tokens real or padding together."""
from __future__ import annotations

import numpy as np

from ..formulas import layer_norm
from ..registry import INPUTS


def woven(*xs):
    """(B, T, ...) sequences -> (B, 3T, ...): step t's entries at 3t, 3t + 1, 3t + 2, in the order given."""
    out = np.empty((xs[0].shape[0], len(xs) * xs[0].shape[1]) + xs[0].shape[2:], dtype=np.result_type(*xs))
    for j, x in enumerate(xs):
        out[:, j::len(xs)] = x
    return out


@INPUTS.register("trajectory")
class Trajectory:
    def source(self, feeds, prefix: str):
        """The stack's input: the feeds themselves (four inputs make a step)."""
        return feeds

    def mask(self, ref, options, mask):
        """The stack's mask (B, 3T) from attention_mask (B, T)."""
        return None if mask is None else woven(mask, mask, mask)

    def embed(self, ref, options, scope: str, feeds, token_types):
        w = ref.w
        time = w[f"{scope}.embed_timestep.weight"][feeds["timesteps"]]

        def token(name, graph_input):
            x = feeds[graph_input].astype("float64")
            return x @ w[f"{scope}.embed_{name}.weight"] + w[f"{scope}.embed_{name}.bias"] + time

        x = woven(token("return", "returns_to_go"), token("state", "states"), token("action", "actions"))
        x = layer_norm(x, w[f"{scope}.embed_ln.weight"], w[f"{scope}.embed_ln.bias"], 1e-5)
        return x + w[f"{scope}.position_bias"] if options.position_bias else x
