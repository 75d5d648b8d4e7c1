"""Exact references for checking gradient estimators on problems small enough to enumerate."""

from __future__ import annotations

import itertools

import numpy as np
import tensorflow as tf

from rlmetric import policies as policies_lib
from rlmetric import rewards as rewards_lib

__all__ = ["all_actions", "expected_reward"]

_MAX_CONFIGURATIONS = 1 << 16


def all_actions(policy: policies_lib.Policy, logits_shape: tf.TensorShape) -> tf.Tensor:
    """Every decision set for logits of a fully known shape: int32 ``[M, B, ...]``.

    ``M`` is ``2^N`` for ``N`` Bernoulli elements or ``C^N`` for ``N`` categorical ones; refused
    above 65,536 configurations.
    """
    logits_shape = tf.TensorShape(logits_shape)
    if not logits_shape.is_fully_defined():
        raise ValueError(f"Enumeration needs a fully known logits shape; got {logits_shape}.")
    action_shape = policy.action_shape(logits_shape).as_list()
    num_values = 2 if isinstance(policy, policies_lib.Bernoulli) else logits_shape[-1]
    num_elements = int(np.prod(action_shape))
    if num_values**num_elements > _MAX_CONFIGURATIONS:
        raise ValueError(
            f"{num_values}^{num_elements} decision sets are too many to enumerate "
            f"(limit {_MAX_CONFIGURATIONS})."
        )
    grid = np.array(list(itertools.product(range(num_values), repeat=num_elements)), np.int32)
    return tf.constant(grid.reshape([-1, *action_shape]))


def expected_reward(
    policy: policies_lib.Policy,
    reward: rewards_lib.Reward,
    logits: tf.Tensor,
    y_true: tf.Tensor,
) -> tf.Tensor:
    """``E[reward]`` under the policy, exactly, by enumerating every decision set.

    Differentiable in ``logits`` ``[B, ...]``: ``tf.GradientTape`` gives the exact gradient that
    an unbiased estimator's mean must match. ``y_true`` has the action shape ``[B, ...]``.
    """
    actions = all_actions(policy, logits.shape)  # [M, B, ...]
    scores = tf.cast(reward(y_true, actions), tf.float32)  # [M]
    log_probs = policy.log_prob(logits, actions)
    joint = tf.reduce_sum(tf.reshape(log_probs, [tf.shape(actions)[0], -1]), axis=1)
    return tf.reduce_sum(tf.exp(joint) * scores)
