"""The estimator interface: [`Estimator`][rlmetric.estimator_base.Estimator], its return type
[`EstimatorOutput`][rlmetric.estimator_base.EstimatorOutput], and the
pieces the estimators share (the score-function surrogate, scoring ``K`` sample sets)."""

from __future__ import annotations

from typing import Any, NamedTuple

import tensorflow as tf

from rlmetric import baselines as baselines_lib
from rlmetric import policies as policies_lib
from rlmetric import rewards as rewards_lib

__all__ = [
    "Estimator",
    "EstimatorOutput",
    "score_function_surrogate",
    "score_samples",
    "require_local_rewards",
    "local_rewards_of",
]


class EstimatorOutput(NamedTuple):
    """What one estimator call returns (all tensors).

    Examples:
        >>> import tensorflow as tf
        >>> from rlmetric import baselines, estimators, policies, rewards
        >>> out = estimators.Reinforce()(
        ...     tf.zeros([4, 1]), tf.constant([[1], [0], [1], [1]]), policy=policies.Bernoulli(),
        ...     reward=rewards.F1(), baseline=baselines.LeaveOneOut(), baseline_state=tf.zeros([0]),
        ...     num_samples=6, seed=0)
        >>> out._fields
        ('loss', 'rewards', 'advantages', 'baseline_state', 'actions')
    """

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

    References:
        Williams (1992), Simple statistical gradient-following algorithms for connectionist
        reinforcement learning.

    Examples:
        >>> import tensorflow as tf
        >>> from rlmetric.estimators import score_function_surrogate
        >>> log_probs = tf.constant([-1.0, -2.0])  # two sample sets
        >>> float(score_function_surrogate(log_probs, tf.constant([1.0, -1.0])))
        -0.5
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

    Examples:
        >>> import tensorflow as tf
        >>> from rlmetric import baselines, policies, rewards
        >>> from rlmetric.estimators import Estimator, EstimatorOutput, score_function_surrogate
        >>> class PlainReinforce(Estimator):  # REINFORCE without a baseline, in a few lines
        ...     name = "plain_reinforce"
        ...     def __call__(self, logits, y_true, *, policy, reward, baseline, baseline_state,
        ...                  num_samples, seed=None):
        ...         actions = policy.sample(tf.stop_gradient(logits), num_samples, seed=seed)
        ...         scores = reward(y_true, actions)
        ...         loss = score_function_surrogate(policy.joint_log_prob(logits, actions), scores)
        ...         return EstimatorOutput(loss, scores, scores, baseline_state, actions)
        >>> out = PlainReinforce()(
        ...     tf.zeros([4, 1]), tf.constant([[1], [0], [1], [1]]), policy=policies.Bernoulli(),
        ...     reward=rewards.F1(), baseline=baselines.NoBaseline(), baseline_state=tf.zeros([0]),
        ...     num_samples=6, seed=0)
        >>> out.rewards.shape, out.actions.shape
        (TensorShape([6]), TensorShape([6, 4, 1]))
    """

    name = "estimator"
    #: whether the estimator subtracts the trainer's baseline (REINFORCE does; the estimators
    #: that credit each decision with its own effect, or pair samples, do not)
    uses_baseline = False
    #: whether the estimator draws the trainer's ``num_samples`` decision sets (the best
    #: response with the mode or coupled context scores one set and ignores it)
    uses_samples = True

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
    """Calls ``reward`` on ``actions [K, B, ...]`` and checks that it returned ``[K]`` float.

    Examples:
        >>> import tensorflow as tf
        >>> from rlmetric import rewards
        >>> from rlmetric.estimator_base import score_samples
        >>> actions = tf.constant([[[1], [0]], [[0], [0]]])  # K = 2 sets for 2 examples
        >>> score_samples(rewards.get("accuracy"), tf.constant([[1], [0]]), actions).numpy()
        array([1. , 0.5], dtype=float32)
    """
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


def require_local_rewards(estimator: str, reward: Any, policy: Any = None) -> None:
    """Refuses, before training, a reward without per-element credit: neither computed from
    confusion counts nor a function the library can probe
    ([`rlmetric.rewards.ProbedReward`][rlmetric.rewards.ProbedReward],
    which every plain TF or NumPy function becomes).

    Examples:
        >>> from rlmetric import rewards
        >>> from rlmetric.estimator_base import require_local_rewards
        >>> require_local_rewards("best_response", rewards.get(lambda y, a: a[:, 0, 0]))
        >>> try:
        ...     require_local_rewards("best_response", rewards.get("ndcg@10"))
        ... except ValueError as error:
        ...     print(str(error)[:60])
        estimator='best_response' needs per-element decisions scored
    """
    if not isinstance(reward, rewards_lib.CountReward | rewards_lib.ProbedReward):
        raise ValueError(
            f"estimator={estimator!r} needs per-element decisions scored by a reward computed "
            "from confusion counts (rlmetric.rewards.CountReward) or a function of the "
            f"decisions (rlmetric.rewards.ProbedReward); reward "
            f"{getattr(reward, 'name', reward)!r} is {type(reward).__name__}. Use "
            "estimator='reinforce' (any reward, any policy)."
        )
    per_element = isinstance(policy, policies_lib.Bernoulli | policies_lib.Categorical)
    if isinstance(reward, rewards_lib.ProbedReward) and policy is not None and not per_element:
        raise ValueError(
            f"estimator={estimator!r} probes the reward {reward.name!r} by changing one "
            "decision at a time, which needs per-element decisions (policy='bernoulli' or "
            f"'categorical'); the policy is {getattr(policy, 'name', policy)!r}. Use "
            "estimator='reinforce'."
        )


def local_rewards_of(
    reward: rewards_lib.Reward, y_true: tf.Tensor, actions: tf.Tensor, num_values: int
) -> tf.Tensor:
    """``[K, N, V]`` local rewards of ``actions [K, B, ...]`` (labels ``[B, ...]``): a count
    reward's from its counts, a function's by probing it with ``V = num_values`` values.

    Examples:
        >>> import tensorflow as tf
        >>> from rlmetric import rewards
        >>> from rlmetric.estimator_base import local_rewards_of
        >>> y, actions = tf.constant([[1], [0]]), tf.constant([[[0], [0]]])
        >>> local_rewards_of(rewards.F1(), y, actions, 2).shape  # [K, N, V]
        TensorShape([1, 2, 2])
    """
    if isinstance(reward, rewards_lib.ProbedReward):
        return reward.local_rewards(y_true, actions, num_values)
    return reward.local_rewards(y_true, actions)
