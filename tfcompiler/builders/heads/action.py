"""Head `action`: Decision Transformer's predictions (Chen et al. 2021) over the stream of (return-to-go, state,
action) tokens the `trajectory` input makes, as Hugging Face's DecisionTransformerModel computes them: the action
from each step's state token (``predict_action``: a linear map, tanh with `tanh`, Hugging Face's action_tanh), the
next state and the next return-to-go from each step's action token (``predict_state``, ``predict_return``: linear
maps). Outputs ``state_preds`` (B, T, state_dim), ``action_preds`` (B, T, act_dim), ``return_preds`` (B, T, 1).

A state's token has seen that step's return-to-go and state and every earlier step, never its own action (the
stream is causal): action_preds[:, t] is the action to take at step t. Acting with the model (tfc_runtime.acting)
reads the last step's."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...language.kinds import HEADS, HeadKind
from ...language.schema import option
from ..inputs.trajectory import MODALITIES

READS = {"state_preds": ("action", "predict_state"), "action_preds": ("state", "predict_action"),
         "return_preds": ("action", "predict_return")}  # output: (the token it reads, its linear map)


@dataclass(frozen=True, kw_only=True)
class ActionOptions(HeadKind):
    """Decision Transformer's predictions: the action from each state token, the next state and return-to-go
    from each action token."""

    PAPER = "Chen et al. 2021 (Decision Transformer; Hugging Face's DecisionTransformerModel)"
    COMPUTES = "every third token: action_preds from each state token (a linear map, tanh), state_preds and " \
               "return_preds from each action token (linear maps)"
    LOWERING = "`Slice` (step 3), `MatMul`, `Add`, `Tanh`"
    no_cache_because: ClassVar[str] = "predicts over a window of steps that slides as an episode goes on: " \
                                      "acting recomputes the window (tfc_runtime.Actor)"

    tanh: bool = option(True, doc="tanh on the predicted action (Hugging Face's action_tanh): actions in "
                        "[-1, 1].")

    def parameters(self, spec) -> int:
        trajectory = spec.input_of("decoder")  # (another input is refused by `problems`)
        widths = getattr(trajectory, "state_dim", 0) + getattr(trajectory, "act_dim", 0) + 1
        return (spec.model.width + 1) * widths

    def problems(self, spec, where):
        if spec.decoder is None or type(spec.input_of("decoder")).KIND != "trajectory":
            yield "head 'action' predicts from the state and action tokens of a trajectory: it needs a decoder " \
                  "reading input kind 'trajectory'"


def build_action_head(ctx, options: ActionOptions, spec, hidden, mask) -> dict:
    """hidden (B, 3T, D), the stream's final states -> the three predictions (B, T, ...) by Hugging Face's names."""
    trajectory = spec.input_of("decoder")
    widths = {"predict_state": trajectory.state_dim, "predict_action": trajectory.act_dim, "predict_return": 1}
    tokens = {name: ctx.op("deinterleave", hidden, count=len(MODALITIES), index=MODALITIES.index(name),
                           label=f"{name.title()}Tokens") for name in ("state", "action")}  # (B, T, D) each
    outputs = {}
    for output, (token, module) in READS.items():
        with ctx.at(module):
            outputs[output] = ctx.linear(tokens[token], widths[module], "")
    if options.tanh:
        with ctx.at("predict_action"):
            outputs["action_preds"] = ctx.op("tanh", outputs["action_preds"])
    return outputs


HEADS.register("action", ActionOptions, build_action_head, examples={
    "decision_transformer_actions": """
topology: decoder
model: {heads: 1}
input: {kind: trajectory, state_dim: 5, act_dim: 3, max_ep_len: 20}
positional: none
block: {placement: pre, ffn: {activation: relu}}
decoder: {layers: 2}
head: {kind: action}
""",
    "actions_without_tanh": """
topology: decoder
input: {kind: trajectory, state_dim: 2, act_dim: 4, max_ep_len: 25, position_bias: false}
positional: none
block: {placement: pre}
decoder: {layers: 1}
head: {kind: action, tanh: false}
""",
})
