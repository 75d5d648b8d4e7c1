"""Helpers shared by the surrogate losses: argument checks, target formats, and the base class
that holds the logits/probabilities switch (``from_logits``) and ``get_config``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

PROBABILITY_EPSILON = 1e-7


def _check_number(name: str, value: Any, *, minimum: float = 0.0, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise TypeError(f"{name} must be a number; received {name}={value!r}.")
    value = float(value)
    bad = value <= minimum if strict else value < minimum
    if not math.isfinite(value) or bad:
        relation = ">" if strict else ">="
        raise ValueError(
            f"{name} must be a finite number {relation} {minimum}; received {value!r}."
        )
    return value


def _check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}; received {name}={value!r}.")
    return value


def _binary_targets(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    """``y_true`` as floats of the shape of ``y_pred`` ``[B, ...]``."""
    y_true = tf.convert_to_tensor(y_true)
    sizes = (y_true.shape.num_elements(), y_pred.shape.num_elements())
    if None not in sizes and sizes[0] != sizes[1]:
        raise ValueError(
            f"y_true of shape {y_true.shape} does not fit y_pred of shape {y_pred.shape}: "
            "binary targets need one value per output."
        )
    return tf.reshape(tf.cast(y_true, y_pred.dtype), tf.shape(y_pred))


def _class_targets(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    """Integer class ids ``[B, ...]`` from ids ``[B, ...]``/``[B, ..., 1]`` or one-hot
    ``[B, ..., C]``, for class scores ``y_pred`` ``[B, ..., C]``."""
    y_true = tf.convert_to_tensor(y_true)
    rank, pred_rank = y_true.shape.rank, y_pred.shape.rank
    if rank == pred_rank and y_true.shape[-1] == y_pred.shape[-1] and y_pred.shape[-1] != 1:
        return tf.argmax(y_true, axis=-1, output_type=tf.int32)
    if rank == pred_rank and y_true.shape[-1] == 1:
        y_true = tf.squeeze(y_true, axis=-1)
    elif rank != pred_rank - 1:
        raise ValueError(
            f"y_true of shape {y_true.shape} does not fit class scores y_pred of shape "
            f"{y_pred.shape}: expected class ids of shape {y_pred.shape[:-1]} (or with a "
            f"trailing 1) or one-hot targets of shape {y_pred.shape}."
        )
    return tf.cast(y_true, tf.int32)


def _as_logits(y_pred: tf.Tensor, from_logits: bool) -> tf.Tensor:
    if from_logits:
        return y_pred
    p = tf.clip_by_value(y_pred, PROBABILITY_EPSILON, 1.0 - PROBABILITY_EPSILON)
    return tf.math.log(p) - tf.math.log1p(-p)


def _sigmoid_probabilities(y_pred: tf.Tensor, from_logits: bool) -> tf.Tensor:
    return tf.sigmoid(y_pred) if from_logits else y_pred


def _mean_per_example(values: tf.Tensor) -> tf.Tensor:
    """``[B, ...] -> [B]``: the mean over every axis but the first."""
    if values.shape.rank is not None and values.shape.rank <= 1:
        return values
    return tf.reduce_mean(tf.reshape(values, [tf.shape(values)[0], -1]), axis=-1)


def _broadcast_weights(weights: tf.Tensor, like: tf.Tensor) -> tf.Tensor:
    """Per-example ``weights`` ``[B]`` as ``[B, 1, ...]``, broadcastable to ``like``."""
    return tf.reshape(weights, [-1] + [1] * (like.shape.rank - 1))


class _SurrogateLoss(keras.losses.Loss):
    """Shared ``get_config`` and the batch-level ``__call__`` of the set losses.

    Subclasses implement ``_loss(y_true, y_pred, weights)`` returning ``[B]`` per-example losses
    or a scalar for the batch (when [`batch_level`][rlmetric._surrogate_base.batch_level] is true),
    with ``weights`` ``[B]`` (or
    ``None``) weighting each example's share of the batch-level sums.
    """

    batch_level = False
    accepts_weights_at_batch_level = True

    def __init__(self, name: str, reduction: str, dtype: Any, **options: Any) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self._options = options

    def call(self, y_true, y_pred):
        return self._loss(y_true, tf.convert_to_tensor(y_pred), None)

    def __call__(self, y_true, y_pred, sample_weight=None):
        if not self.batch_level:
            return super().__call__(y_true, y_pred, sample_weight=sample_weight)
        if sample_weight is not None and not self.accepts_weights_at_batch_level:
            raise ValueError(
                f"{type(self).__name__}(per_image=False) scores the whole batch as one set and "
                "has no per-example weighting; received a sample_weight. Use per_image=True."
            )
        with tf.name_scope(self.name):
            y_pred = tf.convert_to_tensor(y_pred, dtype=self.dtype)
            weights = None
            if sample_weight is not None:
                weights = tf.reshape(tf.cast(sample_weight, y_pred.dtype), [-1])
            return self._loss(y_true, y_pred, weights)

    def get_config(self) -> dict:
        return {**super().get_config(), **self._options}
