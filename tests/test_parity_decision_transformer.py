"""Parity with Hugging Face transformers' DecisionTransformerModel (Chen et al. 2021) from small random configs
(no hub): saved, imported with `tfc import-hf` (the `trajectory` input, the `action` head), compiled and run on
onnxruntime against the torch model at fp32 — state_preds, action_preds and return_preds over batches left-padded
as Hugging Face's evaluation pads them (attention_mask 0 on the first steps, zeros in the padded steps); and
tfc_runtime's Actor against Hugging Face's get_action loop over the same weights in a fixed fake environment."""
from __future__ import annotations

import numpy as np
import pytest

from test_parity_hf import TOLERANCE, import_and_compile, randomise

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

CONFIG = dict(state_dim=5, act_dim=3, hidden_size=32, n_layer=2, n_head=4, max_ep_len=50, n_positions=60)
OUTPUTS = ("state_preds", "action_preds", "return_preds")


def decision_transformer(seed: int = 3, **options):
    config = transformers.DecisionTransformerConfig(**{**CONFIG, **options})
    return randomise(transformers.DecisionTransformerModel(config), seed=seed)


def left_padded_steps(batch: int, steps: int, lengths: list[int], seed: int) -> dict[str, np.ndarray]:
    """Random steps, each row's first steps padding as get_action pads them: zero states, actions, returns-to-go
    and timesteps, attention_mask 0; the real steps' timesteps consecutive from a random start."""
    rng = np.random.default_rng(seed)
    feeds = {"states": rng.standard_normal((batch, steps, CONFIG["state_dim"])),
             "actions": rng.uniform(-1, 1, (batch, steps, CONFIG["act_dim"])),
             "returns_to_go": rng.standard_normal((batch, steps, 1)),
             "timesteps": np.zeros((batch, steps), np.int64), "attention_mask": np.zeros((batch, steps), np.int64)}
    for row, length in enumerate(lengths):
        start = int(rng.integers(0, CONFIG["max_ep_len"] - length))
        feeds["timesteps"][row, steps - length:] = np.arange(start, start + length)
        feeds["attention_mask"][row, steps - length:] = 1
        for name in ("states", "actions", "returns_to_go"):
            feeds[name][row, :steps - length] = 0.0
    return {name: value.astype(np.float32) if value.dtype == np.float64 else value for name, value in feeds.items()}


def assert_close(got, want, real, what: str):
    assert got.shape == want.shape, what
    error = float(np.abs(got[real] - want[real]).max())
    assert error <= TOLERANCE * max(1.0, float(np.abs(want[real]).max())), f"{what}: {error}"


@pytest.mark.parametrize("options", [{}, dict(action_tanh=False, activation_function="gelu_new", n_inner=40)],
                         ids=["hopper_like", "no_tanh_gelu"])
def test_decision_transformer_matches_transformers(tmp_path, options):
    model = decision_transformer(**options)
    session = import_and_compile(model, tmp_path)
    assert sorted(i.name for i in session.get_inputs()) == sorted(
        ["states", "actions", "returns_to_go", "timesteps", "attention_mask"])
    assert sorted(o.name for o in session.get_outputs()) == sorted(OUTPUTS)
    feeds = left_padded_steps(3, 7, [7, 4, 1], seed=1)
    with torch.no_grad():
        want = model(**{name: torch.from_numpy(value) for name, value in feeds.items()})
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
    real = feeds["attention_mask"] == 1  # a padded step's predictions are not defined (its tokens see no real one)
    for name in OUTPUTS:
        assert_close(got[name], want[name].numpy(), real, name)
    if options.get("action_tanh", True):
        assert np.abs(got["action_preds"]).max() <= 1.0
    else:
        assert np.abs(got["action_preds"]).max() > 1.0  # the unit-scale weights reach past tanh's range


def test_padding_hides_the_steps_before(tmp_path):
    """A left-padded row predicts what the row alone does: padded steps reach no real token."""
    session = import_and_compile(decision_transformer(seed=4), tmp_path)
    feeds = left_padded_steps(1, 6, [3], seed=2)
    alone = {name: value[:, 3:] for name, value in feeds.items()}
    padded, short = session.run(None, feeds), session.run(None, alone)
    for got, want in zip(padded, short):
        np.testing.assert_allclose(got[:, 3:], want, atol=1e-5, rtol=0)


