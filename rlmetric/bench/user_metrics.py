"""Each task's metric written as a user would write it: plain TensorFlow or plain NumPy, with no
rlmetric internals, scoring ``M`` decision sets at once. The ``pg-user-tf`` and
``pg-user-numpy`` methods train on these with the trainer's defaults, to measure what a user's
own metric gets against the built-in reward of the same metric.

TensorFlow functions receive ``y_true [B, ...]`` and ``sets [M, B, ...]`` and return ``[M]``;
NumPy functions (``rewards.from_numpy(fn, vectorized=True)``) receive ``y_true [N]`` and
``sets [M, N]`` (``[B, L]`` and ``[M, B, L]`` for multi-label) and return ``[M]``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf

__all__ = [
    "CAMPAIGN_CHUNK",
    "campaign_profit",
    "tf_metric",
    "numpy_metric",
]

#: The campaign task's decisions are made for lists of this many customers (a day's list); its
#: metric is the mean profit per list, and its batches have this size.
CAMPAIGN_CHUNK = 100


def campaign_profit(y_true: np.ndarray, decisions: np.ndarray) -> float:
    """The campaign task's test metric: the mean over consecutive lists of
    [`CAMPAIGN_CHUNK`][rlmetric.bench.user_metrics.CAMPAIGN_CHUNK] customers of +10 per contacted
    buyer, -3 per contacted non-buyer, and
    -50 for a list of which more than 20% is contacted."""
    y = y_true.reshape(-1, CAMPAIGN_CHUNK)
    d = decisions.reshape(-1, CAMPAIGN_CHUNK)
    return float(np.mean(profit_numpy_vectorized(y, d)))


# --- TensorFlow: y_true [B, ...], sets [M, B, ...] -> [M] -----------------------------------------


def _tf_flat(y_true, sets):
    m = tf.shape(sets)[0]
    y = tf.reshape(tf.cast(y_true, tf.float32), [1, -1])
    a = tf.reshape(tf.cast(sets, tf.float32), [m, -1])
    return y, a


def f1_tf(y_true, sets):
    y, a = _tf_flat(y_true, sets)
    tp = tf.reduce_sum(a * y, axis=1)
    fp = tf.reduce_sum(a * (1.0 - y), axis=1)
    fn = tf.reduce_sum((1.0 - a) * y, axis=1)
    return tf.math.divide_no_nan(2.0 * tp, 2.0 * tp + fp + fn)


def macro_f1_tf(y_true, sets):
    y = tf.cast(y_true, tf.float32)[None]  # [1, B, L]
    a = tf.cast(sets, tf.float32)  # [M, B, L]
    tp = tf.reduce_sum(a * y, axis=1)
    fp = tf.reduce_sum(a * (1.0 - y), axis=1)
    fn = tf.reduce_sum((1.0 - a) * y, axis=1)
    return tf.reduce_mean(tf.math.divide_no_nan(2.0 * tp, 2.0 * tp + fp + fn), axis=-1)


def iou_tf(y_true, sets):
    y, a = _tf_flat(y_true, sets)
    intersection = tf.reduce_sum(a * y, axis=1)
    union = tf.reduce_sum(tf.maximum(a, y), axis=1)
    return tf.math.divide_no_nan(intersection, union)


def mean_iou_tf(y_true, sets, classes=4):
    """The mean over the classes present in labels or decisions of their IoU."""
    m = tf.shape(sets)[0]
    y = tf.one_hot(tf.reshape(tf.cast(y_true, tf.int32), [1, -1]), classes)  # [1, N, C]
    a = tf.one_hot(tf.reshape(tf.cast(sets, tf.int32), [m, -1]), classes)  # [M, N, C]
    intersection = tf.reduce_sum(a * y, axis=1)
    union = tf.reduce_sum(tf.maximum(a, y), axis=1)
    present = tf.cast(union > 0, tf.float32)
    return tf.reduce_sum(tf.math.divide_no_nan(intersection, union), 1) / tf.reduce_sum(present, 1)


def hit_tf(y_true, sets, window=0.15):
    """Per example: 1 where the prediction is within ``window`` of the target ([M, B])."""
    gap = tf.abs(tf.cast(sets, tf.float32) - tf.cast(y_true, tf.float32)[None])
    return tf.cast(gap <= window, tf.float32)[..., 0]


def profit_tf(y_true, sets):
    """+10 per contacted buyer, -3 per contacted non-buyer, -50 if over 20% is contacted."""
    y, a = _tf_flat(y_true, sets)
    profit = 10.0 * tf.reduce_sum(a * y, axis=1) - 3.0 * tf.reduce_sum(a * (1.0 - y), axis=1)
    over_budget = tf.reduce_mean(a, axis=1) > 0.2
    return tf.where(over_budget, profit - 50.0, profit)


# --- NumPy, vectorized: y_true [N] (or [B, L]), sets [M, N] (or [M, B, L]) -> [M] -----------------


def f1_numpy(y_true, sets):
    tp = (sets * y_true).sum(axis=-1)
    fp = (sets * (1 - y_true)).sum(axis=-1)
    fn = ((1 - sets) * y_true).sum(axis=-1)
    denominator = 2 * tp + fp + fn
    return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)


def macro_f1_numpy(y_true, sets):
    tp = (sets * y_true).sum(axis=1)
    fp = (sets * (1 - y_true)).sum(axis=1)
    fn = ((1 - sets) * y_true).sum(axis=1)
    denominator = 2 * tp + fp + fn
    return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0).mean(axis=-1)


def iou_numpy(y_true, sets):
    intersection = (sets & y_true).sum(axis=-1)
    union = (sets | y_true).sum(axis=-1)
    return np.where(union > 0, intersection / np.maximum(union, 1), 0.0)


def mean_iou_numpy(y_true, sets, classes=4):
    scores, present = 0.0, 0
    for c in range(classes):  # a loop over classes, as a user writes it
        a, y = sets == c, y_true == c
        union = (a | y).sum(axis=-1)
        scores = scores + np.where(union > 0, (a & y).sum(axis=-1) / np.maximum(union, 1), 0.0)
        present = present + (union > 0)
    return scores / np.maximum(present, 1)


def profit_numpy_vectorized(y_true, sets):
    contacted_buyers = (sets * y_true).sum(axis=-1)
    contacted_others = (sets * (1 - y_true)).sum(axis=-1)
    profit = 10.0 * contacted_buyers - 3.0 * contacted_others
    return np.where(sets.mean(axis=-1) > 0.2, profit - 50.0, profit)


def profit_numpy(y_true, y_pred):
    """The campaign metric of one decision set, with a plain ``if``."""
    profit = 10.0 * np.sum(y_pred * y_true) - 3.0 * np.sum(y_pred * (1 - y_true))
    if y_pred.mean() > 0.2:
        profit -= 50.0
    return profit


_TF: dict[str, Callable] = {
    "binary": f1_tf,
    "multilabel": macro_f1_tf,
    "binary-seg": iou_tf,
    "multiclass-seg": mean_iou_tf,
    "campaign": profit_tf,
}
_NUMPY: dict[str, Callable] = {
    "binary": f1_numpy,
    "multilabel": macro_f1_numpy,
    "binary-seg": iou_numpy,
    "multiclass-seg": mean_iou_numpy,
    "campaign": profit_numpy_vectorized,
}
#: the task kinds that have user-written metrics
KINDS = tuple(_TF)


def tf_metric(kind: str) -> Callable:
    """The TensorFlow metric of a task kind."""
    return _TF[kind]


def numpy_metric(kind: str) -> Callable:
    """The vectorized NumPy metric of a task kind."""
    return _NUMPY[kind]
