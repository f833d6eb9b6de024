"""Input layer `trajectory`: Decision Transformer's returns-to-go, states and actions (Chen et al. 2021), as
Hugging Face's DecisionTransformerModel reads them.

Graph inputs, by Hugging Face's names: ``states`` (B, T, state_dim), ``actions`` (B, T, act_dim),
``returns_to_go`` (B, T, 1), float; ``timesteps`` (B, T), int64 in [0, max_ep_len); ``attention_mask`` (B, T),
1 for a real step. Each modality has its own linear embedding (``embed_return``, ``embed_state``,
``embed_action``, weights (in, width) and biases) and every step adds its timestep's row of ``embed_timestep``
(max_ep_len, width) to all three of its tokens: the timestep, not the token's place in the stream, is the
position. The tokens are interleaved into one stream of 3T, (R̂_1, s_1, a_1, R̂_2, ...), normalised by
``embed_ln`` (a LayerNorm, epsilon 1e-5, PyTorch's default, which Hugging Face's leaves as it is), and the mask is
interleaved the same way.

Hugging Face runs its GPT-2 trunk with ``position_ids`` all zero: the trunk's position table ``wpe`` adds its
row 0 to every token, after embed_ln. `position_bias` is that row, ``position_bias`` (width). So a spec reading
trajectories has `positional: none` (no positions by place in the stream) and a decoder (the stream is causal:
a state's token sees its return-to-go and the steps before, never its own action).

`model.max_length` counts steps (the inputs' axis T), not the stream's 3T tokens: nothing in the model is sized
by the stream's length, and Model.run holds the inputs to it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...language.kinds import INPUTS, InputKind
from ...language.model import Norm
from ...language.rules import At
from ...language.schema import option
from ..norm import build_norm
from .base import StackInput, padding_mask

EMBED_LN = Norm(kind="layer_norm", epsilon=1e-5)  # nn.LayerNorm(hidden_size): PyTorch's default epsilon
MODALITIES = ("return", "state", "action")  # a step's tokens, in the stream's order


@dataclass(frozen=True, kw_only=True)
class TrajectoryOptions(InputKind):
    """Decision Transformer's (return-to-go, state, action) steps: three tokens a step, one causal stream."""

    PAPER = "Chen et al. 2021 (Decision Transformer; Hugging Face's DecisionTransformerModel)"
    COMPUTES = "float `returns_to_go` (B, T, 1), `states` (B, T, state_dim), `actions` (B, T, act_dim), each " \
               "times its own matrix plus a bias, plus the `timesteps` (B, T) row of a learned table, " \
               "interleaved into 3T tokens (R̂_1, s_1, a_1, R̂_2, ...) and layer-normalised; the mask interleaved too"
    LOWERING = "`MatMul`, `Add`, `Gather`, `Unsqueeze`, `Concat`, `Reshape`, `LayerNormalization`"
    no_cache_because: ClassVar[str] = "a step is three tokens and acting slides a window over the steps, which " \
                                      "changes every token's past: acting recomputes the window (as Hugging " \
                                      "Face's get_action does)"

    state_dim: int = option(doc="The width of a state (Hugging Face's state_dim).", minimum=1)
    act_dim: int = option(doc="The width of an action (Hugging Face's act_dim).", minimum=1)
    max_ep_len: int = option(4096, doc="Rows of the timestep embedding `embed_timestep`: timesteps lie in "
                             "[0, max_ep_len) (Hugging Face's max_ep_len).", minimum=1)
    position_bias: bool = option(True, doc="A learned vector `position_bias` (width) added to every token after "
                                 "embed_ln: row 0 of the GPT-2 trunk's position table, which Hugging Face's "
                                 "DecisionTransformerModel adds to every token (it runs the trunk with "
                                 "position_ids all zero).")

    def parameters(self, spec) -> int:
        d = spec.model.width
        linears = (1 + 1) + (self.state_dim + 1) + (self.act_dim + 1)  # each modality's matrix and bias
        return (linears + self.max_ep_len + 2 + self.position_bias) * d  # + embed_ln's scale and bias

    def problems(self, spec, where):
        if spec.topology != "decoder":
            yield f"input 'trajectory' is one causal stream of (return-to-go, state, action) tokens: topology " \
                  f"'decoder', got '{spec.topology}'"
        if type(spec.positional).KIND != "none":
            yield At("kind", "a trajectory's positions are its timesteps (embed_timestep), not the tokens' places "
                     f"in the stream: set positional: none (got '{type(spec.positional).KIND}')")
        if spec.embedding.scale is not False or spec.embedding.norm:
            yield At("kind", "input 'trajectory' normalises its own tokens (embed_ln): leave embedding.scale and "
                     "embedding.norm unset", located="embedding")


def build_trajectory(ctx, options: TrajectoryOptions, spec, stack_name: str) -> StackInput:
    names = StackInput.input_names(spec, stack_name)
    d = spec.model.width
    widths = {"return": 1, "state": options.state_dim, "action": options.act_dim}
    graph_inputs = {"return": "returns_to_go", "state": "states", "action": "actions"}
    steps = ctx.input("timesteps", "int64", names.shape, role="timesteps", range=options.max_ep_len)
    time_BTD = ctx.op("gather", ctx.param("embed_timestep.weight", (options.max_ep_len, d), "embedding"), steps,
                      label="TimestepEmbedding")
    tokens = []
    for modality in MODALITIES:
        value = ctx.input(graph_inputs[modality], "float32", names.shape + (widths[modality],), role="vectors")
        tokens.append(ctx.op("add", ctx.linear(value, d, f"embed_{modality}"), time_BTD))
    stream = ctx.op("interleave", *tokens, label="Steps")  # (B, 3T, D): R̂_1, s_1, a_1, R̂_2, ...
    stream = build_norm(ctx, stream, EMBED_LN, "embed_ln")
    if options.position_bias:
        stream = ctx.op("add", stream, ctx.param("position_bias", (d,), "embedding"), label="PositionBias")
    mask = padding_mask(ctx, names)
    stream_mask = ctx.op("interleave", *[mask] * len(MODALITIES), label="StepMask")
    return StackInput(hidden=stream, mask=stream_mask, ids=stream)


INPUTS.register("trajectory", TrajectoryOptions, build_trajectory, examples={
    "trajectory_without_position_bias": """
topology: decoder
input: {kind: trajectory, state_dim: 2, act_dim: 1, max_ep_len: 30, position_bias: false}
positional: none
block: {placement: pre, ffn: {activation: gelu_tanh}}
decoder: {layers: 1}
head: {kind: none}
""",
})
