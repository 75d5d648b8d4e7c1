"""Keras metrics that score decisions with a reward over a whole evaluation set, and the
trainer's own running statistics."""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from rlmetric import ranking
from rlmetric import rewards as rewards_lib

__all__ = ["RewardMetric"]


class RewardMetric(keras.metrics.Metric):
    """Accumulates a reward over many batches of decisions.

    For a [`rlmetric.rewards.CountReward`][rlmetric.rewards.CountReward] the confusion counts are
    summed (in float64)
    over every batch and the metric is computed once from the totals, so ``evaluate`` reports
    the F1 of the whole set, not a mean of per-batch F1s. Rewards averaged over rows
    (``average="samples"``, subset accuracy) add up their per-row scores instead. Any other
    reward is averaged over batches, weighted by batch size, which is exact only for rewards
    that are means over examples.

    Args:
        reward: the reward to accumulate.
        action_shape: static shape ``[B, ...]`` of one decision set (``B`` may be None).
        name: the Keras name; defaults to ``reward.name``.

    Examples:
        >>> import numpy as np
        >>> from sklearn.metrics import f1_score
        >>> from rlmetric import rewards
        >>> from rlmetric.metrics import RewardMetric
        >>> metric = RewardMetric(rewards.F1(), action_shape=[None])
        >>> y, decisions = np.array([1, 0, 1, 1, 0, 1]), np.array([1, 1, 0, 1, 0, 1])
        >>> metric.update_state(y[:3], decisions[:3]); metric.update_state(y[3:], decisions[3:])
        >>> bool(np.isclose(float(metric.result()), f1_score(y, decisions)))  # F1 of the whole set
        True
    """

    def __init__(
        self,
        reward: rewards_lib.Reward,
        action_shape: tf.TensorShape,
        name: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(name=name or reward.name, **kwargs)
        self.reward = reward
        self._direction = "up"  # lets callbacks with mode="auto" maximise it
        action_shape = tf.TensorShape(action_shape)
        self._by_counts = isinstance(reward, rewards_lib.CountReward) and not reward.groups_are_rows
        if self._by_counts:
            dummy = tf.zeros([1, 1, *action_shape[1:]], tf.int32)
            self._layout = reward.layout(dummy.shape)
            num_groups = reward.counts(dummy[0], dummy).shape[1]
            self.totals = self.add_variable(
                shape=(num_groups, 4), initializer="zeros", dtype="float64", name="counts"
            )
        else:
            self.totals = self.add_variable(
                shape=(2,), initializer="zeros", dtype="float64", name="score_and_weight"
            )

    @property
    def depends_on_the_batch(self) -> bool:
        """Whether the reward is computed on a whole batch, not summed counts or a mean over
        lists or examples, so that its mean over batches depends on their size."""
        reward = self.reward
        means = isinstance(reward, rewards_lib.CountReward | ranking.RankingReward)
        return not (means or getattr(reward, "per_example", False))

    def update_state(self, y_true: tf.Tensor, actions: tf.Tensor, sample_weight=None) -> None:
        """Adds a batch: ``y_true`` and ``actions`` both of the action shape ``[B, ...]``."""
        if sample_weight is not None:
            raise ValueError(f"RewardMetric {self.name!r} does not support sample_weight.")
        actions = tf.convert_to_tensor(actions)[None]  # one decision set: [1, B, ...]
        if self._by_counts:
            counts = self.reward.counts(y_true, actions)[0]
            self.totals.assign_add(tf.cast(counts, "float64"))
        else:
            score = tf.cast(tf.reshape(self.reward(y_true, actions), []), "float64")
            rows = tf.cast(tf.shape(actions)[1], "float64")
            self.totals.assign_add(tf.stack([score * rows, rows]))

    def result(self) -> tf.Tensor:
        if self._by_counts:
            return tf.cast(self.reward.from_counts(self.totals[None], self._layout)[0], "float32")
        weight = self.totals[1]
        return tf.cast(self.totals[0] / tf.maximum(weight, 1.0), "float32")

    def reset_state(self) -> None:
        self.totals.assign(tf.zeros_like(self.totals))

    def get_config(self) -> dict:
        raise TypeError(
            "RewardMetric is created by PolicyGradientTrainer from its reward and is not "
            "serialized on its own."
        )


def as_logs(metric: keras.metrics.Metric) -> dict[str, Any]:
    result = metric.result()
    return result if isinstance(result, dict) else {metric.name: result}


class MetricList:
    """Holds metrics created after construction outside Keras' attribute tracking, which
    refuses new state once the trainer is built; the trainer lists them in ``metrics``."""

    def __init__(self) -> None:
        self.items: list[keras.metrics.Metric] = []


class MeanOfEach(keras.metrics.Metric):
    """Running means of several per-step scalars in one variable ``[n + 1]`` (the sums, then
    the number of updates): one state update per step instead of two variables for each
    ``keras.metrics.Mean``. Under XLA every variable a step touches costs several microseconds
    of launch overhead, as much as a small layer. ``result()`` is a dict by name."""

    def __init__(self, names: tuple[str, ...], name: str = "training_stats") -> None:
        super().__init__(name=name)
        self.names = tuple(names)
        self.totals = self.add_variable(
            shape=(len(names) + 1,), initializer="zeros", name="totals_and_count"
        )

    @property
    def count(self) -> tf.Tensor:
        return self.totals[-1]

    def update_state(self, values: list) -> None:
        one = tf.ones([], self.totals.dtype)
        self.totals.assign_add(tf.stack([tf.cast(v, self.totals.dtype) for v in values] + [one]))

    def result(self) -> dict[str, tf.Tensor]:
        totals = self.totals.value
        means = totals[:-1] / tf.maximum(totals[-1], 1.0)
        return {name: means[i] for i, name in enumerate(self.names)}

    def reset_state(self) -> None:
        self.totals.assign(tf.zeros_like(self.totals))


def set_reward_directions(callbacks: Any, reward_names: Any) -> None:
    """Sets ``mode="max"`` on Keras callbacks (``EarlyStopping``, ``ModelCheckpoint``,
    ``ReduceLROnPlateau``) left at ``mode="auto"`` that monitor a reward (``"f1"`` or
    ``"val_f1"``): Keras reads a metric's direction only from the metrics of ``compile``,
    and would stop with "cannot determine whether that metric should be maximized"."""
    names = set(reward_names)
    for callback in callbacks or []:
        monitor = getattr(callback, "monitor", None)
        if (
            isinstance(monitor, str)
            and getattr(callback, "mode", None) == "auto"
            and getattr(callback, "monitor_op", "unset") is None
            and monitor.removeprefix("val_") in names
        ):
            callback.mode = "max"  # a reward is maximised
