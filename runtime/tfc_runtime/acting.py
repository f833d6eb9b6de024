"""Acting in an environment with a compiled Decision Transformer (a decoder reading the `trajectory` input, with
the `action` head), as Hugging Face's example evaluates DecisionTransformerModel (its get_action): the episode so
far is kept; each action comes from one call over its last `context` steps, left-padded to `context` steps with
zeros (attention_mask 0 there, timesteps 0), the current step's action a zero placeholder (the state's token never
sees it: the stream is causal); the action is the last step's action_preds, and it becomes that step's action in
the history. The caller steps its environment and hands back the new state and the reward, which is taken off the
return-to-go (after dividing it by `scale`, as the target return was).

Each call recomputes the window, as Hugging Face does: the window slides once the episode is longer than
`context`, which changes every token's past, so there is no key/value cache to carry (the `trajectory` input's
no_cache_because says the same).

    actor = Actor(Model("dt.onnx"), scale=1000.0, state_mean=mean, state_std=std)
    action = actor.start(env.reset(), target_return=3600.0)
    while not done:
        state, reward, done, _ = env.step(action)
        action = actor.step(state, reward)
"""
from __future__ import annotations

import numpy as np

from .session import Model

GRAPH_INPUTS = ("states", "actions", "returns_to_go", "timesteps", "attention_mask")


class Actor:
    """One episode at a time, batch 1. ``context``: the steps a call reads (default: the model's max_length);
    states are normalised as ``(state - state_mean) / state_std`` and returns divided by ``scale`` before the
    model sees them (the training data's statistics, which the caller knows)."""

    def __init__(self, model: Model | str, context: int | None = None, scale: float = 1.0,
                 state_mean: np.ndarray | float = 0.0, state_std: np.ndarray | float = 1.0):
        self.model = model if isinstance(model, Model) else Model(model)
        ports = {port.name: port for port in self.model.inputs}
        if sorted(ports) != sorted(GRAPH_INPUTS) or "action_preds" not in {o.name for o in self.model.outputs}:
            raise ValueError(f"Actor needs a Decision Transformer: inputs {list(GRAPH_INPUTS)} and output "
                             f"action_preds; this model takes {sorted(ports)}")
        self.state_dim, self.act_dim = ports["states"].shape[-1], ports["actions"].shape[-1]
        self.context = context or self.model.limits.max_length
        if not isinstance(self.context, int) or self.context < 1:
            raise ValueError(f"context: expected a number of steps >= 1, got {self.context!r}")
        if not scale or not np.isfinite(scale):
            raise ValueError(f"scale: expected a finite number other than 0, got {scale!r}")
        self.scale, self.state_mean, self.state_std = float(scale), state_mean, state_std
        self.states = self.actions = self.returns = self.timesteps = None

    def start(self, state, target_return: float) -> np.ndarray:
        """Begin an episode in ``state`` aiming at ``target_return``: the first action (act_dim,)."""
        self.states = np.zeros((0, self.state_dim), np.float32)
        self.actions = np.zeros((0, self.act_dim), np.float32)
        self.returns = np.zeros(0, np.float32)
        self.timesteps = np.zeros(0, np.int64)
        return self._next(state, float(target_return) / self.scale, 0)

    def step(self, state, reward: float) -> np.ndarray:
        """The environment's new ``state`` and the ``reward`` the last action earned: the next action."""
        if self.states is None:
            raise ValueError("step before start: begin the episode with Actor.start(state, target_return)")
        return self._next(state, float(self.returns[-1]) - float(reward) / self.scale, int(self.timesteps[-1]) + 1)

    def _next(self, state, return_to_go: float, timestep: int) -> np.ndarray:
        state = np.asarray(state, np.float32).reshape(-1)
        if state.shape != (self.state_dim,):
            raise ValueError(f"state: expected {self.state_dim} numbers, got shape {list(np.shape(state))}")
        normalised = (state - self.state_mean) / self.state_std
        self.states = np.concatenate([self.states, normalised[None].astype(np.float32)])
        self.actions = np.concatenate([self.actions, np.zeros((1, self.act_dim), np.float32)])  # its placeholder
        self.returns = np.append(self.returns, np.float32(return_to_go))
        self.timesteps = np.append(self.timesteps, np.int64(timestep))
        action = self.model.run(self.window())["action_preds"][0, -1]
        self.actions[-1] = action
        return action

    def window(self) -> dict[str, np.ndarray]:
        """The model's inputs: the last `context` steps, left-padded with zeros to `context` steps."""
        kept = slice(-self.context, None)
        padding = self.context - len(self.timesteps[kept])

        def padded(values):
            values = values[kept]
            return np.concatenate([np.zeros((padding,) + values.shape[1:], values.dtype), values])[None]

        return {"states": padded(self.states), "actions": padded(self.actions),
                "returns_to_go": padded(self.returns)[..., None], "timesteps": padded(self.timesteps),
                "attention_mask": padded(np.ones(len(self.timesteps), np.int64))}
