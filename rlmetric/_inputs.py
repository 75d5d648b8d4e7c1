"""Checks of the trainer's inputs: the model's output, the labels and the data, before training
(the preflight on the first rows) and inside the steps (float32 logits, numeric labels)."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

#: rows the preflight runs the model on
PREFLIGHT_ROWS = 32
#: output activations that make a model return probabilities instead of logits
PROBABILITY_ACTIVATIONS = ("sigmoid", "softmax")


def are_class_ids(values: np.ndarray, num_classes: int) -> bool:
    """Whether every one of ``values`` (any shape) is an integral id in ``[0, num_classes)``:
    a decision of a categorical policy, or of a Bernoulli one with ``num_classes=2``. The one
    eager check of label and action values for the policies, the rewards and ``MetricEnv``."""
    values = np.asarray(values)
    if values.size == 0:
        return True
    integral = np.all(np.mod(values, 1) == 0)
    return bool(integral and values.min() >= 0 and values.max() < num_classes)


def check_output_layer(model: keras.Model) -> None:
    """Refuses, at construction, a model with several outputs or whose output layer returns
    probabilities (sigmoid/softmax) instead of logits. Subclassed models, whose outputs are
    unknown until called, are checked on the first call
    ([`as_float32`][rlmetric._inputs.as_float32])."""
    try:
        outputs = model.outputs
    except (AttributeError, ValueError):
        return
    if outputs is not None and len(outputs) != 1:
        raise ValueError(multiple_outputs_message(len(outputs)))
    activation = output_activation(model)
    if activation in PROBABILITY_ACTIVATIONS:
        raise ValueError(
            f"The model's output layer applies {activation!r}, so it returns probabilities, "
            "but the trainer reads its outputs as logits (a decision is positive at logit > 0, "
            f"which every {activation} output is). Remove the activation from the last layer "
            "(e.g. Dense(1) instead of Dense(1, activation='sigmoid')); apply it yourself "
            "at prediction time if you need probabilities."
        )


def output_activation(model: keras.Model) -> str | None:
    """The name of the activation of the layer producing a single-output model's output (looking
    into nested models), or None when it cannot be told (subclassed or unbuilt models)."""
    try:
        outputs = model.outputs
    except (AttributeError, ValueError):
        return None
    if not outputs or len(outputs) != 1:
        return None
    history = getattr(outputs[0], "_keras_history", None)
    layer = history[0] if history else None
    if isinstance(layer, keras.Model) and layer is not model:
        return output_activation(layer)
    return getattr(getattr(layer, "activation", None), "__name__", None)


def multiple_outputs_message(count: int) -> str:
    return (
        f"The model has {count} outputs; PolicyGradientTrainer needs a model with one output, "
        "the logits of the decisions. Wrap the output you train on in its own keras.Model "
        "(e.g. keras.Model(model.inputs, model.outputs[0]))."
    )


def as_float32(logits: Any) -> tf.Tensor:
    """The logits in float32: the policy's log-probabilities, sampling and rewards run in float32
    whatever the model's compute dtype (mixed_float16, mixed_bfloat16), as Keras computes losses."""
    if isinstance(logits, list | tuple | dict):
        raise ValueError(multiple_outputs_message(len(logits)))
    logits = tf.convert_to_tensor(logits)
    return logits if logits.dtype == tf.float32 else tf.cast(logits, tf.float32)


def as_numeric_labels(y: Any, arg: str) -> tf.Tensor:
    """``y`` as a tensor, refused with ``TypeError`` unless it holds numbers or booleans."""
    y = tf.convert_to_tensor(y)
    if not (y.dtype.is_integer or y.dtype.is_floating or y.dtype.is_bool):
        raise TypeError(
            f"{arg} must hold numeric labels (0/1 decisions or class ids); received a tensor of "
            f"dtype {y.dtype.name}. Map string labels to ids first (e.g. with "
            "sklearn.preprocessing.LabelEncoder or keras.layers.StringLookup)."
        )
    return y


def refuse_unbatched(x_rows: Any, model: keras.Model) -> None:
    """Refuses the first element of a dataset that holds one example, not a batch, for a model
    whose (single) input is known: a dataset without ``.batch(...)``."""
    try:
        input_shape = model.input_shape
    except (AttributeError, ValueError):
        return
    if not isinstance(input_shape, tuple) or not all(
        d is None or isinstance(d, int) for d in input_shape
    ):
        return
    shape = tf.TensorShape(getattr(x_rows, "shape", None))
    if shape.rank is not None and shape.rank == len(input_shape) - 1:
        raise ValueError(
            f"The dataset yields single examples (x of shape {tuple(shape)}), but the model "
            f"takes batches of shape {input_shape}: batch it first, e.g. dataset.batch(64)."
        )


def reject_sample_weight(sample_weight: Any) -> None:
    if sample_weight is not None:
        raise ValueError(
            "PolicyGradientTrainer does not support sample weights: a batch metric such as F1 "
            "has no per-example weights."
        )


def first_rows(x: Any, y: Any) -> tuple[Any, Any, Any] | None:
    """The first rows of ``(x, y)`` (arrays, tensors or a ``tf.data.Dataset`` of ``(x, y)``),
    and all of ``y`` when it is an in-memory array; ``None`` for other inputs (generators,
    ``PyDataset``), which are checked at the first step instead."""
    if isinstance(x, tf.data.Dataset):
        for element in x.take(1):
            if isinstance(element, tuple | list) and len(element) >= 2:
                return element[0], element[1], None
            return element, None, None
        raise ValueError("The dataset passed as x is empty.")
    leaves = tf.nest.flatten(x)
    if not leaves or not all(isinstance(a, np.ndarray | tf.Tensor) for a in leaves):
        return None
    x_rows = tf.nest.map_structure(lambda a: a[:PREFLIGHT_ROWS], x)
    if y is None:
        return x_rows, None, None
    if not isinstance(y, np.ndarray | tf.Tensor):
        y = np.asarray(y)
    return x_rows, y[:PREFLIGHT_ROWS], y


def per_example_loss(loss: Any) -> tuple[Any, Any]:
    """``StepNetworkTrainer``'s ``loss`` (as given, for the config) and its per-example
    function ``(y_true, y_pred) -> [N, ...]`` (``None``: cross-entropy of logits)."""
    if loss is None:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if isinstance(loss, keras.losses.Loss):
        return loss, loss.call  # unreduced: one value per example (and trailing position)
    if isinstance(loss, str):
        try:
            function = keras.losses.get(loss)
        except ValueError as error:
            raise ValueError(f"Unknown loss={loss!r}: {error}") from None
        return loss, function
    if callable(loss):
        return loss, loss
    raise TypeError(
        f"loss must be a keras.losses.Loss, a Keras loss name or a callable "
        f"loss(y_true, y_pred) -> [N]; received {type(loss).__name__}."
    )
