"""A Keras model as a chain of segments split at its step layers, and the bookkeeping of the
draws through it (used by [`rlmetric.step_networks`][rlmetric.step_networks], which re-exports
[`chain_segments`][rlmetric._step_chain.chain_segments])."""

from __future__ import annotations

from dataclasses import dataclass

import keras
import tensorflow as tf

from rlmetric.layers import StochasticStep

__all__ = ["Segment", "chain_segments"]


@dataclass
class Segment:
    """Deterministic layers followed by a step layer (``None`` for the last segment)."""

    layers: list[keras.layers.Layer]
    step: StochasticStep | None

    def apply(self, h: tf.Tensor, training: bool) -> tf.Tensor:
        for layer in self.layers:
            h = layer(h, training=training)
        return h


def _top_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The layers of ``model`` in order, checked to form a chain (no branch, no merge)."""
    if isinstance(model, keras.Sequential):
        return list(model.layers)
    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError):
        inputs = outputs = None
    if not inputs or len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(
            "StepNetworkTrainer needs a keras.Sequential or a functional model with one input "
            f"and one output whose layers form a chain; received {type(model).__name__} "
            f"{model.name!r}."
        )
    chain, previous = [], inputs[0]
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if len(layer._inbound_nodes) != 1 or layer.input is not previous:
            raise ValueError(
                "StepNetworkTrainer needs a model whose layers form a chain, each taking the "
                f"output of the one before; layer {layer.name!r} of model {model.name!r} "
                "takes other inputs (a branch, a merge or a shared layer). Build the model as "
                "a keras.Sequential of blocks."
            )
        chain.append(layer)
        previous = layer.output
    if previous is not outputs[0]:
        raise ValueError(f"The layers of model {model.name!r} do not end at its output.")
    return chain


def chain_segments(model: keras.Model) -> list[Segment]:
    """Splits ``model`` at its [`StochasticStep`][rlmetric.layers.StochasticStep] layers.

    Returns:
        Segments ``[layers_0, step_1], [layers_1, step_2], ..., [layers_L, None]``: the output
        of ``step_l`` feeds ``layers_l``. Nested models are deterministic blocks and may not hold
        a step layer.

    Raises:
        ValueError: the model is not a chain, holds no step layer, or nests one.

    Examples:
        >>> import keras
        >>> from rlmetric.layers import StochasticStep, levels_from_logits
        >>> from rlmetric.step_networks import chain_segments
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8), StochasticStep(),
        ...                           keras.layers.Dense(3)])
        >>> [(len(s.layers), s.step is not None) for s in chain_segments(model)]
        [(1, True), (1, False)]
    """
    segments, current = [], []
    for layer in _top_layers(model):
        if isinstance(layer, StochasticStep):
            segments.append(Segment(current, layer))
            current = []
            continue
        nested = [
            inner.name
            for inner in layer._flatten_layers(include_self=False)
            if isinstance(inner, StochasticStep)
        ]
        if nested:
            raise ValueError(
                f"Layer {layer.name!r} of model {model.name!r} holds StochasticStep layer(s) "
                f"{nested} inside it; StepNetworkTrainer needs them at the top level of the "
                "model (put the block's layers in the outer keras.Sequential)."
            )
        current.append(layer)
    segments.append(Segment(current, None))
    if len(segments) == 1:
        raise ValueError(
            f"Model {model.name!r} has no StochasticStep layer: there is nothing for "
            "StepNetworkTrainer to sample. Train it with model.fit."
        )
    return segments


@dataclass
class _Draw:
    """One step layer's decisions in a forward pass: ``[N, ...units]`` each, logits
    ``[N, ...units, V]``, or ``[B, ...units, V]`` where the ``N = K * B`` rows are ``K`` copies
    of one input (the first step layer): the copies share them."""

    logits: tf.Tensor
    uniforms: tf.Tensor
    levels: tf.Tensor


def _tile_rows(x: tf.Tensor, copies: int) -> tf.Tensor:
    """``[N, ...]`` -> ``[copies * N, ...]``, copy-major (row ``c * N + n`` is row ``n``)."""
    x = tf.convert_to_tensor(x)
    # a broadcast, not tf.tile: XLA on CPU runs tile several times slower
    copied = tf.broadcast_to(x[None], tf.concat([[copies], tf.shape(x)], axis=0))
    return tf.reshape(copied, tf.concat([[-1], tf.shape(x)[1:]], axis=0))
