"""Surrogate losses: the differentiable stand-ins for F1, IoU and Dice that people train on today.

They are here as the competition, done properly, so that :mod:`rlmetric.bench` compares the
policy-gradient trainer with the best of them rather than with a strawman. Every loss is a
``keras.losses.Loss`` with ``get_config``, takes logits by default (``from_logits=True``; the
models this library trains output logits) and runs under ``jit_compile=True``.

Shapes: ``y_pred`` is ``[B, ...]`` (``[B]``, ``[B, L]``, ``[B, H, W, 1]`` for sigmoid losses;
``[B, ..., C]`` for softmax losses). Binary targets have the shape of ``y_pred`` (a trailing axis
of 1 may be missing); class targets are integer ids ``[B, ...]`` (or ``[B, ..., 1]``) or one-hot
``[B, ..., C]``.

Losses that score a set (``SoftF1``; ``SoftDice``/``SoftJaccard`` with ``batch=True``; the
Lovasz losses with ``per_image=False``) return one value for the whole batch; their
``sample_weight`` weights each example's contribution to the soft counts (Lovasz losses refuse
it: a sorted set loss has no per-example weighting). The others return a value per example and
Keras applies ``sample_weight`` and the reduction as usual.

:func:`threshold_tuned` is the post-hoc baseline: the decision threshold that maximizes a
metric on validation data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from rlmetric import rewards as rewards_lib
from rlmetric.ranking_losses import ApproxNDCG, LambdaLoss, ListNet, PairwiseLogistic

__all__ = [
    "WeightedBCE",
    "Focal",
    "SoftF1",
    "SoftDice",
    "SoftJaccard",
    "LovaszHinge",
    "LovaszSoftmax",
    "lovasz_jaccard_gradient",
    "threshold_tuned",
    # ranking surrogates (defined in rlmetric.ranking_losses)
    "ListNet",
    "PairwiseLogistic",
    "ApproxNDCG",
    "LambdaLoss",
]

_PROBABILITY_EPSILON = 1e-7


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
    p = tf.clip_by_value(y_pred, _PROBABILITY_EPSILON, 1.0 - _PROBABILITY_EPSILON)
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
    or a scalar for the batch (when :attr:`batch_level` is true), with ``weights`` ``[B]`` (or
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


@keras.saving.register_keras_serializable(package="rlmetric")
class WeightedBCE(_SurrogateLoss):
    """Binary cross-entropy with the positive term weighted by ``pos_weight``:
    ``-(pos_weight * y * log p + (1 - y) * log(1 - p))``, averaged over the outputs of an example.

    Args:
        pos_weight: weight of positive targets (``n_negative / n_positive`` balances the
            classes); a number, or one per label for ``[B, L]`` outputs.
        from_logits: whether ``y_pred`` holds logits (default) or probabilities.
    """

    def __init__(
        self,
        pos_weight: float | Sequence[float] = 1.0,
        from_logits: bool = True,
        reduction: str = "sum_over_batch_size",
        name: str = "weighted_bce",
        dtype: Any = None,
    ) -> None:
        weights = np.atleast_1d(np.asarray(pos_weight, dtype="float64"))
        if weights.ndim != 1 or not np.all(np.isfinite(weights)) or np.any(weights <= 0):
            raise ValueError(
                "pos_weight must be a positive finite number or a list of them (one per "
                f"label); received pos_weight={pos_weight!r}."
            )
        pos_weight = float(weights[0]) if np.ndim(pos_weight) == 0 else weights.tolist()
        super().__init__(
            name, reduction, dtype, pos_weight=pos_weight, from_logits=bool(from_logits)
        )

    def _loss(self, y_true, y_pred, weights):
        y_true = _binary_targets(y_true, y_pred)
        logits = _as_logits(y_pred, self._options["from_logits"])
        pos_weight = tf.constant(self._options["pos_weight"], y_pred.dtype)
        return _mean_per_example(
            tf.nn.weighted_cross_entropy_with_logits(y_true, logits, pos_weight)
        )


@keras.saving.register_keras_serializable(package="rlmetric")
class Focal(_SurrogateLoss):
    """Binary focal loss (Lin et al., 2017): ``-alpha_t (1 - p_t)^gamma log p_t`` per output,
    averaged over the outputs of an example. ``gamma=0, alpha=None`` is plain cross-entropy.

    Args:
        gamma: focusing exponent ``>= 0``.
        alpha: weight of positives in ``[0, 1]`` (negatives get ``1 - alpha``); ``None`` for no
            class weighting.
        from_logits: whether ``y_pred`` holds logits (default) or probabilities.
    """

    def __init__(
        self,
        gamma: float = 2.0,
        alpha: float | None = 0.25,
        from_logits: bool = True,
        reduction: str = "sum_over_batch_size",
        name: str = "focal",
        dtype: Any = None,
    ) -> None:
        gamma = _check_number("gamma", gamma)
        if alpha is not None:
            alpha = _check_number("alpha", alpha)
            if alpha > 1:
                raise ValueError(f"alpha must be in [0, 1] or None; received alpha={alpha!r}.")
        super().__init__(
            name, reduction, dtype, gamma=gamma, alpha=alpha, from_logits=bool(from_logits)
        )

    def _loss(self, y_true, y_pred, weights):
        y_true = _binary_targets(y_true, y_pred)
        logits = _as_logits(y_pred, self._options["from_logits"])
        crossentropy = tf.nn.sigmoid_cross_entropy_with_logits(labels=y_true, logits=logits)
        probability = tf.sigmoid(logits)
        one_minus_p_true = y_true * (1.0 - probability) + (1.0 - y_true) * probability
        loss = crossentropy * tf.pow(one_minus_p_true, self._options["gamma"])
        alpha = self._options["alpha"]
        if alpha is not None:
            loss *= y_true * alpha + (1.0 - y_true) * (1.0 - alpha)
        return _mean_per_example(loss)


@keras.saving.register_keras_serializable(package="rlmetric")
class SoftF1(_SurrogateLoss):
    """``1 - F1`` computed on probabilities over the whole batch (sigmoidF1, Benedict et al.,
    2021): ``tp = sum p y``, ``fp = sum p (1 - y)``, ``fn = sum (1 - p) y``,
    ``F1 = 2 tp / (2 tp + fp + fn + epsilon)``.

    Args:
        average: ``"binary"`` pools every output (one decision per example or per pixel);
            ``"macro"`` computes one soft F1 per label (the last axis of ``[B, ..., L]``) and
            averages them, the surrogate of multi-label macro F1.
        epsilon: added to the denominator (a batch without positives gives ``1 - 0``).
        from_logits: whether ``y_pred`` holds logits (default) or probabilities.
    """

    batch_level = True

    def __init__(
        self,
        average: str = "binary",
        epsilon: float = 1e-7,
        from_logits: bool = True,
        reduction: str = "sum_over_batch_size",
        name: str = "soft_f1",
        dtype: Any = None,
    ) -> None:
        _check_choice("average", average, ("binary", "macro"))
        epsilon = _check_number("epsilon", epsilon)
        super().__init__(
            name, reduction, dtype, average=average, epsilon=epsilon, from_logits=bool(from_logits)
        )

    def _loss(self, y_true, y_pred, weights):
        y_true = _binary_targets(y_true, y_pred)
        probability = _sigmoid_probabilities(y_pred, self._options["from_logits"])
        if weights is not None:
            weights = _broadcast_weights(weights, y_pred)
            y_weighted, p_weighted = y_true * weights, probability * weights
        else:
            y_weighted, p_weighted = y_true, probability
        labels = 1 if self._options["average"] == "binary" else tf.shape(y_pred)[-1]
        flat = lambda t: tf.reshape(t, [-1, labels])  # noqa: E731  [N, L]
        tp = tf.reduce_sum(flat(p_weighted * y_true), axis=0)
        fp = tf.reduce_sum(flat(p_weighted), axis=0) - tp
        fn = tf.reduce_sum(flat(y_weighted), axis=0) - tp
        f1 = 2.0 * tp / (2.0 * tp + fp + fn + self._options["epsilon"])
        return 1.0 - tf.reduce_mean(f1)


@keras.saving.register_keras_serializable(package="rlmetric")
class SoftDice(_SurrogateLoss):
    """Soft Dice loss with MONAI's ``DiceLoss`` semantics, channels last.

    Per example and channel (or per channel over the batch with ``batch=True``), summing over
    the spatial axes: ``1 - (2 I + smooth_nr) / (G + P + smooth_dr)`` with ``I = sum g p``,
    ``G = sum g``, ``P = sum p`` (``sum p^2`` with ``squared_pred``); the mean over channels
    (and examples) is the loss.

    Args:
        activation: ``"sigmoid"`` (independent channels, binary targets) or ``"softmax"``
            (classes on the last axis, class-id or one-hot targets).
        include_background: whether channel 0 counts (``False`` needs ``softmax``).
        smooth_nr: added to the numerator (MONAI's default).
        smooth_dr: added to the denominator (MONAI's default); a channel empty in both target
            and prediction scores ``1 - smooth_nr / smooth_dr``.
        squared_pred: sum squared probabilities in the denominator (V-Net's variant).
        batch: sum over the batch before dividing (one Dice per channel for the batch) instead
            of one per example.
        from_logits: whether ``y_pred`` holds logits (default) or probabilities.
    """

    jaccard = False

    def __init__(
        self,
        activation: str = "sigmoid",
        include_background: bool = True,
        smooth_nr: float = 1e-5,
        smooth_dr: float = 1e-5,
        squared_pred: bool = False,
        batch: bool = False,
        from_logits: bool = True,
        reduction: str = "sum_over_batch_size",
        name: str | None = None,
        dtype: Any = None,
    ) -> None:
        _check_choice("activation", activation, ("sigmoid", "softmax"))
        if not include_background and activation != "softmax":
            raise ValueError(
                "include_background=False drops channel 0, the background class of a softmax "
                "output; with activation='sigmoid' there is no background channel. Use "
                "activation='softmax' or include_background=True."
            )
        super().__init__(
            name or ("soft_jaccard" if self.jaccard else "soft_dice"),
            reduction,
            dtype,
            activation=activation,
            include_background=bool(include_background),
            smooth_nr=_check_number("smooth_nr", smooth_nr),
            smooth_dr=_check_number("smooth_dr", smooth_dr),
            squared_pred=bool(squared_pred),
            batch=bool(batch),
            from_logits=bool(from_logits),
        )
        self.batch_level = bool(batch)

    def _loss(self, y_true, y_pred, weights):
        options = self._options
        if options["activation"] == "softmax":
            probability = tf.nn.softmax(y_pred) if options["from_logits"] else y_pred
            target = tf.one_hot(
                _class_targets(y_true, y_pred), tf.shape(y_pred)[-1], dtype=y_pred.dtype
            )
        else:
            probability = _sigmoid_probabilities(y_pred, options["from_logits"])
            target = _binary_targets(y_true, y_pred)
            if y_pred.shape.rank == 1:  # one output per example: a channel axis of 1
                probability, target = probability[:, None], target[:, None]
        if not options["include_background"]:
            probability, target = probability[..., 1:], target[..., 1:]
        predicted = tf.square(probability) if options["squared_pred"] else probability
        if weights is not None:
            weights = _broadcast_weights(weights, target)
            target_w, predicted_w = target * weights, predicted * weights
            intersection_terms = target * probability * weights
        else:
            target_w, predicted_w, intersection_terms = target, predicted, target * probability
        channels = tf.shape(target)[-1]
        if options["batch"]:
            shape = [-1, channels]  # sum over the batch and the spatial axes
        else:
            shape = [tf.shape(target)[0], -1, channels]
        intersection = tf.reduce_sum(tf.reshape(intersection_terms, shape), axis=-2)
        ground = tf.reduce_sum(tf.reshape(target_w, shape), axis=-2)
        prediction = tf.reduce_sum(tf.reshape(predicted_w, shape), axis=-2)
        denominator = ground + prediction
        if self.jaccard:
            denominator = 2.0 * (denominator - intersection)
        score = (2.0 * intersection + options["smooth_nr"]) / (denominator + options["smooth_dr"])
        return tf.reduce_mean(1.0 - score, axis=-1)  # [B], or a scalar with batch=True


@keras.saving.register_keras_serializable(package="rlmetric")
class SoftJaccard(SoftDice):
    """Soft Jaccard (IoU) loss with MONAI's semantics (``DiceLoss(jaccard=True)``):
    ``1 - (2 I + smooth_nr) / (2 (G + P - I) + smooth_dr)``, i.e. ``1 - I / (G + P - I)`` with
    no smoothing. Arguments as :class:`SoftDice`."""

    jaccard = True


def lovasz_jaccard_gradient(
    sorted_targets: tf.Tensor, sorted_valid: tf.Tensor | None = None
) -> tf.Tensor:
    """The gradient of the Lovasz extension of the Jaccard loss at a point, given its
    coordinates' targets in decreasing order of error.

    Args:
        sorted_targets: ``[N, P]`` float 0/1 targets of ``N`` independent sets of ``P``
            elements, each row sorted by decreasing error.
        sorted_valid: ``[N, P]`` float 0/1, the elements that count (ignored ones add to neither
            the intersection nor the union, so their gradient is 0); ``None`` for all.

    Returns:
        ``[N, P]``: ``J(top i) - J(top i-1)`` with ``J(S)`` the Jaccard loss of flipping the
        elements of ``S``, computed with cumulative sums (no loop over elements).
    """
    negatives = 1.0 - sorted_targets
    if sorted_valid is not None:
        sorted_targets, negatives = sorted_targets * sorted_valid, negatives * sorted_valid
    positives = tf.reduce_sum(sorted_targets, axis=-1, keepdims=True)
    intersection = positives - tf.cumsum(sorted_targets, axis=-1)
    union = positives + tf.cumsum(negatives, axis=-1)
    jaccard = 1.0 - intersection / tf.maximum(union, 1.0)  # union >= 1 past any valid element
    return tf.concat([jaccard[:, :1], jaccard[:, 1:] - jaccard[:, :-1]], axis=-1)


def _lovasz(errors: tf.Tensor, targets: tf.Tensor, valid: tf.Tensor | None) -> tf.Tensor:
    """``[N, P]`` errors (>= 0 where they count), 0/1 targets and validity -> ``[N]`` Lovasz
    extension of the Jaccard loss at ``errors``: sort each row, then one dot product."""
    order = tf.argsort(tf.stop_gradient(errors), axis=-1, direction="DESCENDING", stable=True)
    sorted_errors = tf.gather(errors, order, batch_dims=1)
    sorted_targets = tf.gather(targets, order, batch_dims=1)
    sorted_valid = None if valid is None else tf.gather(valid, order, batch_dims=1)
    gradient = tf.stop_gradient(lovasz_jaccard_gradient(sorted_targets, sorted_valid))
    return tf.reduce_sum(sorted_errors * gradient, axis=-1)


def _valid_mask(labels: tf.Tensor, ignore_index: int | None, dtype: tf.DType):
    if ignore_index is None:
        return None
    return tf.cast(tf.not_equal(labels, ignore_index), dtype)


def _check_ignore_index(ignore_index: Any) -> int | None:
    if ignore_index is not None and (
        isinstance(ignore_index, bool) or not isinstance(ignore_index, int | np.integer)
    ):
        raise TypeError(f"ignore_index must be an int or None; received {ignore_index!r}.")
    return None if ignore_index is None else int(ignore_index)


@keras.saving.register_keras_serializable(package="rlmetric")
class LovaszHinge(_SurrogateLoss):
    """Binary Lovasz hinge loss (Berman et al., 2018), the convex surrogate of ``1 - IoU``.

    The hinge errors ``max(0, 1 - logit * sign)`` (``sign = 2y - 1``) are scored by the Lovasz
    extension of the Jaccard loss: sort the errors, weight them by
    :func:`lovasz_jaccard_gradient`. All images are sorted at once (``tf.argsort`` along the
    pixel axis, cumulative sums): no loop over images.

    Args:
        per_image: one loss per example (mean over the batch) if true; else one Jaccard over
            all outputs of the batch (the right choice for one output per example).
        ignore_index: a target value whose outputs count nowhere (e.g. 255 for unlabeled
            pixels); ``None`` for none.

    ``y_pred`` must be logits (the hinge is on the margin).
    """

    accepts_weights_at_batch_level = False

    def __init__(
        self,
        per_image: bool = True,
        ignore_index: int | None = None,
        reduction: str = "sum_over_batch_size",
        name: str = "lovasz_hinge",
        dtype: Any = None,
    ) -> None:
        super().__init__(
            name,
            reduction,
            dtype,
            per_image=bool(per_image),
            ignore_index=_check_ignore_index(ignore_index),
        )
        self.batch_level = not per_image

    def _loss(self, y_true, y_pred, weights):
        labels = tf.reshape(tf.convert_to_tensor(y_true), tf.shape(y_pred))
        rows = tf.shape(y_pred)[0] if self._options["per_image"] else 1
        valid = _valid_mask(labels, self._options["ignore_index"], y_pred.dtype)
        targets = tf.cast(tf.equal(labels, tf.cast(1, labels.dtype)), y_pred.dtype)
        errors = tf.nn.relu(1.0 - y_pred * (2.0 * targets - 1.0))
        if valid is not None:
            errors *= valid
            valid = tf.reshape(valid, [rows, -1])
        losses = _lovasz(tf.reshape(errors, [rows, -1]), tf.reshape(targets, [rows, -1]), valid)
        return losses if self._options["per_image"] else losses[0]


@keras.saving.register_keras_serializable(package="rlmetric")
class LovaszSoftmax(_SurrogateLoss):
    """Multi-class Lovasz-softmax loss (Berman et al., 2018), the surrogate of ``1 - mIoU``.

    For each class ``c`` the errors ``|1[y = c] - p_c|`` are scored by the Lovasz extension of
    the Jaccard loss of class ``c``; the loss averages the classes. Every (image, class) row is
    sorted at once: no loop over images or classes.

    Args:
        per_image: one loss per example (mean over the batch) if true; else one over the
            whole batch (Berman et al.'s default).
        classes: ``"present"`` averages the classes present in the targets (of the image, or of
            the batch); ``"all"`` averages every class.
        ignore_index: a class id whose pixels count nowhere (e.g. 255); ``None`` for none.
        from_logits: whether ``y_pred`` holds logits (default; softmax is applied) or
            probabilities.
    """

    accepts_weights_at_batch_level = False

    def __init__(
        self,
        per_image: bool = False,
        classes: str = "present",
        ignore_index: int | None = None,
        from_logits: bool = True,
        reduction: str = "sum_over_batch_size",
        name: str = "lovasz_softmax",
        dtype: Any = None,
    ) -> None:
        _check_choice("classes", classes, ("present", "all"))
        super().__init__(
            name,
            reduction,
            dtype,
            per_image=bool(per_image),
            classes=classes,
            ignore_index=_check_ignore_index(ignore_index),
            from_logits=bool(from_logits),
        )
        self.batch_level = not per_image

    def _loss(self, y_true, y_pred, weights):
        options = self._options
        num_classes = tf.shape(y_pred)[-1]
        labels = _class_targets(y_true, y_pred)
        probability = tf.nn.softmax(y_pred) if options["from_logits"] else y_pred
        rows = tf.shape(y_pred)[0] if options["per_image"] else 1
        valid = _valid_mask(labels, options["ignore_index"], y_pred.dtype)
        targets = tf.one_hot(labels, num_classes, dtype=y_pred.dtype)  # ignored ids: all zero
        errors = tf.abs(targets - probability)
        # [rows, P, C] -> [rows * C, P]: one sorted row per (image, class)
        to_rows = lambda t: tf.reshape(  # noqa: E731
            tf.transpose(tf.reshape(t, [rows, -1, num_classes]), [0, 2, 1]),
            [rows * num_classes, -1],
        )
        if valid is not None:
            errors *= valid[..., None]
            valid = to_rows(tf.broadcast_to(valid[..., None], tf.shape(errors)))
        per_class = tf.reshape(_lovasz(to_rows(errors), to_rows(targets), valid), [rows, -1])
        if options["classes"] == "present":
            present = tf.cast(tf.reduce_sum(to_rows(targets), axis=-1) > 0, y_pred.dtype)
            present = tf.reshape(present, [rows, -1])
            losses = tf.reduce_sum(per_class * present, axis=-1) / tf.maximum(
                tf.reduce_sum(present, axis=-1), 1.0
            )
        else:
            losses = tf.reduce_mean(per_class, axis=-1)
        return losses if options["per_image"] else losses[0]


def threshold_tuned(
    model: Any,
    x_val: Any,
    y_val: Any,
    metric: Any = "f1",
    *,
    per_label: bool = False,
    max_candidates: int = 1024,
    batch_size: int = 1024,
) -> float | np.ndarray:
    """The decision threshold on the model's outputs that maximizes ``metric`` on validation
    data: the post-hoc baseline of "train on cross-entropy, then tune the threshold".

    Decisions are ``output > threshold`` on the model's raw outputs (logits for the models this
    library trains). Candidates are the midpoints between consecutive distinct outputs (at most
    ``max_candidates``, taken at quantiles) plus one below all; they are all scored in one
    vectorized call of the reward, as ``K`` sample sets.

    Args:
        model: a callable (Keras model) mapping ``x_val`` to outputs ``[N]``, ``[N, 1]`` or
            ``[N, L]``; or the outputs themselves as an array.
        x_val: validation inputs (ignored when ``model`` is an array).
        y_val: binary targets of the outputs' shape.
        metric: a Bernoulli :mod:`rlmetric.rewards` reward or alias (``"f1"``, ``"macro_f1"``,
            ``"iou"``, ...).
        per_label: for ``[N, L]`` outputs, tune one threshold per label, each maximizing the
            metric on its own column (what a macro average rewards); else one shared threshold.

    Returns:
        A float, or ``[L]`` thresholds with ``per_label=True``. Ties keep the lowest threshold.
    """
    if isinstance(model, np.ndarray | tf.Tensor):
        outputs = np.asarray(model, dtype="float64")
    else:
        outputs = np.asarray(
            keras.ops.convert_to_numpy(
                model.predict(x_val, batch_size=batch_size, verbose=0)
                if hasattr(model, "predict")
                else model(x_val)
            ),
            dtype="float64",
        )
    y_val = np.asarray(y_val)
    if y_val.size != outputs.size:
        raise ValueError(
            f"y_val of shape {y_val.shape} does not fit the model's outputs of shape "
            f"{outputs.shape}: threshold_tuned needs one binary target per output."
        )
    if (
        isinstance(max_candidates, bool)
        or not isinstance(max_candidates, int)
        or max_candidates < 2
    ):
        raise ValueError(f"max_candidates must be an int >= 2; received {max_candidates!r}.")
    y_val = y_val.reshape(outputs.shape)
    reward = rewards_lib.get(metric)
    if per_label:
        if outputs.ndim != 2:
            raise ValueError(
                f"per_label=True needs outputs of shape [N, L]; the model's outputs have shape "
                f"{outputs.shape}."
            )
        return np.array(
            [
                _best_threshold(outputs[:, j], y_val[:, j], reward, max_candidates)
                for j in range(outputs.shape[1])
            ]
        )
    return _best_threshold(outputs, y_val, reward, max_candidates)


def _best_threshold(outputs: np.ndarray, y_true: np.ndarray, reward, max_candidates: int) -> float:
    values = np.unique(outputs)
    if values.size > max_candidates:
        values = np.unique(np.quantile(values, np.linspace(0.0, 1.0, max_candidates)))
    candidates = np.concatenate([[values[0] - 1.0], (values[:-1] + values[1:]) / 2.0])
    # K = number of candidates: the reward scores every candidate's decisions at once
    actions = (outputs[None] > candidates.reshape([-1] + [1] * outputs.ndim)).astype("int32")
    scores = keras.ops.convert_to_numpy(
        reward(tf.constant(y_true.astype("int32")), tf.constant(actions))
    )
    return float(candidates[int(np.argmax(scores))])
