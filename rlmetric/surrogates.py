"""Surrogate losses: the differentiable stand-ins for F1, IoU and Dice that people train on today.

They are here as the competition, done properly, so that ``rlmetric.bench`` compares the
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

The Lovasz losses live in ``rlmetric.lovasz`` and the ranking surrogates in
[`rlmetric.ranking_losses`][rlmetric.ranking_losses]; both are importable from here. Threshold
tuning, the post-hoc
baseline, moved to [`rlmetric.thresholds`][rlmetric.thresholds] (``surrogates.threshold_tuned``
still works, with a
deprecation warning, for one release).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from rlmetric._surrogate_base import (
    _as_logits,
    _binary_targets,
    _broadcast_weights,
    _check_choice,
    _check_number,
    _class_targets,
    _mean_per_example,
    _sigmoid_probabilities,
    _SurrogateLoss,
)
from rlmetric.lovasz import (
    LovaszHinge,
    LovaszSoftmax,
    lovasz_hinge,
    lovasz_jaccard_gradient,
    lovasz_softmax,
)
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
    "weighted_bce",
    "focal",
    "soft_f1",
    "soft_dice",
    "lovasz_hinge",
    "lovasz_softmax",
    "threshold_tuned",
    # ranking surrogates (defined in rlmetric.ranking_losses)
    "ListNet",
    "PairwiseLogistic",
    "ApproxNDCG",
    "LambdaLoss",
]


@keras.saving.register_keras_serializable(package="rlmetric")
class WeightedBCE(_SurrogateLoss):
    """Binary cross-entropy with the positive term weighted by ``pos_weight``:
    ``-(pos_weight * y * log p + (1 - y) * log(1 - p))``, averaged over the outputs of an example.

    Args:
        pos_weight: weight of positive targets (``n_negative / n_positive`` balances the
            classes); a number, or one per label for ``[B, L]`` outputs.
        from_logits: whether ``y_pred`` holds logits (default) or probabilities.

    Examples:
        >>> import numpy as np
        >>> from rlmetric.surrogates import WeightedBCE
        >>> y, logits = np.array([[1.0], [0.0]]), np.zeros([2, 1])
        >>> plain, weighted = float(WeightedBCE(1.0)(y, logits)), float(WeightedBCE(3.0)(y, logits))
        >>> round(weighted / plain, 4)  # the positive's term counts 3 times: (3 + 1) / (1 + 1)
        2.0
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
        return weighted_bce(y_true, y_pred, weights=weights, **self._options)


