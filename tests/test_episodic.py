"""fit_env: episodic REINFORCE on gymnasium environments."""

import gymnasium as gym
import keras
import numpy as np
import pytest

from rlmetric import PolicyGradientTrainer, policies
from rlmetric.envs import MetricEnv
from rlmetric.episodic import policy_for_space


def net(inputs, outputs, input_shape=None):
    return keras.Sequential(
        [
            keras.Input(input_shape or (inputs,)),
            keras.layers.Dense(32, activation="tanh"),
            keras.layers.Dense(outputs),
        ]
    )


def compiled(model, lr=0.03):
    trainer = PolicyGradientTrainer(model, reward=None, policy="categorical", seed=0)
    trainer.compile(optimizer=keras.optimizers.Adam(lr))
    return trainer


class Toy(gym.Env):
    """One observation, two actions; reward and episode length are configurable."""

    def __init__(self, reward=1.0, length=5):
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.reward, self.length = reward, length

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(3, np.float32), {}

    def step(self, action):
        self.t += 1
        done = self.length is not None and self.t >= self.length
        return np.zeros(3, np.float32), self.reward, done, False, {}


def test_cartpole_return_rises_well_above_random():
    keras.utils.set_random_seed(0)
    env = gym.make_vec("CartPole-v1", num_envs=8, vectorization_mode="sync")
    trainer = compiled(net(4, 2))
    history = trainer.fit_env(env, episodes=120, baseline="group_norm", seed=0, verbose=0)
    returns = history.episode_returns
    assert len(returns) == 120 and len(history.history["mean_return"]) == 15
    # a uniformly random policy averages about 22 steps
    assert np.mean(returns[:16]) < 40 and np.mean(returns[-24:]) > 80, returns


def test_early_stopping_on_mean_return():
    env = gym.make_vec("CartPole-v1", num_envs=4, vectorization_mode="sync")
    trainer = compiled(net(4, 2), lr=0.0)  # nothing improves
    history = trainer.fit_env(
        env,
        episodes=400,
        seed=0,
        verbose=0,
        callbacks=[keras.callbacks.EarlyStopping("mean_return", mode="max", patience=2)],
    )
    assert len(history.episode_returns) < 400


def test_gaussian_policy_on_a_box_space():
    env = gym.make("Pendulum-v1")
    model = net(3, 2)  # mean and log standard deviation of the one torque
    trainer = compiled(model, lr=1e-3)
    before = [w.numpy().copy() for w in model.weights]
    history = trainer.fit_env(env, episodes=2, gamma=0.9, seed=0, verbose=0)
    assert np.all(np.isfinite(history.episode_returns)) and len(history.episode_returns) == 2
    assert any(not np.allclose(b, w.numpy()) for b, w in zip(before, model.weights, strict=True))
    assert isinstance(policy_for_space(env.action_space), policies.Gaussian)


class TorqueBandit(gym.Env):
    """One step per episode: a 1-D action a is paid -(a - 0.7)^2."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.ones(2, np.float32), {}

    def step(self, action):
        reward = -float((np.asarray(action).ravel()[0] - 0.7) ** 2)
        return np.ones(2, np.float32), reward, True, False, {}


def test_gaussian_policy_moves_its_mean_toward_the_best_action():
    # a wrong-signed gradient moves the mean away from 0.7 (the older test only saw the weights
    # change)
    env = gym.vector.SyncVectorEnv([TorqueBandit for _ in range(16)])
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, kernel_initializer="zeros")])
    trainer = compiled(model, lr=0.05)
    trainer.fit_env(env, episodes=16 * 60, baseline="moving_average", seed=0, verbose=0)
    mean = float(model(np.ones((1, 2), np.float32))[0, 0])
    assert abs(mean - 0.7) < 0.2, mean


@pytest.mark.parametrize("policy, classes", [("bernoulli", 2), ("categorical", 3)])
def test_metric_env_multibinary_and_multidiscrete(policy, classes):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 5)).astype("float32")
    y = rng.integers(0, classes, 64)
    env = MetricEnv(
        x,
        y,
        reward="f1" if policy == "bernoulli" else "macro_f1",
        batch_size=16,
        policy=policy,
        seed=0,
    )
    outputs = 16 if policy == "bernoulli" else 16 * classes
    model = keras.Sequential(
        [keras.Input((16, 5)), keras.layers.Flatten(), keras.layers.Dense(outputs)]
    )
    trainer = compiled(model)
    history = trainer.fit_env(env, episodes=3, gamma=0.0, seed=0, verbose=0)
    assert len(history.episode_returns) == 3 and history.history["mean_length"][0] == 4


def test_errors_are_named():
    trainer = compiled(net(3, 2))
    with pytest.raises(ValueError, match=r"cannot train a policy for the action space Tuple"):
        env = Toy()
        env.action_space = gym.spaces.Tuple([gym.spaces.Discrete(2), gym.spaces.Discrete(3)])
        trainer.fit_env(env, episodes=1, verbose=0)
    with pytest.raises(ValueError, match=r"outputs of shape \(1, 2\).*needs 3 outputs"):
        env = Toy()
        env.action_space = gym.spaces.Discrete(3)
        trainer.fit_env(env, episodes=1, verbose=0)
    with pytest.raises(ValueError, match=r"cannot take observations of shape \(4,\)"):
        compiled(net(3, 2)).fit_env(gym.make("CartPole-v1"), episodes=1, verbose=0)
    with pytest.raises(ValueError, match=r"non-finite reward nan at step 0 of episode 0"):
        trainer.fit_env(Toy(reward=np.nan), episodes=1, verbose=0)
    with pytest.raises(RuntimeError, match=r"did not end within max_episode_steps=50"):
        trainer.fit_env(Toy(length=None), episodes=1, max_episode_steps=50, verbose=0)
    with pytest.raises(ValueError, match=r"baseline='leave_one_out'.*does not apply to episodes"):
        trainer.fit_env(Toy(), baseline="leave_one_out", episodes=1, verbose=0)
    with pytest.raises(ValueError, match=r"nvec=\[2, 3\]"):
        env = Toy()
        env.action_space = gym.spaces.MultiDiscrete([2, 3])
        trainer.fit_env(env, episodes=1, verbose=0)
    untrained = PolicyGradientTrainer(net(3, 2), reward=None)
    with pytest.raises(ValueError, match=r"compile"):
        untrained.fit_env(Toy(), episodes=1, verbose=0)


def test_a_trainer_without_reward_refuses_labelled_data():
    trainer = PolicyGradientTrainer(net(3, 2), reward=None)
    trainer.compile(optimizer="adam")
    with pytest.raises(ValueError, match=r"reward=None, for fit_env on gymnasium envs only"):
        trainer.fit(np.zeros((4, 3), "float32"), np.zeros(4, "int32"), verbose=0)
    restored = PolicyGradientTrainer.from_config(trainer.get_config())
    assert restored.reward is None


def test_value_model_baseline_is_trained_alongside():
    keras.utils.set_random_seed(1)
    env = gym.make_vec("CartPole-v1", num_envs=8, vectorization_mode="sync")
    value_model = net(4, 1)
    before = [w.numpy().copy() for w in value_model.weights]
    trainer = compiled(net(4, 2))
    history = trainer.fit_env(
        env, episodes=80, value_model=value_model, value_weight=0.5, seed=1, verbose=0
    )
    assert np.mean(history.episode_returns[-16:]) > np.mean(history.episode_returns[:16])
    changed = [
        not np.allclose(b, w.numpy()) for b, w in zip(before, value_model.weights, strict=True)
    ]
    assert all(changed)