class FakeEnvironment:
    """A fixed deterministic environment: s' = tanh(A s + B a), reward = the mean of s'."""

    def __init__(self, state_dim: int, act_dim: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.a = rng.standard_normal((state_dim, state_dim)) / np.sqrt(state_dim)
        self.b = rng.standard_normal((state_dim, act_dim)) / np.sqrt(act_dim)
        self.start = rng.standard_normal(state_dim)

    def reset(self) -> np.ndarray:
        self.state = self.start.copy()
        return self.state

    def step(self, action):
        self.state = np.tanh(self.a @ self.state + self.b @ np.asarray(action, np.float64))
        return self.state, float(self.state.mean()), False, {}


def hugging_face_episode(model, env, context: int, target_return: float, scale: float, mean, std, steps: int):
    """Hugging Face's evaluation loop for DecisionTransformerModel (its get_action), as the transformers example
    writes it: the history kept, the last `context` steps left-padded with zeros, the last action_preds."""
    state_dim, act_dim = model.config.state_dim, model.config.act_dim

    def get_action(states, actions, returns_to_go, timesteps):
        states, actions = states.reshape(1, -1, state_dim)[:, -context:], actions.reshape(1, -1, act_dim)[:, -context:]
        returns_to_go, timesteps = returns_to_go.reshape(1, -1, 1)[:, -context:], timesteps.reshape(1, -1)[:, -context:]
        padding = context - states.shape[1]
        attention_mask = torch.cat([torch.zeros(padding), torch.ones(states.shape[1])]).to(torch.long).reshape(1, -1)
        states = torch.cat([torch.zeros((1, padding, state_dim)), states], dim=1).float()
        actions = torch.cat([torch.zeros((1, padding, act_dim)), actions], dim=1).float()
        returns_to_go = torch.cat([torch.zeros((1, padding, 1)), returns_to_go], dim=1).float()
        timesteps = torch.cat([torch.zeros((1, padding), dtype=torch.long), timesteps], dim=1)
        _, action_preds, _ = model(states=states, actions=actions, returns_to_go=returns_to_go, timesteps=timesteps,
                                   attention_mask=attention_mask, return_dict=False)
        return action_preds[0, -1]

    mean, std = torch.from_numpy(mean).float(), torch.from_numpy(std).float()
    states = torch.from_numpy(env.reset()).reshape(1, state_dim).float()
    actions, target = torch.zeros((0, act_dim)), torch.tensor(target_return / scale).reshape(1, 1)
    timesteps, taken = torch.tensor(0).reshape(1, 1), []
    with torch.no_grad():
        for t in range(steps):
            actions = torch.cat([actions, torch.zeros((1, act_dim))], dim=0)
            action = get_action((states - mean) / std, actions, target, timesteps)
            actions[-1] = action
            taken.append(action.numpy())
            state, reward, _, _ = env.step(action.numpy())
            states = torch.cat([states, torch.from_numpy(state).reshape(1, state_dim).float()], dim=0)
            target = torch.cat([target, (target[0, -1] - reward / scale).reshape(1, 1)], dim=1)
            timesteps = torch.cat([timesteps, torch.ones((1, 1), dtype=torch.long) * (t + 1)], dim=1)
    return np.stack(taken)


def test_actor_matches_hugging_faces_loop(tmp_path):
    """Ten steps with a context of 4 (the window slides from the fifth step on), state normalisation and a return
    scale: each action tfc_runtime's Actor takes equals the one Hugging Face's loop takes in the same environment."""
    from tfc_runtime import Actor, Model

    model = decision_transformer(seed=6)
    import_and_compile(model, tmp_path)
    rng = np.random.default_rng(7)
    mean, std = 0.1 * rng.standard_normal(CONFIG["state_dim"]), 1 + 0.2 * rng.random(CONFIG["state_dim"])
    context, target_return, scale, steps = 4, 36.0, 10.0, 10
    want = hugging_face_episode(model, FakeEnvironment(5, 3), context, target_return, scale, mean, std, steps)
    env = FakeEnvironment(5, 3)
    actor = Actor(Model(str(tmp_path / "model.onnx")), context=context, scale=scale, state_mean=mean, state_std=std)
    taken = [actor.start(env.reset(), target_return)]
    for _ in range(steps - 1):
        state, reward, _, _ = env.step(taken[-1])
        taken.append(actor.step(state, reward))
    np.testing.assert_allclose(np.stack(taken), want, atol=TOLERANCE, rtol=0)
    assert len(np.unique(np.round(want, 3), axis=0)) == steps  # the actions change from step to step
    assert actor.window()["attention_mask"].tolist() == [[1] * context]  # the window is full and slid
    assert actor.window()["timesteps"].tolist() == [list(range(steps - context, steps))]
