"""The Lovasz losses: convex surrogates of the Jaccard loss built from the gradient of its Lovasz
extension (Berman, Rannen Triki & Blaschko, 2018). Re-exported by
[`rlmetric.surrogates`][rlmetric.surrogates]."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from rlmetric._surrogate_base import (
    _check_choice,
    _class_targets,
    _SurrogateLoss,
)

__all__ = [
    "LovaszHinge",
    "LovaszSoftmax",
    "lovasz_jaccard_gradient",
    "lovasz_hinge",
    "lovasz_softmax",
]


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

    Examples:
        >>> import tensorflow as tf
        >>> from rlmetric.surrogates import lovasz_jaccard_gradient
        >>> targets = tf.constant([[1.0, 0.0, 1.0]])  # one set, sorted by decreasing error
        >>> lovasz_jaccard_gradient(targets).numpy().round(4)  # the Jaccard loss: 1/2, 2/3, 1
        array([[0.5   , 0.1667, 0.3333]], dtype=float32)
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
    [`lovasz_jaccard_gradient`][rlmetric.lovasz.lovasz_jaccard_gradient]. All images are sorted at
    once (``tf.argsort`` along the
    pixel axis, cumulative sums): no loop over images.

    Args:
        per_image: one loss per example (mean over the batch) if true; else one Jaccard over
            all outputs of the batch (the right choice for one output per example).
        ignore_index: a target value whose outputs count nowhere (e.g. 255 for unlabeled
            pixels); ``None`` for none.

    ``y_pred`` must be logits (the hinge is on the margin).

    Examples:
        >>> import numpy as np
        >>> from rlmetric.surrogates import LovaszHinge
        >>> y = np.array([[1.0], [0.0], [1.0], [0.0]])
        >>> loss = LovaszHinge(per_image=False)
        >>> float(loss(y, np.array([[3.0], [-3.0], [3.0], [-3.0]])))  # margins >= 1: no loss
        0.0
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
        return lovasz_hinge(y_true, y_pred, weights=weights, **self._options)


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

    Examples:
        >>> import numpy as np
        >>> from rlmetric.surrogates import LovaszSoftmax
        >>> labels = np.array([[0, 1, 2, 1]])  # class ids of 4 pixels
        >>> loss = LovaszSoftmax()
        >>> right = 10.0 * np.eye(3)[labels]  # confident and right
        >>> float(loss(labels, right)) < float(loss(labels, np.zeros([1, 4, 3])))
        True
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
        return lovasz_softmax(y_true, y_pred, weights=weights, **self._options)


def lovasz_hinge(
    y_true: tf.Tensor,
    y_pred: tf.Tensor,
    *,
    per_image: bool = True,
    ignore_index: int | None = None,
    weights: tf.Tensor | None = None,
) -> tf.Tensor:
    """The loss of [`LovaszHinge`][rlmetric.lovasz.LovaszHinge] as a function; the class calls it
    with its options.

    Returns ``[B]`` per image, or a scalar with ``per_image=False``. ``weights`` ``[B]`` weight
    each example's share of the batch-level sums (``None``: equally).

    Examples:
        >>> import tensorflow as tf
        >>> from rlmetric.lovasz import lovasz_hinge
        >>> y, logits = tf.constant([[1.0, 0.0, 1.0]]), tf.constant([[2.0, -1.0, -0.5]])
        >>> lovasz_hinge(y, logits).numpy().round(4)  # one image: its third pixel is wrong
        array([0.75], dtype=float32)
    """
    y_true, y_pred = tf.convert_to_tensor(y_true), tf.convert_to_tensor(y_pred)
    labels = tf.reshape(tf.convert_to_tensor(y_true), tf.shape(y_pred))
    rows = tf.shape(y_pred)[0] if per_image else 1
    valid = _valid_mask(labels, ignore_index, y_pred.dtype)
    targets = tf.cast(tf.equal(labels, tf.cast(1, labels.dtype)), y_pred.dtype)
    errors = tf.nn.relu(1.0 - y_pred * (2.0 * targets - 1.0))
    if valid is not None:
        errors *= valid
        valid = tf.reshape(valid, [rows, -1])
    losses = _lovasz(tf.reshape(errors, [rows, -1]), tf.reshape(targets, [rows, -1]), valid)
    return losses if per_image else losses[0]


def lovasz_softmax(
    y_true: tf.Tensor,
    y_pred: tf.Tensor,
    *,
    per_image: bool = False,
    classes: str = "present",
    ignore_index: int | None = None,
    from_logits: bool = True,
    weights: tf.Tensor | None = None,
) -> tf.Tensor:
    """The loss of [`LovaszSoftmax`][rlmetric.lovasz.LovaszSoftmax] as a function; the class calls
    it with its options.

    Returns ``[B]`` per image, or a scalar with ``per_image=False``. ``weights`` ``[B]`` weight
    each example's share of the batch-level sums (``None``: equally).

    Examples:
        >>> import tensorflow as tf
        >>> from rlmetric.lovasz import lovasz_softmax
        >>> y = tf.constant([[0, 1, 1]])  # one image of 3 pixels, 2 classes
        >>> logits = tf.constant([[[2.0, 0.0], [0.0, 1.0], [1.0, 0.0]]])
        >>> round(float(lovasz_softmax(y, logits)), 4)
        0.475
    """
    y_true, y_pred = tf.convert_to_tensor(y_true), tf.convert_to_tensor(y_pred)
    num_classes = tf.shape(y_pred)[-1]
    labels = _class_targets(y_true, y_pred)
    probability = tf.nn.softmax(y_pred) if from_logits else y_pred
    rows = tf.shape(y_pred)[0] if per_image else 1
    valid = _valid_mask(labels, ignore_index, y_pred.dtype)
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
    if classes == "present":
        present = tf.cast(tf.reduce_sum(to_rows(targets), axis=-1) > 0, y_pred.dtype)
        present = tf.reshape(present, [rows, -1])
        losses = tf.reduce_sum(per_class * present, axis=-1) / tf.maximum(
            tf.reduce_sum(present, axis=-1), 1.0
        )
    else:
        losses = tf.reduce_mean(per_class, axis=-1)
    return losses if per_image else losses[0]
