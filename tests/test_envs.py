import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from sklearn.metrics import f1_score

import rlmetric.envs  # noqa: F401  (registers rlmetric/Metric-v0)
from rlmetric.envs import MetricEnv


def data(rows=50, classes=2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(rows, 3)).astype("float32"), rng.integers(0, classes, rows)


@pytest.mark.parametrize("policy, classes", [("bernoulli", 2), ("categorical", 3)])
def test_passes_gymnasium_env_checker(policy, classes):
    x, y = data(classes=classes)
    reward = "f1" if policy == "bernoulli" else "macro_f1"
    env = MetricEnv(x, y, reward=reward, batch_size=8, policy=policy, seed=0)
    check_env(env, skip_render_check=True)


def test_episode_is_one_pass_and_pays_the_batch_metric():
    x, y = data(rows=50)
    env = MetricEnv(x, y, reward="f1", batch_size=16, shuffle=False)
    observation, _ = env.reset(seed=0)
    assert observation.shape == (16, 3) and np.array_equal(observation, x[:16])
    prediction = np.ones(16, np.int8)
    steps, terminated = 0, False
    while not terminated:
        observation, score, terminated, truncated, _ = env.step(prediction)
        assert not truncated
        rows = slice(steps * 16, steps * 16 + 16)
        assert score == pytest.approx(f1_score(y[rows], prediction), abs=1e-6)
        steps += 1
    assert steps == 3  # 50 // 16 full batches


def test_reset_seed_gives_a_reproducible_order():
    x, y = data()
    env = MetricEnv(x, y, batch_size=10)
    first, _ = env.reset(seed=3)
    again, _ = env.reset(seed=3)
    other, _ = env.reset(seed=4)
    assert np.array_equal(first, again) and not np.array_equal(first, other)


def test_registered_and_errors():
    x, y = data()
    env = gym.make("rlmetric/Metric-v0", x=x, y=y, reward="f1", batch_size=10)
    assert env.unwrapped.action_space.shape == (10,)
    with pytest.raises(ValueError, match=r"expects predictions of shape \(10,\).*\(9,\)"):
        env.reset(seed=0)
        env.step(np.zeros(9, np.int8))
    with pytest.raises(ValueError, match=r"binary labels"):
        MetricEnv(x, y + 1, batch_size=10)
    with pytest.raises(ValueError, match=r"batch_size must be an int in \[1, 50\].*0"):
        MetricEnv(x, y, batch_size=0)


@pytest.mark.parametrize(
    "policy, classes, action_value, expected",
    [
        ("bernoulli", 2, 2, r"0 or 1 .*values \[2\]"),
        ("bernoulli", 2, 0.5, r"0 or 1 .*values \[0\.5\]"),
        ("categorical", 3, 3, r"in \[0, 3\) .*values \[3\]"),
        ("categorical", 3, 1.5, r"in \[0, 3\) .*values \[1\.5\]"),
    ],
)
def test_step_refuses_actions_that_are_not_decisions(policy, classes, action_value, expected):
    # (a Bernoulli action of 2 used to be paid an F1 of 0.92; a class id 1.5 was read as 1)
    x, y = data(classes=classes)
    reward = "f1" if policy == "bernoulli" else "macro_f1"
    env = MetricEnv(x, y, reward=reward, batch_size=8, policy=policy, seed=0)
    env.reset()
    with pytest.raises(ValueError, match=expected):
        env.step(np.full(8, action_value))


def test_labels_and_observations_that_cannot_be_used_are_refused():
    x, y = data(classes=3)
    with pytest.raises(ValueError, match=r"class ids in \[0, 3\).*1\.5"):
        MetricEnv(x, np.where(y == 2, 1.5, y), batch_size=8, policy="categorical", num_classes=3)
    with pytest.raises(TypeError, match="numeric labels.*LabelEncoder"):
        MetricEnv(x, np.where(y == 1, "yes", "no"), batch_size=8)
    with pytest.raises(ValueError, match="2 NaN or infinite"):
        MetricEnv(np.where(np.arange(150).reshape(50, 3) < 2, np.nan, x), y % 2, batch_size=8)
