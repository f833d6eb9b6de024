"""Head `action` (Decision Transformer, Chen et al. 2021; Hugging Face's DecisionTransformerModel): the stream's
states (B, 3T, D) read back as (B, T, 3, D), token 0 a step's return-to-go, 1 its state, 2 its action;
action_preds = tanh(x_state W_a + b_a) (tanh where the spec keeps it), state_preds = x_action W_s + b_s,
return_preds = x_action W_r + b_r."""
from __future__ import annotations

import numpy as np

from ..registry import HEADS


@HEADS.register("action")
class Action:
    def outputs(self, ref, head, x, mask):
        steps = x.reshape(x.shape[0], -1, 3, x.shape[-1])
        state, action = steps[:, :, 1], steps[:, :, 2]
        actions = ref.linear(state, "predict_action", bias=True)
        return {"state_preds": ref.linear(action, "predict_state", bias=True),
                "action_preds": np.tanh(actions) if head.tanh else actions,
                "return_preds": ref.linear(action, "predict_return", bias=True)}
