"""Episodic REINFORCE on gymnasium environments, with the library's policies and baselines.

[`fit_env`][rlmetric.episodic.fit_env] (also ``PolicyGradientTrainer.fit_env``) trains the trainer's
Keras model as a
policy on any gymnasium env whose action space is ``Discrete``, ``MultiBinary``,
``MultiDiscrete`` (equal sizes) or ``Box`` (Gaussian policy), from the rewards of ``env.step``.
Each update runs one episode in each of the ``n`` sub-environments of a vector env (or one
episode of a plain env), computes the discounted reward-to-go ``G_t`` of every step, subtracts a
baseline and follows
[`rlmetric.estimators.score_function_surrogate`][rlmetric.estimators.score_function_surrogate] with
each time step as
one sample: ``-mean_t (G_t - b_t) log pi(a_t | s_t)``. Actions are sampled inside a
``tf.function``: no ``model.predict`` per step.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import keras
import numpy as np
import tensorflow as tf

from rlmetric import baselines as baselines_lib
from rlmetric import policies as policies_lib
from rlmetric.callbacks import SwitchEstimator
from rlmetric.estimators import score_function_surrogate

__all__ = ["fit_env", "policy_for_space"]


class _SpaceAdapter:
    """How a model's outputs map to a policy over one action space."""

    def __init__(self, space: gym.Space) -> None:
        self.space = space
        if isinstance(space, gym.spaces.Discrete):
            self.policy, self.logits_shape = policies_lib.Categorical(), (int(space.n),)
        elif isinstance(space, gym.spaces.MultiBinary):
            self.policy, self.logits_shape = policies_lib.Bernoulli(), tuple(np.atleast_1d(space.n))
        elif isinstance(space, gym.spaces.MultiDiscrete):
            sizes = np.unique(space.nvec)
            if sizes.size != 1:
                raise ValueError(
                    f"MultiDiscrete action spaces need the same number of values in every "
                    f"dimension for one Categorical policy; received nvec={space.nvec.tolist()}."
                )
            self.policy = policies_lib.Categorical()
            self.logits_shape = (*space.nvec.shape, int(sizes[0]))
        elif isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
            self.policy, self.logits_shape = policies_lib.Gaussian(), (2 * space.shape[0],)
        else:
            raise ValueError(
                f"fit_env cannot train a policy for the action space {space}: supported are "
                "Discrete, MultiBinary, MultiDiscrete (equal sizes) and 1-D Box."
            )

    def logits(self, outputs: tf.Tensor) -> tf.Tensor:
        """Model outputs ``[B, prod(shape)]`` (or already shaped) -> ``[B, *logits_shape]``."""
        return tf.reshape(outputs, [-1, *self.logits_shape])

    def check_outputs(self, outputs_shape: tf.TensorShape) -> None:
        size = int(np.prod(outputs_shape[1:]))
        if size != int(np.prod(self.logits_shape)):
            halves = (
                ", means then log standard deviations" if self.policy.name == "gaussian" else ""
            )
            raise ValueError(
                f"The model returns outputs of shape {tuple(outputs_shape)}, but the action space "
                f"{self.space} needs {int(np.prod(self.logits_shape))} outputs per observation "
                f"(logits of shape {self.logits_shape} for a {self.policy.name} policy{halves})."
            )

    def to_env(self, actions: np.ndarray) -> np.ndarray:
        if isinstance(self.space, gym.spaces.Box):
            return np.clip(actions, self.space.low, self.space.high).astype(self.space.dtype)
        return actions.astype(self.space.dtype)


def policy_for_space(space: gym.Space) -> policies_lib.Policy:
    """The policy ``fit_env`` uses for an action space (raises ``ValueError`` if none fits).

    Examples:
        >>> import gymnasium as gym
        >>> from rlmetric.episodic import policy_for_space
        >>> type(policy_for_space(gym.spaces.Discrete(3))).__name__
        'Categorical'
    """
    return _SpaceAdapter(space).policy


def _returns_to_go(rewards: list[float], gamma: float) -> np.ndarray:
    returns = np.zeros(len(rewards), np.float32)
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        running = rewards[t] + gamma * running
        returns[t] = running
    return returns


