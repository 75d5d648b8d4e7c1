"""Gradient estimators: from logits and labels to a surrogate loss whose gradient estimates
``-grad E[reward]``.

An estimator owns the whole path from the model's logits to a differentiable scalar: how actions
are drawn, how they are scored and how the score becomes a gradient. That lets estimators that
sample differently (antithetic pairs) or use the reward's structure (confusion counts) sit beside
plain REINFORCE behind one interface, :class:`Estimator`, and one return type,
:class:`EstimatorOutput`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import keras
import tensorflow as tf

from rlmetric import baselines as baselines_lib
from rlmetric import policies as policies_lib
from rlmetric import rewards as rewards_lib
from rlmetric._registry import resolve

__all__ = [
    "Estimator",
    "EstimatorOutput",
    "Reinforce",
    "LocalExpectation",
    "DisARM",
    "score_function_surrogate",
    "get",
    "ALIASES",
]


class EstimatorOutput(NamedTuple):
    """What one estimator call returns (all tensors)."""

    loss: tf.Tensor  #: scalar surrogate; its gradient is an estimate of ``-grad E[R]``
    rewards: tf.Tensor  #: ``[K]`` reward of each sample set (``[2K]`` for antithetic pairs)
    advantages: tf.Tensor  #: ``[K]`` the scalar credit of each sample set (for logging)
    baseline_state: tf.Tensor  #: the baseline's next state
    actions: tf.Tensor  #: ``[K, B, ...]`` the sampled decisions


def score_function_surrogate(log_probs: tf.Tensor, advantages: tf.Tensor) -> tf.Tensor:
    """The REINFORCE surrogate ``-mean_k(stop_gradient(A_k) * sum_i log p(a_{k,i}))``.

    Args:
        log_probs: ``[K, B, ...]`` per-element log-probabilities of the sampled decisions, or
            ``[K]`` log-probabilities of whole sets (``Policy.joint_log_prob``).
        advantages: ``[K]`` advantages.

    Returns:
        A scalar whose gradient is ``-(1/K) sum_k A_k grad log p(a_k)``. The log-probability of a
        whole decision set is the sum over its elements because the reward scores the batch
        jointly; the sum is local to the examples a replica holds, so under ``tf.distribute`` the
        replicas' gradients add up to the gradient of the global batch.
    """
    log_probs = tf.convert_to_tensor(log_probs)
    if log_probs.shape.rank == 1:
        joint_log_prob = log_probs
    else:
        joint_log_prob = tf.reduce_sum(tf.reshape(log_probs, [tf.shape(log_probs)[0], -1]), 1)
    advantages = tf.stop_gradient(tf.cast(advantages, joint_log_prob.dtype))
    return -tf.reduce_mean(advantages * joint_log_prob)


class Estimator:
    """Base class of gradient estimators.

    ``__call__(logits [B, ...], y_true [B, ...], *, policy, reward, baseline, baseline_state,
    num_samples, seed) -> EstimatorOutput``. Subclasses must keep ``loss`` differentiable with
    respect to ``logits`` and return rewards and advantages of shape ``[K]``.
    """

    name = "estimator"

    def check(self, *, policy: Any, reward: Any, baseline: Any, num_samples: int) -> None:
        """Raises ``ValueError`` before training when the pieces cannot work together."""
        if num_samples < baseline.min_samples:
            raise ValueError(
                f"baseline={baseline.name!r} needs num_samples >= {baseline.min_samples}; "
                f"received num_samples={num_samples}."
            )

    def __call__(
        self,
        logits: tf.Tensor,
        y_true: tf.Tensor,
        *,
        policy: policies_lib.Policy,
        reward: rewards_lib.Reward,
        baseline: baselines_lib.Baseline,
        baseline_state: tf.Tensor,
        num_samples: int,
        seed: Any = None,
    ) -> EstimatorOutput:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict) -> Estimator:
        return cls(**config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def score_samples(reward: rewards_lib.Reward, y_true: tf.Tensor, actions: tf.Tensor) -> tf.Tensor:
    """Calls ``reward`` on ``actions [K, B, ...]`` and checks that it returned ``[K]`` float."""
    scores = reward(y_true, actions)
    scores = tf.convert_to_tensor(scores)
    expected = actions.shape[:1]
    if scores.shape.rank is not None and (
        scores.shape.rank != 1 or not scores.shape.is_compatible_with(expected)
    ):
        raise ValueError(
            f"Reward {getattr(reward, 'name', reward)!r} returned shape {scores.shape}; a reward "
            f"must return one score per sample set, shape [K] = {expected}, for actions of "
            f"shape {actions.shape}."
        )
    return tf.cast(scores, tf.float32)


@keras.saving.register_keras_serializable(package="rlmetric")
class Reinforce(Estimator):
    """The score-function (REINFORCE) estimator with a baseline.

    Draws ``K`` decision sets, scores each with the reward, subtracts the baseline and returns
    :func:`score_function_surrogate`. Unbiased for every baseline whose ``unbiased`` is True.
    """

    name = "reinforce"

    def __call__(
        self,
        logits,
        y_true,
        *,
        policy,
        reward,
        baseline,
        baseline_state,
        num_samples,
        seed=None,
    ):
        actions = policy.sample(tf.stop_gradient(logits), num_samples, seed=seed)  # [K, B, ...]
        rewards = score_samples(reward, y_true, actions)  # [K]
        greedy_reward = None
        if baseline.requires_greedy:
            greedy_actions = policy.greedy(tf.stop_gradient(logits))[None]
            greedy_reward = score_samples(reward, y_true, greedy_actions)[0]
        advantages, new_state = baseline.advantages(rewards, baseline_state, greedy_reward)
        loss = score_function_surrogate(policy.joint_log_prob(logits, actions), advantages)
        return EstimatorOutput(loss, rewards, advantages, new_state, actions)


@keras.saving.register_keras_serializable(package="rlmetric")
class LocalExpectation(Estimator):
    """Local expectation gradients for rewards computed from confusion counts.

    For every element ``i`` and sample set ``k`` the reward is recomputed, from the counts, for
    each value ``v`` of ``a_i`` with the other decisions of the set held fixed
    (:meth:`rlmetric.rewards.CountReward.local_rewards`). Then
    ``sum_v grad p_i(v) R_k(v, a_{k,-i})`` is, averaged over ``k``, an unbiased estimate of
    ``d E[R] / d logits_i`` that needs no baseline: each decision is credited with its own exact
    effect instead of sharing one scalar advantage with the whole batch. The baseline argument is
    ignored. Cost: ``O(K * N * V)`` for ``N`` elements and ``V`` values.
    """

    name = "local"

    def check(self, *, policy, reward, baseline, num_samples):
        if not isinstance(reward, rewards_lib.CountReward):
            raise ValueError(
                f"estimator='local' needs a reward computed from confusion counts "
                f"(rlmetric.rewards.CountReward: F1, FBeta, IoU, Dice, Precision, Recall, "
                f"Accuracy, MatthewsCorrCoef); reward {getattr(reward, 'name', reward)!r} is "
                f"{type(reward).__name__}. Use estimator='reinforce' (any reward, any policy) or "
                "estimator='disarm' (any reward, Bernoulli policy)."
            )

    def __call__(
        self, logits, y_true, *, policy, reward, baseline, baseline_state, num_samples, seed=None
    ):
        actions = policy.sample(tf.stop_gradient(logits), num_samples, seed=seed)  # [K, B, ...]
        local = tf.stop_gradient(reward.local_rewards(y_true, actions))  # [K, N, V]
        rewards = reward(y_true, actions)  # [K]
        # subtracting the mean over values changes nothing in the gradient (sum_v grad p = 0)
        # but keeps the loss value near zero
        local -= tf.reduce_mean(local, axis=-1, keepdims=True)
        probs = policy.value_probs(logits)  # [B, ..., V]
        probs = tf.reshape(probs, [1, -1, tf.shape(probs)[-1]])  # [1, N, V]
        per_set = tf.reduce_sum(tf.cast(local, probs.dtype) * probs, axis=[1, 2])  # [K]
        loss = -tf.reduce_mean(per_set)
        advantages = rewards - tf.reduce_mean(rewards)
        return EstimatorOutput(loss, rewards, advantages, baseline_state, actions)


@keras.saving.register_keras_serializable(package="rlmetric")
class DisARM(Estimator):
    """DisARM (Dong, Mnih & Tucker, 2020) for Bernoulli policies and any reward.

    Each of the ``K`` sample sets is an antithetic pair: ``b = 1[u < sigmoid(l)]`` and
    ``b~ = 1[1 - u < sigmoid(l)]`` from the same uniform noise ``u``; the estimate for logit
    ``l_i`` is ``1/2 (R(b) - R(b~)) (-1)^{b~_i} 1[b_i != b~_i] sigmoid(|l_i|)``, averaged over
    the pairs. Unbiased, and the pair difference removes the need for a baseline (the baseline
    argument is ignored). The reward is called on ``2K`` sets; ``rewards`` holds all of them
    (``[2K]``: the ``b`` sets, then the ``b~`` sets).
    """

    name = "disarm"

    def check(self, *, policy, reward, baseline, num_samples):
        if not isinstance(policy, policies_lib.Bernoulli):
            raise ValueError(
                f"estimator='disarm' needs policy='bernoulli'; the policy is "
                f"{getattr(policy, 'name', policy)!r}. Use estimator='reinforce' or 'local'."
            )

    def __call__(
        self, logits, y_true, *, policy, reward, baseline, baseline_state, num_samples, seed=None
    ):
        logits = tf.convert_to_tensor(logits)
        fixed_logits = tf.stop_gradient(logits)
        shape = tf.concat([[num_samples], tf.shape(logits)], axis=0)
        uniform = policies_lib.batch_uniform(shape, seed, logits.dtype)
        noise = tf.math.log(uniform) - tf.math.log1p(-uniform)  # logistic noise
        first = tf.cast(noise < fixed_logits, tf.int32)
        second = tf.cast(-noise < fixed_logits, tf.int32)  # the antithetic draw, from 1 - u
        actions = tf.concat([first, second], axis=0)
        rewards = score_samples(reward, y_true, actions)  # [2K]
        difference = 0.5 * (rewards[:num_samples] - rewards[num_samples:])  # [K]
        sign = 1.0 - 2.0 * tf.cast(second, logits.dtype)
        weights = sign * tf.cast(first != second, logits.dtype) * tf.sigmoid(tf.abs(fixed_logits))
        weights *= tf.reshape(difference, [-1] + [1] * logits.shape.rank)
        loss = -tf.reduce_sum(weights * logits[None]) / tf.cast(num_samples, logits.dtype)
        return EstimatorOutput(loss, rewards, difference, baseline_state, actions)


ALIASES = {
    "reinforce": Reinforce,
    "score_function": Reinforce,
    "local": LocalExpectation,
    "local_expectation": LocalExpectation,
    "disarm": DisARM,
}


def get(identifier: Any) -> Estimator:
    """An estimator from an alias (see ``ALIASES``), a config dict or an Estimator."""
    return resolve(identifier, ALIASES, Estimator, "estimator")
