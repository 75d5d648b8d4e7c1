"""Checking gradient estimators: exact references by enumeration, and variance / SNR measures."""

from __future__ import annotations

import itertools
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from rlmetric import policies as policies_lib
from rlmetric import rewards as rewards_lib

__all__ = ["all_actions", "expected_reward", "gradient_stats", "GradientSNR"]

_MAX_CONFIGURATIONS = 1 << 16


def all_actions(policy: policies_lib.Policy, logits_shape: tf.TensorShape) -> tf.Tensor:
    """Every decision set for logits of a fully known shape: int32 ``[M, B, ...]``.

    ``M`` is ``2^N`` for ``N`` Bernoulli elements or ``C^N`` for ``N`` categorical ones; refused
    above 65,536 configurations.

    Examples:
        >>> from rlmetric import diagnostics, policies
        >>> diagnostics.all_actions(policies.Bernoulli(), [2, 1]).numpy().tolist()  # 2^2 sets
        [[[0], [0]], [[0], [1]], [[1], [0]], [[1], [1]]]
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

    Examples:
        >>> import tensorflow as tf
        >>> from rlmetric import diagnostics, policies, rewards
        >>> logits, labels = tf.constant([[0.0], [0.0]]), tf.constant([[1], [0]])
        >>> policy, reward = policies.Bernoulli(), rewards.Accuracy()
        >>> value = diagnostics.expected_reward(policy, reward, logits, labels)
        >>> float(value)  # each decision right with probability 1/2
        0.5
    """
    actions = all_actions(policy, logits.shape)  # [M, B, ...]
    scores = tf.cast(reward(y_true, actions), tf.float32)  # [M]
    return tf.reduce_sum(tf.exp(policy.joint_log_prob(logits, actions)) * scores)


def _default_combinations(trainer: Any) -> list[tuple[str, str]]:
    combinations = [
        ("reinforce", name) for name in ("none", "leave_one_out", "greedy", "group_norm")
    ]
    if trainer.num_samples < 2:
        combinations = [c for c in combinations if c[1] not in ("leave_one_out", "group_norm")]
    if isinstance(trainer.reward, rewards_lib.CountReward):
        combinations.append(("local_expectation", "none"))
    if isinstance(trainer.policy, policies_lib.Bernoulli):
        combinations.append(("disarm", "none"))
    return combinations


def _summarize(draws: list[list[np.ndarray]]) -> dict[str, Any]:
    per_parameter = [np.stack(parts) for parts in zip(*draws, strict=True)]  # [draws, ...] each
    mean = [p.mean(0) for p in per_parameter]
    variance = [p.var(0) for p in per_parameter]
    flat_mean = np.concatenate([m.ravel() for m in mean])
    flat_std = np.sqrt(np.concatenate([v.ravel() for v in variance]))
    informative = flat_std > 0
    snr = np.abs(flat_mean[informative]) / flat_std[informative]
    return {
        "variance": float(sum(v.sum() for v in variance)),
        "snr": float(snr.mean()) if snr.size else float("nan"),
        "mean": mean,
        "per_parameter_variance": variance,
    }


def gradient_stats(
    trainer: Any,
    x: Any,
    y: Any,
    draws: int = 100,
    combinations: list[tuple[str, str]] | None = None,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Gradient variance and signal-to-noise ratio of estimators on one batch.

    Every ``(estimator, baseline)`` pair runs on ``trainer.model`` with the trainer's reward,
    policy and ``num_samples``, ``draws`` times on the batch ``(x, y)``.

    Args:
        trainer: a [`rlmetric.PolicyGradientTrainer`][rlmetric.PolicyGradientTrainer] (its model and
            settings are used; its
            own state is not changed).
        combinations: ``(estimator, baseline)`` aliases; by default REINFORCE with each baseline,
            plus ``local`` for count rewards and ``disarm`` for Bernoulli policies.

    Returns:
        ``{"estimator/baseline": {"variance": total variance summed over every parameter,
        "snr": mean over parameters of |mean| / std, "mean": per-variable mean gradient,
        "per_parameter_variance": per-variable variance}}``.

    Examples:
        >>> import keras, numpy as np
        >>> from rlmetric import PolicyGradientTrainer, diagnostics
        >>> keras.utils.set_random_seed(0)
        >>> x = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
        >>> y = (x[:, :1] > 0.5).astype("int32")
        >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        >>> trainer = PolicyGradientTrainer(model)
        >>> stats = diagnostics.gradient_stats(trainer, x, y, draws=20, combinations=[
        ...     ("reinforce", "none"), ("reinforce", "leave_one_out")])
        >>> bool(stats["reinforce/leave_one_out"]["variance"] < stats["reinforce/none"]["variance"])
        True
    """
    from rlmetric.trainer import PolicyGradientTrainer

    results = {}
    for estimator, baseline in combinations or _default_combinations(trainer):
        probe = PolicyGradientTrainer(
            trainer.model,
            reward=trainer.reward,
            policy=trainer.policy,
            baseline=baseline,
            estimator=estimator,
            num_samples=trainer.num_samples,
            seed=seed,
        )
        samples = [probe.estimate_gradient(x, y) for _ in range(draws)]
        results[f"{estimator}/{baseline}"] = _summarize(samples)
    return results


class GradientSNR(keras.callbacks.Callback):
    """Logs ``gradient_snr`` (and ``gradient_variance``) of the trainer's own estimator on a
    fixed batch at the end of every ``every``-th epoch, for the History and progress bar.

    Examples:
        >>> import keras, numpy as np
        >>> from rlmetric import PolicyGradientTrainer, diagnostics
        >>> x = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
        >>> y = (x[:, :1] > 0.5).astype("int32")
        >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        >>> trainer = PolicyGradientTrainer(model)
        >>> trainer.compile()
        >>> history = trainer.fit(x, y, epochs=1, verbose=0,
        ...                       callbacks=[diagnostics.GradientSNR(x, y, draws=5)])
        >>> "gradient_snr" in history.history
        True
    """

    def __init__(self, x: Any, y: Any, draws: int = 20, every: int = 1) -> None:
        super().__init__()
        self.x, self.y, self.draws, self.every = x, y, draws, every

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is None or (epoch + 1) % self.every:
            return
        summary = _summarize(
            [self.model.estimate_gradient(self.x, self.y) for _ in range(self.draws)]
        )
        logs["gradient_snr"] = summary["snr"]
        logs["gradient_variance"] = summary["variance"]
