"""Baselines: turn the ``K`` rewards of one batch into advantages.

A baseline ``b`` that does not depend on the sample it is subtracted from keeps the
score-function estimator unbiased, ``E[(R_k - b) grad log p(a_k)] = grad E[R]``, and can cut its
variance a lot. Each baseline is a pure function of the rewards ``[K]`` and a small state vector
(empty except for the moving average), so the trainer keeps the state in a variable and the
baseline stays testable on its own:

==================  ========  =====================================================
baseline            unbiased  advantage of sample ``k``
==================  ========  =====================================================
``none``            yes       ``R_k``
``moving_average``  yes       ``R_k - EMA of the mean reward of earlier batches``
``leave_one_out``   yes       ``R_k - mean of the other K - 1 rewards`` (RLOO)
``greedy``          yes       ``R_k - R(mode decisions)`` (self-critical, SCST)
``group_norm``      **no**    ``(R_k - mean(R)) / max(std(R), floor)`` (GRPO-style)
==================  ========  =====================================================

``group_norm`` is biased twice over: the mean includes the sample's own reward, which scales the
expected gradient by ``(K - 1) / K``, and the division by the group's standard deviation
reweights batches. It is offered because it is scale-free and popular, not because it is exact.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from rlmetric._registry import resolve

__all__ = [
    "Baseline",
    "NoBaseline",
    "MovingAverage",
    "LeaveOneOut",
    "Greedy",
    "GroupNorm",
    "get",
    "ALIASES",
]


class Baseline:
    """Base class of baselines.

    ``advantages(rewards [K], state [S], greedy_reward []) -> (advantages [K], state [S])``.

    Examples:
        >>> import tensorflow as tf
        >>> from rlmetric import baselines
        >>> rewards = tf.constant([1.0, 0.0, 0.5, 0.5])
        >>> advantages, _ = baselines.LeaveOneOut().advantages(rewards, tf.zeros([0]))
        >>> advantages.numpy().round(4)  # each minus the mean of the others
        array([ 0.6667, -0.6667,  0.    ,  0.    ], dtype=float32)
    """

    name: str = "baseline"
    #: Whether ``E[advantage_k * grad log p(a_k)]`` equals ``grad E[R]`` exactly.
    unbiased: bool = True
    #: Whether the estimator must pass the reward of the mode decisions.
    requires_greedy: bool = False
    #: The smallest number of samples ``K`` the baseline is defined for.
    min_samples: int = 1
    #: Length of the state vector the trainer keeps between steps.
    state_size: int = 0

    def initial_state(self) -> tf.Tensor:
        """The state before the first step, float32 ``[state_size]``."""
        return tf.zeros([self.state_size], tf.float32)

    def advantages(
        self, rewards: tf.Tensor, state: tf.Tensor, greedy_reward: tf.Tensor | None = None
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """Advantages ``[K]`` of rewards ``[K]``, and the next state."""
        raise NotImplementedError

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict) -> Baseline:
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


@keras.saving.register_keras_serializable(package="rlmetric")
class NoBaseline(Baseline):
    """Plain REINFORCE: the advantage is the reward itself.

    References:
        Williams (1992), Simple statistical gradient-following algorithms for connectionist
        reinforcement learning.

    Examples:
        >>> import tensorflow as tf
        >>> from rlmetric import baselines
        >>> advantages, _ = baselines.NoBaseline().advantages(tf.constant([0.2, 0.6]), None)
        >>> print(advantages.numpy().round(3))
        [0.2 0.6]
    """

    name = "none"

    def advantages(self, rewards, state, greedy_reward=None):
        return tf.convert_to_tensor(rewards), state


@keras.saving.register_keras_serializable(package="rlmetric")
class MovingAverage(Baseline):
    """An exponential moving average of the mean reward of *earlier* batches.

    Only past rewards enter the baseline, so it is independent of the current samples and the
    estimator stays unbiased. The average is bias-corrected as in Adam; before the first update
    the baseline is 0.

    Args:
        decay: weight of the old average, in ``[0, 1)``.

    References:
        Williams (1992), Simple statistical gradient-following algorithms for connectionist
        reinforcement learning (the reinforcement-comparison baseline). Kingma & Ba (2015),
        Adam (the bias correction).

    Examples:
        >>> import tensorflow as tf
        >>> from rlmetric import baselines
        >>> baseline = baselines.MovingAverage(decay=0.9)
        >>> state = baseline.initial_state()
        >>> first, state = baseline.advantages(tf.constant([1.0, 0.0]), state)  # no history yet
        >>> second, state = baseline.advantages(tf.constant([1.0, 0.0]), state)
        >>> print(first.numpy().round(3), second.numpy().round(3))  # the second subtracts 0.5
        [1. 0.] [ 0.5 -0.5]
    """

    name = "moving_average"
    state_size = 2  # (uncorrected average, decay ** number of updates)

    def __init__(self, decay: float = 0.9) -> None:
        if not 0.0 <= float(decay) < 1.0:
            raise ValueError(f"MovingAverage: decay must be in [0, 1); received decay={decay!r}.")
        self.decay = float(decay)

    def initial_state(self) -> tf.Tensor:
        return tf.constant([0.0, 1.0], tf.float32)

    def advantages(self, rewards, state, greedy_reward=None):
        rewards = tf.convert_to_tensor(rewards)
        average, decay_power = state[0], state[1]
        has_history = decay_power < 1.0
        corrected = average / tf.where(has_history, 1.0 - decay_power, 1.0)
        baseline = tf.where(has_history, corrected, 0.0)
        new_average = self.decay * average + (1.0 - self.decay) * tf.reduce_mean(rewards)
        new_state = tf.stack([new_average, decay_power * self.decay])
        return rewards - tf.cast(baseline, rewards.dtype), new_state

    def get_config(self) -> dict:
        return {"decay": self.decay}


@keras.saving.register_keras_serializable(package="rlmetric")
class LeaveOneOut(Baseline):
    r"""RLOO: each sample's baseline is the mean reward of the other ``K - 1`` samples.

    Rewards ``[K]``, or ``[K, B, ...]`` with a baseline per trailing position (per example:
    what [`rlmetric.step_networks.StepNetworkTrainer`][rlmetric.step_networks.StepNetworkTrainer]
    uses).

    .. math:: A_k = R_k - \frac{1}{K - 1} \sum_{j \ne k} R_j

    References:
        Kool, van Hoof & Welling (2019), Buy 4 REINFORCE samples, get a baseline for free!

    Examples:
        >>> import tensorflow as tf
        >>> from rlmetric import baselines
        >>> advantages, _ = baselines.LeaveOneOut().advantages(tf.constant([0.2, 0.6, 1.0]), None)
        >>> print(advantages.numpy().round(3))  # 0.2 - 0.8, 0.6 - 0.6, 1.0 - 0.4
        [-0.6  0.   0.6]
    """

    name = "leave_one_out"
    min_samples = 2

    def advantages(self, rewards, state, greedy_reward=None):
        rewards = tf.convert_to_tensor(rewards)
        k = tf.cast(tf.shape(rewards)[0], rewards.dtype)
        # over the sample axis only: [K, B] per-example rewards get a per-example baseline
        others_mean = (tf.reduce_sum(rewards, axis=0) - rewards) / (k - 1.0)
        return rewards - others_mean, state


@keras.saving.register_keras_serializable(package="rlmetric")
class Greedy(Baseline):
    """Self-critical (SCST): the baseline is the reward of the mode decisions.

    References:
        Rennie, Marcheret, Mroueh, Ross & Goel (2017), Self-critical sequence training for image
        captioning.

    Examples:
        >>> import tensorflow as tf
        >>> from rlmetric import baselines
        >>> rewards = tf.constant([0.2, 0.6])
        >>> advantages, _ = baselines.Greedy().advantages(rewards, None, greedy_reward=0.5)
        >>> print(advantages.numpy().round(3))
        [-0.3  0.1]
    """

    name = "greedy"
    requires_greedy = True

    def advantages(self, rewards, state, greedy_reward=None):
        if greedy_reward is None:
            raise ValueError("The greedy baseline needs greedy_reward, the reward of the mode.")
        rewards = tf.convert_to_tensor(rewards)
        return rewards - tf.cast(greedy_reward, rewards.dtype), state


@keras.saving.register_keras_serializable(package="rlmetric")
class GroupNorm(Baseline):
    """GRPO-style ``(R_k - mean(R)) / max(std(R), floor)``. Biased; see the module docstring.

    Args:
        std_floor: the smallest divisor, so that a group of (nearly) equal rewards gives
            (nearly) zero advantages instead of amplified noise.

    References:
        Shao et al. (2024), DeepSeekMath (group relative policy optimization, GRPO).

    Examples:
        >>> import tensorflow as tf
        >>> from rlmetric import baselines
        >>> advantages, _ = baselines.GroupNorm().advantages(tf.constant([0.0, 1.0]), None)
        >>> print(advantages.numpy().round(3))
        [-1.  1.]
    """

    name = "group_norm"
    unbiased = False
    min_samples = 2

    def __init__(self, std_floor: float = 1e-2) -> None:
        if not float(std_floor) > 0.0:
            raise ValueError(f"GroupNorm: std_floor must be > 0; received std_floor={std_floor!r}.")
        self.std_floor = float(std_floor)

    def advantages(self, rewards, state, greedy_reward=None):
        rewards = tf.convert_to_tensor(rewards)
        centered = rewards - tf.reduce_mean(rewards)
        std = tf.sqrt(tf.reduce_mean(tf.square(centered)))
        return centered / tf.maximum(std, self.std_floor), state

    def get_config(self) -> dict:
        return {"std_floor": self.std_floor}


ALIASES = {
    "none": NoBaseline,
    "moving_average": MovingAverage,
    "leave_one_out": LeaveOneOut,
    "rloo": LeaveOneOut,
    "greedy": Greedy,
    "self_critical": Greedy,
    "group_norm": GroupNorm,
}


def get(identifier: Any) -> Baseline:
    """A baseline from an alias (see ``ALIASES``), ``None``, a config dict or a Baseline.

    Examples:
        >>> from rlmetric import baselines
        >>> type(baselines.get("rloo")).__name__
        'LeaveOneOut'
    """
    return resolve("none" if identifier is None else identifier, ALIASES, Baseline, "baseline")