def fit_env(
    trainer: Any,
    env: gym.Env,
    episodes: int = 1000,
    gamma: float = 0.99,
    baseline: Any = "moving_average",
    entropy_weight: float | None = None,
    value_model: keras.Model | None = None,
    value_weight: float = 0.5,
    max_episode_steps: int = 100_000,
    target_return: float | None = None,
    target_window: int = 100,
    callbacks: list | None = None,
    verbose: int = 1,
    seed: int | None = None,
) -> keras.callbacks.History:
    """Trains ``trainer.model`` as a policy on ``env`` with episodic REINFORCE.

    Args:
        trainer: a compiled [`rlmetric.PolicyGradientTrainer`][rlmetric.PolicyGradientTrainer] (its
            model and optimizer
            are used; its entropy weight unless ``entropy_weight`` is given).
        env: a gymnasium env, or a ``gymnasium.vector.VectorEnv`` (one episode per
            sub-environment and update).
        episodes: stop after this many episodes.
        gamma: discount of the reward-to-go.
        baseline: ``"moving_average"`` (EMA of earlier updates' mean return-to-go), ``"none"``,
            ``"group_norm"`` (advantages normalised over the update's steps; biased, common for
            CartPole) or a baseline object. Ignored when ``value_model`` is given.
        value_model: a Keras model observation -> ``[B, 1]`` state value, trained alongside with
            mean squared error weighted by ``value_weight`` and used as the baseline.
        max_episode_steps: an episode longer than this raises ``RuntimeError``.
        target_return: stop once the mean return of the last ``target_window`` episodes reaches it.
        callbacks: Keras callbacks; an "epoch" is one update, and the logs hold
            ``mean_return`` (of the update's episodes), ``mean_return_window``, ``episodes`` and
            ``mean_length``. ``EarlyStopping(monitor="mean_return", mode="max")`` works.

    Returns:
        A Keras ``History``; ``history.episode_returns`` lists every episode's return.

    Examples:
        >>> import gymnasium as gym, keras
        >>> from rlmetric import PolicyGradientTrainer
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])  # 2 actions
        >>> trainer = PolicyGradientTrainer(model, reward=None, policy="categorical", seed=0)
        >>> trainer.compile(optimizer=keras.optimizers.Adam(1e-2))
        >>> history = trainer.fit_env(gym.make("CartPole-v1"), episodes=4, verbose=0, seed=0)
        >>> len(history.episode_returns)
        4
    """
    if not getattr(trainer, "compiled", False) or trainer.optimizer is None:
        raise ValueError("Call trainer.compile(optimizer=...) before fit_env.")
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1]; received gamma={gamma!r}.")
    if any(isinstance(c, SwitchEstimator) for c in callbacks or []):
        raise TypeError(
            "SwitchEstimator switches the estimator of PolicyGradientTrainer.fit; fit_env "
            "trains by episodic REINFORCE and has no estimator to switch. Remove it from "
            "callbacks."
        )
    vectorized = isinstance(env, gym.vector.VectorEnv)
    num_envs = env.num_envs if vectorized else 1
    action_space = env.single_action_space if vectorized else env.action_space
    observation_space = env.single_observation_space if vectorized else env.observation_space
    if not isinstance(observation_space, gym.spaces.Box):
        raise TypeError(
            f"fit_env needs observations that are arrays (a Box observation space); "
            f"{type(env).__name__} has {observation_space}. Flatten dict or tuple observations "
            "first, e.g. gymnasium.wrappers.FlattenObservation(env)."
        )
    adapter = _SpaceAdapter(action_space)
    policy, model = adapter.policy, trainer.model
    baseline = baselines_lib.get(baseline)
    if isinstance(baseline, baselines_lib.LeaveOneOut | baselines_lib.Greedy):
        raise ValueError(
            f"baseline={baseline.name!r} compares samples of the same state and does not apply "
            "to episodes; use 'moving_average', 'none', 'group_norm' or a value_model."
        )
    entropy_weight = trainer.entropy_weight if entropy_weight is None else float(entropy_weight)
    probe = np.zeros((1, *observation_space.shape), np.float32)
    try:
        outputs = model(probe)
    except Exception as error:  # a model built for other inputs
        raise ValueError(
            f"The model cannot take observations of shape {observation_space.shape} from "
            f"{type(env).__name__}: {error}"
        ) from error
    adapter.check_outputs(outputs.shape)
    baseline_state = tf.Variable(baseline.initial_state(), trainable=False)
    seeds = keras.random.SeedGenerator(seed)
    value_variables = value_model.trainable_variables if value_model is not None else []

    @tf.function(reduce_retracing=True)
    def act(observations):
        logits = adapter.logits(tf.cast(model(observations, training=False), tf.float32))
        return policy.sample(logits, 1, seed=tf.cast(seeds.next(), tf.int32))[0]

    @tf.function(reduce_retracing=True)
    def update(observations, actions, returns):
        variables = model.trainable_variables
        with tf.GradientTape() as tape:
            logits = adapter.logits(tf.cast(model(observations, training=True), tf.float32))
            log_probs = policy.log_prob(logits, actions)
            if value_model is not None:
                values = tf.reshape(value_model(observations, training=True), [-1])
                advantages = returns - tf.stop_gradient(values)
                value_loss = tf.reduce_mean(tf.square(returns - values))
                new_state = baseline_state.read_value()
            else:
                advantages, new_state = baseline.advantages(returns, baseline_state.read_value())
                value_loss = 0.0
            entropy = tf.reduce_mean(policy.entropy(logits))
            loss = (
                score_function_surrogate(log_probs, advantages)
                - entropy_weight * entropy
                + value_weight * value_loss
            )
            scaled_loss = trainer.optimizer.scale_loss(loss)  # the optimizer divides it out
        gradients = tape.gradient(scaled_loss, variables + value_variables)
        if not isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer):
            # (a LossScaleOptimizer skips overflowing float16 steps itself)
            finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in gradients])
            tf.debugging.Assert(finite, ["non-finite gradient in fit_env; the update was skipped"])
        trainer.optimizer.apply(gradients, variables + value_variables)
        baseline_state.assign(new_state)
        return entropy

    history = keras.callbacks.History()
    callback_list = keras.callbacks.CallbackList(
        [*(callbacks or []), history],
        add_history=False,
        add_progbar=verbose != 0,
        model=trainer,
        verbose=verbose,
        epochs=math.ceil(episodes / num_envs),
        steps=1,
    )
    history.episode_returns = []
    trainer.stop_training = False
    callback_list.on_train_begin()
    update_index, reset_seed = 0, seed
    while len(history.episode_returns) < episodes and not trainer.stop_training:
        callback_list.on_epoch_begin(update_index)
        callback_list.on_train_batch_begin(0)
        observations, _ = env.reset(seed=reset_seed)
        reset_seed = None
        if not vectorized:
            observations = observations[None]
        traces = [([], [], []) for _ in range(num_envs)]
        done = np.zeros(num_envs, bool)
        steps = 0
        while not done.all():
            batch = np.asarray(observations, np.float32)
            actions = act(tf.constant(batch)).numpy()
            env_actions = adapter.to_env(actions)
            if vectorized:
                observations, rewards, terminated, truncated, _ = env.step(env_actions)
            else:
                observation, reward, term, trunc, _ = env.step(env_actions[0])
                observations, rewards = observation[None], np.array([reward])
                terminated, truncated = np.array([term]), np.array([trunc])
            rewards = np.asarray(rewards, np.float64)
            for i in np.flatnonzero(~done):
                if not np.isfinite(rewards[i]):
                    raise ValueError(
                        f"The env returned a non-finite reward {rewards[i]} at step {steps} of "
                        f"episode {len(history.episode_returns) + i}; nothing was trained on it."
                    )
                traces[i][0].append(batch[i])
                traces[i][1].append(actions[i])
                traces[i][2].append(rewards[i])
            done |= np.asarray(terminated) | np.asarray(truncated)
            steps += 1
            if steps >= max_episode_steps and not done.all():
                raise RuntimeError(
                    f"An episode did not end within max_episode_steps={max_episode_steps} steps; "
                    "wrap the env in gymnasium.wrappers.TimeLimit or raise max_episode_steps."
                )
        returns = np.concatenate([_returns_to_go(t[2], gamma) for t in traces])
        entropy = update(
            tf.constant(np.concatenate([np.stack(t[0]) for t in traces])),
            tf.constant(np.concatenate([np.stack(t[1]) for t in traces])),
            tf.constant(returns),
        )
        episode_returns = [float(np.sum(t[2])) for t in traces]
        history.episode_returns += episode_returns
        logs = {
            "mean_return": float(np.mean(episode_returns)),
            "mean_return_window": float(np.mean(history.episode_returns[-target_window:])),
            "episodes": float(len(history.episode_returns)),
            "mean_length": float(np.mean([len(t[2]) for t in traces])),
            "entropy": float(entropy),
        }
        callback_list.on_train_batch_end(0, logs)
        callback_list.on_epoch_end(update_index, logs)
        update_index += 1
        if (
            target_return is not None
            and len(history.episode_returns) >= target_window
            and logs["mean_return_window"] >= target_return
        ):
            break
    callback_list.on_train_end()
    return history