@keras.saving.register_keras_serializable(package="rlmetric")
class Focal(_SurrogateLoss):
    """Binary focal loss (Lin et al., 2017): ``-alpha_t (1 - p_t)^gamma log p_t`` per output,
    averaged over the outputs of an example. ``gamma=0, alpha=None`` is plain cross-entropy.

    Args:
        gamma: focusing exponent ``>= 0``.
        alpha: weight of positives in ``[0, 1]`` (negatives get ``1 - alpha``); ``None`` for no
            class weighting.
        from_logits: whether ``y_pred`` holds logits (default) or probabilities.

    Examples:
        >>> import numpy as np
        >>> from rlmetric.surrogates import Focal
        >>> y = np.array([[1.0], [1.0]])
        >>> easy, hard = float(Focal()(y[:1], [[4.0]])), float(Focal()(y[:1], [[-4.0]]))
        >>> easy < 0.001 < hard  # confident and right costs (almost) nothing
        True
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
        return focal(y_true, y_pred, weights=weights, **self._options)


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

    Examples:
        >>> import numpy as np
        >>> from rlmetric.surrogates import SoftF1
        >>> y = np.array([[1.0], [0.0], [1.0]])
        >>> loss = SoftF1()
        >>> float(loss(y, np.array([[4.0], [-4.0], [4.0]]))) < float(loss(y, np.zeros([3, 1])))
        True
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
        return soft_f1(y_true, y_pred, weights=weights, **self._options)


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

    Examples:
        >>> import numpy as np
        >>> from rlmetric.surrogates import SoftDice
        >>> masks = np.zeros([2, 4, 4, 1]); masks[:, 1:3, 1:3] = 1.0
        >>> loss = SoftDice("sigmoid")
        >>> float(loss(masks, 8.0 * (2 * masks - 1))) < float(loss(masks, np.zeros_like(masks)))
        True
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
        return soft_dice(y_true, y_pred, weights=weights, jaccard=self.jaccard, **self._options)


@keras.saving.register_keras_serializable(package="rlmetric")
class SoftJaccard(SoftDice):
    """Soft Jaccard (IoU) loss with MONAI's semantics (``DiceLoss(jaccard=True)``):
    ``1 - (2 I + smooth_nr) / (2 (G + P - I) + smooth_dr)``, i.e. ``1 - I / (G + P - I)`` with
    no smoothing. Arguments as [`SoftDice`][rlmetric.surrogates.SoftDice].

    Examples:
        >>> import numpy as np
        >>> from rlmetric.surrogates import SoftJaccard
        >>> masks = np.zeros([1, 4, 4, 1]); masks[:, :2] = 1.0
        >>> loss = SoftJaccard("sigmoid", from_logits=False)
        >>> round(float(loss(masks, masks)), 4)  # a perfect mask
        0.0
    """

    jaccard = True


def threshold_tuned(*args: Any, **kwargs: Any) -> float | np.ndarray:
    """Deprecated alias of
    [`rlmetric.thresholds.threshold_tuned`][rlmetric.thresholds.threshold_tuned] (threshold tuning
    is not a
    loss); kept for one release."""
    import warnings

    from rlmetric import thresholds

    warnings.warn(
        "rlmetric.surrogates.threshold_tuned moved to rlmetric.thresholds.threshold_tuned; the "
        "old name will be removed in the next release.",
        DeprecationWarning,
        stacklevel=2,
    )
    return thresholds.threshold_tuned(*args, **kwargs)


def weighted_bce(
    y_true: tf.Tensor,
    y_pred: tf.Tensor,
    *,
    pos_weight: float | Sequence[float] = 1.0,
    from_logits: bool = True,
    weights: tf.Tensor | None = None,
) -> tf.Tensor:
    """The loss of [`WeightedBCE`][rlmetric.surrogates.WeightedBCE] as a function; the class calls
    it with its options.

    Returns per example ``[B]``: the mean over its outputs of the weighted binary cross-entropy.
    ``weights`` ``[B]`` weight each example's share of the batch-level sums (``None``: equally).

    Examples:
        >>> import tensorflow as tf
        >>> from rlmetric.surrogates import weighted_bce
        >>> y, logits = tf.constant([[1.0], [0.0]]), tf.constant([[2.0], [1.0]])
        >>> weighted_bce(y, logits, pos_weight=3.0).numpy().round(4)  # the positive counts 3 times
        array([0.3808, 1.3133], dtype=float32)
    """
    y_true, y_pred = tf.convert_to_tensor(y_true), tf.convert_to_tensor(y_pred)
    y_true = _binary_targets(y_true, y_pred)
    logits = _as_logits(y_pred, from_logits)
    pos_weight = tf.constant(pos_weight, y_pred.dtype)
    return _mean_per_example(tf.nn.weighted_cross_entropy_with_logits(y_true, logits, pos_weight))


def focal(
    y_true: tf.Tensor,
    y_pred: tf.Tensor,
    *,
    gamma: float = 2.0,
    alpha: float | None = 0.25,
    from_logits: bool = True,
    weights: tf.Tensor | None = None,
) -> tf.Tensor:
    """The loss of [`Focal`][rlmetric.surrogates.Focal] as a function; the class calls it with its
    options.

    Returns per example ``[B]``: the mean over its outputs of the focal loss. ``weights``
    ``[B]`` weight each example's share of the batch-level sums (``None``: equally).

    Examples:
        >>> import tensorflow as tf
        >>> from rlmetric.surrogates import focal
        >>> y, logits = tf.constant([[1.0], [0.0]]), tf.constant([[2.0], [1.0]])
        >>> focal(y, logits).numpy().round(4)  # the confident right answer counts almost nothing
        array([5.000e-04, 5.264e-01], dtype=float32)
    """
    y_true, y_pred = tf.convert_to_tensor(y_true), tf.convert_to_tensor(y_pred)
    y_true = _binary_targets(y_true, y_pred)
    logits = _as_logits(y_pred, from_logits)
    crossentropy = tf.nn.sigmoid_cross_entropy_with_logits(labels=y_true, logits=logits)
    probability = tf.sigmoid(logits)
    one_minus_p_true = y_true * (1.0 - probability) + (1.0 - y_true) * probability
    loss = crossentropy * tf.pow(one_minus_p_true, gamma)
    alpha = alpha
    if alpha is not None:
        loss *= y_true * alpha + (1.0 - y_true) * (1.0 - alpha)
    return _mean_per_example(loss)


def soft_f1(
    y_true: tf.Tensor,
    y_pred: tf.Tensor,
    *,
    average: str = "binary",
    epsilon: float = 1e-7,
    from_logits: bool = True,
    weights: tf.Tensor | None = None,
) -> tf.Tensor:
    """The loss of [`SoftF1`][rlmetric.surrogates.SoftF1] as a function; the class calls it with its
    options.

    Returns a scalar for the batch: ``1 - soft F1``. ``weights`` ``[B]`` weight each example's
    share of the batch-level sums (``None``: equally).

    Examples:
        >>> import tensorflow as tf
        >>> from rlmetric.surrogates import soft_f1
        >>> round(float(soft_f1(tf.constant([[1.0], [0.0]]), tf.constant([[2.0], [1.0]]))), 4)
        0.3255
    """
    y_true, y_pred = tf.convert_to_tensor(y_true), tf.convert_to_tensor(y_pred)
    y_true = _binary_targets(y_true, y_pred)
    probability = _sigmoid_probabilities(y_pred, from_logits)
    if weights is not None:
        weights = _broadcast_weights(weights, y_pred)
        y_weighted, p_weighted = y_true * weights, probability * weights
    else:
        y_weighted, p_weighted = y_true, probability
    labels = 1 if average == "binary" else tf.shape(y_pred)[-1]
    flat = lambda t: tf.reshape(t, [-1, labels])  # noqa: E731  [N, L]
    tp = tf.reduce_sum(flat(p_weighted * y_true), axis=0)
    fp = tf.reduce_sum(flat(p_weighted), axis=0) - tp
    fn = tf.reduce_sum(flat(y_weighted), axis=0) - tp
    f1 = 2.0 * tp / (2.0 * tp + fp + fn + epsilon)
    return 1.0 - tf.reduce_mean(f1)


def soft_dice(
    y_true: tf.Tensor,
    y_pred: tf.Tensor,
    *,
    activation: str = "sigmoid",
    include_background: bool = True,
    smooth_nr: float = 1e-5,
    smooth_dr: float = 1e-5,
    squared_pred: bool = False,
    batch: bool = False,
    from_logits: bool = True,
    jaccard: bool = False,
    weights: tf.Tensor | None = None,
) -> tf.Tensor:
    """The loss of [`SoftDice`][rlmetric.surrogates.SoftDice] as a function; the class calls it with
    its options.

    Returns ``[B]`` per example, or a scalar with ``batch=True``: ``1 - soft Dice`` (or
    Jaccard). ``weights`` ``[B]`` weight each example's share of the batch-level sums (``None``:
    equally).

    Examples:
        >>> import tensorflow as tf
        >>> from rlmetric.surrogates import soft_dice
        >>> # one mask of 2 pixels
        >>> y, logits = tf.constant([[[1.0], [0.0]]]), tf.constant([[[3.0], [-3.0]]])
        >>> soft_dice(y, logits).numpy().round(4)
        array([0.0474], dtype=float32)
    """
    y_true, y_pred = tf.convert_to_tensor(y_true), tf.convert_to_tensor(y_pred)
    if activation == "softmax":
        probability = tf.nn.softmax(y_pred) if from_logits else y_pred
        target = tf.one_hot(
            _class_targets(y_true, y_pred), tf.shape(y_pred)[-1], dtype=y_pred.dtype
        )
    else:
        probability = _sigmoid_probabilities(y_pred, from_logits)
        target = _binary_targets(y_true, y_pred)
        if y_pred.shape.rank == 1:  # one output per example: a channel axis of 1
            probability, target = probability[:, None], target[:, None]
    if not include_background:
        probability, target = probability[..., 1:], target[..., 1:]
    predicted = tf.square(probability) if squared_pred else probability
    if weights is not None:
        weights = _broadcast_weights(weights, target)
        target_w, predicted_w = target * weights, predicted * weights
        intersection_terms = target * probability * weights
    else:
        target_w, predicted_w, intersection_terms = target, predicted, target * probability
    channels = tf.shape(target)[-1]
    if batch:
        shape = [-1, channels]  # sum over the batch and the spatial axes
    else:
        shape = [tf.shape(target)[0], -1, channels]
    intersection = tf.reduce_sum(tf.reshape(intersection_terms, shape), axis=-2)
    ground = tf.reduce_sum(tf.reshape(target_w, shape), axis=-2)
    prediction = tf.reduce_sum(tf.reshape(predicted_w, shape), axis=-2)
    denominator = ground + prediction
    if jaccard:
        denominator = 2.0 * (denominator - intersection)
    score = (2.0 * intersection + smooth_nr) / (denominator + smooth_dr)
    return tf.reduce_mean(1.0 - score, axis=-1)  # [B], or a scalar with batch=True
