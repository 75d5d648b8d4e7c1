"""Rewards: the metric a model is trained on, scored for ``K`` sets of decisions at once.

A reward is any callable ``reward(y_true, actions) -> [K]`` with ``y_true`` of the action shape
``[B, ...]`` and ``actions`` ``[K, B, ...]``: one score per sample set, higher is better.

The metrics here (F1, F-beta, IoU/Jaccard, Dice, precision, recall, accuracy, MCC) depend on the
decisions only through confusion counts, so they are computed in two vectorized steps that later
estimators and the whole-set evaluation reuse:

* [`CountReward.counts`][rlmetric.rewards.CountReward.counts] -> ``[K, G, 4]`` float counts ``(tp,
fp, fn, tn)`` per group, where
  the groups are the classes, the labels, or the rows of the batch (see
  [`CountReward.layout`][rlmetric.rewards.CountReward.layout]);
* [`CountReward.from_counts`][rlmetric.rewards.CountReward.from_counts] -> ``[K]`` scores.

Counts add up across batches, which is how
[`rlmetric.trainer.PolicyGradientTrainer`][rlmetric.trainer.PolicyGradientTrainer]
reports a metric over a whole evaluation set rather than an average of per-batch scores.

Values equal ``sklearn.metrics`` (``f1_score``, ``fbeta_score``, ``jaccard_score``,
``precision_score``, ``recall_score``, ``accuracy_score``, ``matthews_corrcoef``) called on the
same decisions, with these conventions for Bernoulli decisions:

* one decision per example (``[B]``, ``[B, 1]``) or per pixel (``[B, H, W, 1]``) is a binary
  target: ``average="binary"`` scores the positive class over every element, ``"micro"`` and
  ``"macro"`` pool or average the classes 0 and 1 that occur (scikit-learn on raveled arrays);
* ``[B, L]`` with ``L > 1`` is multi-label: ``"macro"`` averages the ``L`` labels, ``"micro"``
  (and ``"binary"``, which pools every element) sums their counts, ``"samples"`` averages rows.

For categorical decisions (``num_classes`` set) the groups are the classes; ``"macro"`` averages
over the classes present in ``y_true`` or in the decisions, as scikit-learn does by default.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import keras
import tensorflow as tf

from rlmetric import ranking
from rlmetric._count_kernels import (
    CLASSES,
    LABELS,
    bernoulli_counts,
    categorical_counts,
    is_single_target,
    safe_divide,
)
from rlmetric._registry import resolve
from rlmetric.custom_rewards import CallableReward, NumpyReward, ProbedReward, from_numpy
from rlmetric.reward_base import CountReward, Reward

__all__ = [
    "Reward",
    "CountReward",
    "F1",
    "FBeta",
    "IoU",
    "Dice",
    "Precision",
    "Recall",
    "Accuracy",
    "MatthewsCorrCoef",
    "CallableReward",
    "NumpyReward",
    "ProbedReward",
    "from_numpy",
    "get",
    "ALIASES",
]


@keras.saving.register_keras_serializable(package="rlmetric")
class FBeta(CountReward):
    """F-beta score ``(1 + b^2) tp / ((1 + b^2) tp + b^2 fn + fp)`` (``fbeta_score``).

    Examples:
        >>> import numpy as np
        >>> from sklearn.metrics import fbeta_score
        >>> from rlmetric.rewards import FBeta
        >>> y, actions = np.array([1, 0, 1, 1, 0]), np.array([[1, 1, 0, 1, 0]])  # K = 1 set
        >>> score = float(FBeta(beta=2.0)(y, actions)[0])
        >>> bool(np.isclose(score, fbeta_score(y, actions[0], beta=2.0)))
        True
    """

    default_name = "fbeta"

    def __init__(
        self,
        beta: float = 1.0,
        average: str = "binary",
        num_classes: int | None = None,
        zero_division: float = 0.0,
        name: str | None = None,
    ) -> None:
        if not isinstance(beta, int | float) or not beta > 0 or not math.isfinite(beta):
            raise ValueError(f"FBeta: beta must be a positive finite number; received {beta!r}.")
        self.beta = float(beta)
        super().__init__(average, num_classes, zero_division, name)

    def group_scores(self, tp, fp, fn, tn):
        beta2 = self.beta**2
        numerator = (1.0 + beta2) * tp
        return safe_divide(numerator, numerator + beta2 * fn + fp, self.zero_division)

    def get_config(self) -> dict:
        return {"beta": self.beta, **super().get_config()}


@keras.saving.register_keras_serializable(package="rlmetric")
class F1(FBeta):
    """F1 score ``2 tp / (2 tp + fp + fn)`` (``f1_score``).

    Examples:
        One score per decision set: labels ``[B]``, decisions ``[K, B]``.

        >>> import tensorflow as tf
        >>> from sklearn.metrics import f1_score
        >>> from rlmetric import rewards
        >>> y_true = tf.constant([1, 0, 1, 1])
        >>> actions = tf.constant([[1, 0, 0, 1], [1, 1, 1, 1]])
        >>> print(rewards.F1()(y_true, actions).numpy().round(4))
        [0.8    0.8571]
        >>> round(f1_score([1, 0, 1, 1], [1, 1, 1, 1]), 4)
        0.8571
    """

    default_name = "f1"

    def __init__(
        self,
        average: str = "binary",
        num_classes: int | None = None,
        zero_division: float = 0.0,
        name: str | None = None,
    ) -> None:
        super().__init__(1.0, average, num_classes, zero_division, name)

    def get_config(self) -> dict:
        config = super().get_config()
        config.pop("beta")
        return config


@keras.saving.register_keras_serializable(package="rlmetric")
class Dice(F1):
    """Dice coefficient, ``2 |A n B| / (|A| + |B|)``: the same value as F1 on the same counts.

    Examples:
        >>> import numpy as np
        >>> from rlmetric.rewards import Dice
        >>> y, actions = np.array([1, 0, 1, 1]), np.array([[1, 1, 0, 1], [1, 0, 1, 1]])
        >>> Dice()(y, actions).numpy().round(4)  # 2 * 2 / (3 + 3), then all right
        array([0.6667, 1.    ], dtype=float32)
    """

    default_name = "dice"


@keras.saving.register_keras_serializable(package="rlmetric")
class IoU(CountReward):
    """Intersection over union (Jaccard index) ``tp / (tp + fp + fn)`` (``jaccard_score``).

    Examples:
        The mean IoU over 3 classes of per-pixel class ids ``[B, H, W]``:

        >>> import tensorflow as tf
        >>> from rlmetric import rewards
        >>> y_true = tf.constant([[[0, 1], [2, 2]]])
        >>> actions = tf.constant([[[[0, 1], [2, 0]]]])  # K = 1 set: one pixel wrong
        >>> miou = rewards.IoU(average="macro", num_classes=3)
        >>> round(float(miou(y_true, actions)[0]), 4)  # (1/2 + 1 + 1/2) / 3
        0.6667
    """

    default_name = "iou"

    def group_scores(self, tp, fp, fn, tn):
        return safe_divide(tp, tp + fp + fn, self.zero_division)


@keras.saving.register_keras_serializable(package="rlmetric")
class Precision(CountReward):
    """Precision ``tp / (tp + fp)`` (``precision_score``).

    Examples:
        >>> import numpy as np
        >>> from sklearn.metrics import precision_score
        >>> from rlmetric.rewards import Precision
        >>> y, actions = np.array([1, 0, 1, 1, 0]), np.array([[1, 1, 0, 1, 0]])
        >>> bool(np.isclose(float(Precision()(y, actions)[0]), precision_score(y, actions[0])))
        True
    """

    default_name = "precision"

    def group_scores(self, tp, fp, fn, tn):
        return safe_divide(tp, tp + fp, self.zero_division)


@keras.saving.register_keras_serializable(package="rlmetric")
class Recall(CountReward):
    """Recall ``tp / (tp + fn)`` (``recall_score``).

    Examples:
        >>> import numpy as np
        >>> from sklearn.metrics import recall_score
        >>> from rlmetric.rewards import Recall
        >>> y, actions = np.array([1, 0, 1, 1, 0]), np.array([[1, 1, 0, 1, 0]])
        >>> bool(np.isclose(float(Recall()(y, actions)[0]), recall_score(y, actions[0])))
        True
    """

    default_name = "recall"

    def group_scores(self, tp, fp, fn, tn):
        return safe_divide(tp, tp + fn, self.zero_division)


@keras.saving.register_keras_serializable(package="rlmetric")
class Accuracy(CountReward):
    """Fraction of correct decisions (``accuracy_score``).

    Args:
        subset: ``False`` scores every element (scikit-learn on raveled arrays, pixel accuracy);
            ``True`` scores a row only if all its decisions are right (scikit-learn's
            ``accuracy_score`` on multi-label ``[B, L]`` arrays).
        num_classes: ``C`` for categorical decisions, else ``None``.

    Examples:
        >>> import numpy as np
        >>> from rlmetric.rewards import Accuracy
        >>> y = np.array([0, 2, 1, 2])  # class ids
        >>> Accuracy(num_classes=3)(y, np.array([[0, 2, 2, 2], [0, 2, 1, 2]])).numpy()
        array([0.75, 1.  ], dtype=float32)
    """

    default_name = "accuracy"
    supported_averages = ("micro",)

    def __init__(
        self, subset: bool = False, num_classes: int | None = None, name: str | None = None
    ) -> None:
        self.subset = bool(subset)
        super().__init__("micro", num_classes, 0.0, name)

    @property
    def groups_are_rows(self) -> bool:
        return self.subset

    def layout(self, actions_shape: tf.TensorShape) -> str:
        return LABELS if self.subset or self.num_classes is None else CLASSES

    def counts(self, y_true: tf.Tensor, actions: tf.Tensor) -> tf.Tensor:
        """``[K, G, 4]``: per-row counts with ``subset=True``, else per class or label."""
        actions = tf.convert_to_tensor(actions)
        y_true = tf.convert_to_tensor(y_true)
        self._check(y_true, actions)
        if self.subset:
            if self.num_classes is not None:
                return categorical_counts(y_true, actions, self.num_classes, by_row=True)
            return bernoulli_counts(y_true, actions, actions.shape.rank, keep_rows=2)
        if self.num_classes is not None:
            return categorical_counts(y_true, actions, self.num_classes, by_row=False)
        return bernoulli_counts(y_true, actions, actions.shape.rank, keep_rows=None)

    def group_statistics(self, counts, group_ids, layout):
        tp, fp, fn, tn = tf.unstack(counts, num=4, axis=-1)
        if self.subset:  # rows with no wrong decision
            return tf.stack([tf.cast(fp + fn == 0, tp.dtype), tf.ones_like(tp)], axis=-1)
        if layout == CLASSES:  # every element is a true member of exactly one class
            return tf.stack([tp, tp + fn], axis=-1)
        return tf.stack([tp + tn, tp + fp + fn + tn], axis=-1)

    def from_statistics(self, statistics, layout):
        correct, total = tf.unstack(statistics, num=2, axis=-1)
        return safe_divide(correct, total, 0.0)

    def get_config(self) -> dict:
        return {"subset": self.subset, "num_classes": self.num_classes, "name": self.name}


@keras.saving.register_keras_serializable(package="rlmetric")
class MatthewsCorrCoef(CountReward):
    """Matthews correlation coefficient (``matthews_corrcoef``), in ``[-1, 1]``.

    Bernoulli decisions are pooled into one binary problem (scikit-learn on raveled arrays);
    categorical decisions use the multi-class form. An undefined value (a constant prediction or
    a constant truth) is 0, as in scikit-learn. Computed in float64: the numerator is a
    difference of products of counts that float32 cannot resolve on large batches.

    Examples:
        >>> import numpy as np
        >>> from sklearn.metrics import matthews_corrcoef
        >>> from rlmetric.rewards import MatthewsCorrCoef
        >>> y, actions = np.array([1, 0, 1, 1, 0, 0]), np.array([[1, 1, 0, 1, 0, 0]])
        >>> score = float(MatthewsCorrCoef()(y, actions)[0])
        >>> bool(np.isclose(score, matthews_corrcoef(y, actions[0])))
        True
    """

    default_name = "mcc"
    supported_averages = ("micro",)

    def __init__(self, num_classes: int | None = None, name: str | None = None) -> None:
        super().__init__("micro", num_classes, 0.0, name)

    def layout(self, actions_shape: tf.TensorShape) -> str:
        single = self.num_classes is not None or is_single_target(actions_shape)
        return CLASSES if single else LABELS

    def group_statistics(self, counts, group_ids, layout):
        counts = tf.cast(counts, tf.float64)
        if layout != CLASSES:
            return counts  # pooled into one binary problem
        tp, fp, fn, _ = tf.unstack(counts, num=4, axis=-1)
        true_count, predicted_count = tp + fn, tp + fp
        return tf.stack(
            [
                tp,
                true_count,
                predicted_count * true_count,
                predicted_count**2,
                true_count**2,
            ],
            axis=-1,
        )

    def from_statistics(self, statistics, layout):
        statistics = tf.cast(statistics, tf.float64)
        if layout != CLASSES:  # the classes 1 and 0 of the pooled binary problem
            tp, fp, fn, tn = tf.unstack(statistics, num=4, axis=-1)
            correct, total = tp + tn, tp + fp + fn + tn
            true_1, predicted_1, true_0, predicted_0 = tp + fn, tp + fp, tn + fp, tn + fn
            cross = predicted_1 * true_1 + predicted_0 * true_0
            predicted_squares = predicted_1**2 + predicted_0**2
            true_squares = true_1**2 + true_0**2
        else:
            correct, total, cross, predicted_squares, true_squares = tf.unstack(
                statistics, num=5, axis=-1
            )
        covariance = correct * total - cross
        denominator = tf.sqrt((total**2 - predicted_squares) * (total**2 - true_squares))
        return tf.cast(safe_divide(covariance, denominator, 0.0), tf.float32)

    def get_config(self) -> dict:
        return {"num_classes": self.num_classes, "name": self.name}


ALIASES: dict[str, Callable[[], Reward]] = {
    "f1": F1,
    "macro_f1": lambda: F1(average="macro", name="macro_f1"),
    "micro_f1": lambda: F1(average="micro", name="micro_f1"),
    "f2": lambda: FBeta(beta=2.0, name="f2"),
    "iou": IoU,
    "jaccard": lambda: IoU(name="jaccard"),
    "miou": lambda: IoU(average="macro", name="miou"),
    "dice": Dice,
    "precision": Precision,
    "recall": Recall,
    "accuracy": Accuracy,
    "mcc": MatthewsCorrCoef,
    "matthews_corrcoef": lambda: MatthewsCorrCoef(name="matthews_corrcoef"),
    **ranking.ALIASES,  # "ndcg@10", "mrr", ... (rlmetric.ranking)
}


def get(identifier: Any) -> Reward:
    """A reward from an alias (see ``ALIASES``), a Reward, a config dict, or a TF callable
    ``fn(y_true [B, ...], actions [K, B, ...]) -> [K]``.

    Examples:
        >>> from rlmetric import rewards
        >>> rewards.get("miou")
        IoU(average='macro', num_classes=None, zero_division=0.0, name='miou')
        >>> rewards.get("ndcg@10")
        NDCG(k=10, name='ndcg@10', gain='exponential')
    """
    if isinstance(identifier, keras.metrics.Metric):
        raise TypeError(
            f"{type(identifier).__name__} is a Keras metric, not a reward: rewards score sampled "
            "decision sets, reward(y_true [B, ...], actions [K, B, ...]) -> [K]. Pass a "
            "rlmetric.rewards object or alias (e.g. 'precision'); to track a Keras metric of "
            "the outputs, compile the wrapped model with it (trainer.model.compile(metrics=...))."
        )
    if callable(identifier) and getattr(identifier, "__module__", "").startswith("sklearn"):
        raise TypeError(
            f"{getattr(identifier, '__name__', identifier)!r} is a scikit-learn function of "
            "NumPy arrays, which a TensorFlow step cannot call directly: wrap it with "
            "rlmetric.rewards.from_numpy(fn), or use the built-in reward (e.g. 'f1')."
        )
    if callable(identifier) and not isinstance(identifier, Reward | type):
        return CallableReward(identifier)
    if isinstance(identifier, str) and identifier.lower() not in ALIASES:
        at_k = ranking.from_alias(identifier)  # "ndcg@3", "mrr@5": any positive cutoff
        if at_k is not None:
            return at_k
    return resolve(identifier, ALIASES, Reward, "reward")
