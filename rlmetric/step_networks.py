"""Networks of step units: train Keras models whose hidden units are hard steps.

A :class:`~rlmetric.layers.StochasticStep` unit passes no gradient back: its output is a level
of a staircase (``H(x)`` by default). :class:`StepNetworkTrainer` treats every such unit as a
decision drawn from its level distribution during training and credits the layers below it with
a policy gradient, while the layers above the last step units train by ordinary backprop of the
loss. At inference the units are the hard staircase: the deployed network is deterministic.

The objective is either the per-example ``loss`` of the output (the layers above score the
decisions: a differentiable top) or a batch ``reward`` of the output layer's levels (a network
of decisions only). The estimators of ``grad E[objective]`` for the parameters below each step
layer, all unbiased:

* ``"reinforce"``: the score function with a per-example leave-one-out baseline over ``K``
  forward passes (Williams 1992; Kool et al. 2019). One forward pass per sample.
* ``"disarm"``: antithetic pairs ``(u, 1 - u)`` of binary units; for each step layer the layers
  above are re-run on the antithetic decisions with the same noise (Dong et al. 2020).
  ``K / 2`` pairs, ``1 + layers`` forward passes per pair of the layers above each step layer.
* ``"local_expectation"``: every unit's level is enumerated with the others held fixed and the
  layers above re-run on each variant in one batched pass (Titsias & Lazaro-Gredilla 2015):
  exact in each unit, ``units x (levels - 1)`` passes of the layers above per sample — offered
  for small layers (see ``benchmarks/step_cost.py`` for its cost per width).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from rlmetric import baselines as baselines_lib
from rlmetric import rewards as rewards_lib
from rlmetric._guard import (
    NonFiniteError,
    NonFiniteGuard,
    add_guard_state,
    apply_if_healthy,
    raise_if_invalid_test_labels,
    raise_if_nonfinite,
)
from rlmetric._sampling import stateless_uniform
from rlmetric._saving import AtomicSaving
from rlmetric.estimator_base import EstimatorOutput
from rlmetric.layers import StochasticStep, levels_from_logits

__all__ = [
    "StepNetworkTrainer",
    "ESTIMATORS",
    "chain_segments",
    "disarm_logit_gradient",
    "local_expectation_loss",
    "score_function_loss",
    "NonFiniteError",
]

ESTIMATORS = ("reinforce", "disarm", "local_expectation")


# --- the pure pieces -----------------------------------------------------------------------------


def score_function_loss(
    log_probs: tf.Tensor, advantages: tf.Tensor, per_example: bool = True
) -> tf.Tensor:
    r"""The REINFORCE surrogate to minimise for the credit ``advantages`` of each decision set.

    .. math:: -\frac{1}{K} \sum_k \frac{1}{B} \sum_b \mathrm{sg}(A_{kb}) \log p_{kb}

    (without the ``1/B`` for a batch reward, whose every example's decisions share the credit).

    Args:
        log_probs: ``[K, B]`` log-probability of every decision of sample ``k`` of example ``b``
            (summed over the units of all step layers).
        advantages: ``[K, B]`` (per-example objective) or ``[K, 1]`` (a batch reward).
        per_example: whether the objective is the mean over examples of a per-example value.

    Examples:
        >>> import tensorflow as tf
        >>> from rlmetric.step_networks import score_function_loss
        >>> float(score_function_loss(tf.constant([[-1.0, -2.0]]), tf.constant([[1.0, 0.5]])))
        1.0
    """
    credit = tf.stop_gradient(tf.cast(advantages, log_probs.dtype)) * log_probs
    total = tf.reduce_sum(credit, axis=1)
    if per_example:
        total /= tf.cast(tf.shape(log_probs)[1], log_probs.dtype)
    return -tf.reduce_mean(total)


def disarm_logit_gradient(
    rewards: tf.Tensor,
    antithetic_rewards: tf.Tensor,
    levels: tf.Tensor,
    antithetic_levels: tf.Tensor,
    logits: tf.Tensor,
) -> tf.Tensor:
    r"""DisARM's estimate of ``d E[f] / d logit`` for binary units (Dong, Mnih & Tucker 2020):

    .. math:: g_i = \tfrac12 \big(f(b) - f(\tilde b)\big)\,(-1)^{\tilde b_i}\,
        \mathbb 1[b_i \ne \tilde b_i]\,\sigma(|\alpha_i|)

    for the antithetic pair ``b = 1[u < sigma(alpha)]``, ``b~ = 1[1 - u < sigma(alpha)]`` (the
    formula is the same with the two swapped).

    Args:
        rewards: ``[P, B]`` (or ``[P, 1]`` for a batch reward) the objective to maximise for
            the first decision set of each pair.
        antithetic_rewards: the same for the antithetic set.
        levels: ``[P, B, U]`` 0/1 decisions of the first set.
        antithetic_levels: ``[P, B, U]`` 0/1 decisions of the antithetic set.
        logits: ``[P, B, U]`` the units' logits ``alpha`` (only their magnitude is read).

    Returns:
        ``[P, B, U]`` the gradient estimate per unit (not stopped: a constant of the inputs).

    Examples:
        >>> import tensorflow as tf
        >>> from rlmetric.step_networks import disarm_logit_gradient
        >>> # f(1) = 1, f(0) = 0 at alpha = 0: the exact gradient is sigmoid'(0) = 0.25
        >>> g = disarm_logit_gradient(tf.constant([[1.0]]), tf.constant([[0.0]]),
        ...     tf.constant([[[1]]]), tf.constant([[[0]]]), tf.constant([[[0.0]]]))
        >>> float(g[0, 0, 0])
        0.25
    """
    dtype = logits.dtype
    differ = tf.cast(tf.not_equal(levels, antithetic_levels), dtype)
    sign = 1.0 - 2.0 * tf.cast(antithetic_levels, dtype)  # (-1)^{b~}
    half_difference = 0.5 * tf.cast(rewards - antithetic_rewards, dtype)[..., None]
    return half_difference * sign * differ * tf.sigmoid(tf.abs(logits))


def local_expectation_loss(
    level_probabilities: tf.Tensor, variant_losses: tf.Tensor, per_example: bool = True
) -> tf.Tensor:
    r"""The local-expectation surrogate (Titsias & Lazaro-Gredilla 2015) to minimise:

    .. math:: \frac{1}{K B} \sum_{k, b} \sum_i \sum_v p_v(x_{kbi})\,
        \mathrm{sg}\big(L(h_{kb} \text{ with } h_i = v)\big)

    whose gradient is, for every unit, the exact gradient of the expected loss over that unit's
    level with the other units' decisions held at the sample.

    Args:
        level_probabilities: ``[K, B, U, V]`` the probability of each level of each unit.
        variant_losses: ``[K, B, U, V]`` the loss with unit ``i`` set to level ``v`` and every
            other decision as sampled.
        per_example: divide by ``B`` (a per-example loss averaged over the batch).

    Examples:
        >>> import tensorflow as tf
        >>> from rlmetric.step_networks import local_expectation_loss
        >>> p, losses = tf.constant([[[[0.25, 0.75]]]]), tf.constant([[[[2.0, 1.0]]]])
        >>> float(local_expectation_loss(p, losses))  # .25 * 2 + .75 * 1
        1.25
    """
    expected = tf.reduce_sum(
        level_probabilities * tf.stop_gradient(tf.cast(variant_losses, level_probabilities.dtype)),
        axis=[2, 3],
    )  # [K, B]
    total = tf.reduce_sum(expected, axis=1)
    if per_example:
        total /= tf.cast(tf.shape(expected)[1], expected.dtype)
    return tf.reduce_mean(total)


# --- the model as a chain of segments ------------------------------------------------------------


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
    """Splits ``model`` at its :class:`~rlmetric.layers.StochasticStep` layers.

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
    ``[N, ...units, V]``."""

    logits: tf.Tensor
    uniforms: tf.Tensor
    levels: tf.Tensor


def _tile_rows(x: tf.Tensor, copies: int) -> tf.Tensor:
    """``[N, ...]`` -> ``[copies * N, ...]``, copy-major (row ``c * N + n`` is row ``n``)."""
    x = tf.convert_to_tensor(x)
    return tf.tile(x, tf.concat([[copies], tf.ones([tf.rank(x) - 1], tf.int32)], axis=0))


def _resolve_loss(loss: Any) -> tuple[Any, Callable]:
    """The loss (as given, for the config) and its per-example function."""
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


# --- the trainer ---------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="rlmetric")
class StepNetworkTrainer(AtomicSaving, keras.Model):
    r"""Trains a Keras model containing :class:`~rlmetric.layers.StochasticStep` layers.

    The model must be a chain (a ``keras.Sequential``, or a functional model without branches):
    deterministic layers, a step layer, deterministic layers, ... Each training step runs the
    layers below the first step layer once, tiles their output ``K`` times, runs the rest of the
    chain with every step unit's level drawn from its distribution, and minimises

    * the mean per-example ``loss`` of the output by backprop for the layers above the last step
      layer, plus the estimator's surrogate for the layers below each step layer (credit from
      the output, through every layer above); or
    * ``-reward`` of the output layer's levels (``reward=``; the model must end with a step
      layer) by the estimator alone.

    ``evaluate`` and ``predict`` run the hard network (every step unit at its staircase).

    Args:
        model: the chain (it stays a plain Keras model: ``model.save`` works).
        loss: per-example loss of the output: a ``keras.losses.Loss`` (its unreduced values are
            used), a Keras loss name or ``loss(y_true, y_pred) -> [N]``. Default: sparse
            categorical cross-entropy of logits.
        reward: instead of ``loss``, a batch reward ``reward(y_true, levels [K, B, ...]) -> [K]``
            of the last step layer's level indices: an :mod:`rlmetric.rewards` object or alias
            (``"accuracy"``) or a TensorFlow callable.
        estimator: ``"reinforce"`` (default), ``"disarm"`` (binary units) or
            ``"local_expectation"`` (with ``loss``; cost grows with the layer's width).
        num_samples: ``K`` forward passes per step (``K / 2`` antithetic pairs for DisARM).
        seed: seed of the draws (``None``: a random one).

    Examples:
        A network with one hidden layer of 16 hard units on a XOR-like problem:

        >>> import keras, numpy as np
        >>> from rlmetric.layers import StochasticStep, levels_from_logits
        >>> from rlmetric.step_networks import StepNetworkTrainer
        >>> keras.utils.set_random_seed(0)
        >>> x = np.random.default_rng(0).normal(size=(512, 2)).astype("float32")
        >>> y = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).astype("int32")
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(16), StochasticStep(),
        ...                           keras.layers.Dense(2)])
        >>> trainer = StepNetworkTrainer(model, estimator="local_expectation", seed=0)
        >>> trainer.compile(keras.optimizers.Adam(0.05), metrics=["accuracy"])
        >>> _ = trainer.fit(x, y, batch_size=64, epochs=15, verbose=0)
        >>> trainer.evaluate(x, y, verbose=0, return_dict=True)["accuracy"] > 0.9  # hard units
        True
    """

    def __init__(
        self,
        model: keras.Model,
        loss: Any = None,
        reward: Any = None,
        estimator: str = "reinforce",
        num_samples: int = 8,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(model, keras.Model):
            raise TypeError(f"model must be a keras.Model; received {type(model).__name__}.")
        self.model = model
        self._segments = chain_segments(model)
        if estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {ESTIMATORS}; received {estimator!r}.")
        self.estimator = estimator
        if isinstance(num_samples, bool) or not isinstance(num_samples, int | np.integer):
            raise TypeError(f"num_samples must be an int; received {num_samples!r}.")
        self.num_samples = int(num_samples)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"seed must be an int or None; received {seed!r}.")
        self.seed = seed
        if reward is not None and loss is not None:
            raise ValueError("Pass loss= or reward=, not both: they are the two objectives.")
        self.reward = None if reward is None else rewards_lib.get(reward)
        self._loss_config, self._per_example_loss = (
            (None, None) if reward is not None else (_resolve_loss(loss))
        )
        self._check_estimator()
        self._seed_base = int(seed) if seed is not None else random.randint(1, 10**9)
        add_guard_state(self)
        self._loss_tracker = keras.metrics.Mean(name="loss")
        self._reward_tracker = keras.metrics.Mean(name="reward")
        self._gradient_function = None
        if model.built:
            self.built = True

    def _check_estimator(self) -> None:
        steps = [s.step for s in self._segments if s.step is not None]
        minimum = 2 if self.estimator != "local_expectation" else 1
        if self.num_samples < minimum or (self.estimator == "disarm" and self.num_samples % 2):
            need = "an even number >= 2" if self.estimator == "disarm" else f">= {minimum}"
            raise ValueError(
                f"num_samples must be {need} for estimator={self.estimator!r} (leave-one-out "
                f"needs 2 samples, DisARM pairs them); received num_samples={self.num_samples}."
            )
        if self.estimator == "disarm":
            multi = [s.name for s in steps if s.num_levels != 2]
            if multi:
                raise ValueError(
                    f"estimator='disarm' is for binary units (one threshold); the step layer(s) "
                    f"{multi} have more levels. Use 'reinforce' or 'local_expectation'."
                )
        if self.reward is not None:
            if self.estimator == "local_expectation":
                raise ValueError(
                    "estimator='local_expectation' needs a per-example loss (loss=...): with a "
                    "batch reward every unit of every example would re-score the whole batch."
                )
            if self._segments[-1].layers:
                names = [layer.name for layer in self._segments[-1].layers]
                raise ValueError(
                    f"With reward=..., the model must end with a StochasticStep layer (its "
                    f"levels are the decisions scored); model {self.model.name!r} ends with "
                    f"{names}, which would get no gradient. Use loss=... for a differentiable top."
                )

    # -- Keras wiring ---------------------------------------------------------------------------
    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        tracked = [self._loss_tracker if self.reward is None else self._reward_tracker]
        compiled = getattr(self, "_compile_metrics", None)
        return tracked + ([compiled] if compiled is not None else [])

    def compile(self, optimizer: Any = "adam", loss: Any = None, **kwargs: Any) -> None:
        """``keras.Model.compile`` without ``loss`` (the trainer's ``loss=`` is the objective);
        ``metrics`` are scored on the output of the hard network (and on the first sample set
        during training)."""
        if loss is not None:
            raise ValueError(
                "StepNetworkTrainer.compile does not take a loss: pass it to the trainer "
                f"(StepNetworkTrainer(model, loss=...)). Received loss={loss!r}."
            )
        replicas = self.distribute_strategy.num_replicas_in_sync
        if replicas > 1:
            # the per-example baselines and the re-runs are replica-local; the global-batch
            # arithmetic of PolicyGradientTrainer is not written for them yet
            raise ValueError(
                f"StepNetworkTrainer does not support tf.distribute with several replicas yet "
                f"(this strategy has {replicas}); train it on one device."
            )
        super().compile(optimizer=optimizer, **kwargs)

    def compile_from_config(self, config: dict) -> None:
        config = keras.saving.deserialize_keras_object(dict(config))
        config.pop("loss", None)  # (always None: the objective is the trainer's)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def build(self, input_shape: Any) -> None:
        if not self.model.built:
            self.model.build(input_shape)
        self.built = True

    def call(self, inputs: Any, training: bool | None = None) -> tf.Tensor:
        return self.model(inputs, training=training)

    # -- sampling through the chain ---------------------------------------------------------------
    def _uniforms(self, shape: Any, layer_index: int, seed: tf.Tensor) -> tf.Tensor:
        offset = tf.constant(1_000_003 * (layer_index + 1) % (2**31 - 1), tf.int32)
        return stateless_uniform(shape, tf.stack([seed[0] + offset, seed[1]]))

    @property
    def _step_positions(self) -> list[int]:
        return [i for i, segment in enumerate(self._segments) if segment.step is not None]

    def _run(
        self,
        h: tf.Tensor,
        start: int,
        seed: tf.Tensor | None = None,
        noise: list[tf.Tensor] | None = None,
        applied: bool = False,
    ) -> tuple[tf.Tensor, list[_Draw]]:
        """Runs segments ``start, start + 1, ...`` from ``h`` (the input of segment ``start``,
        or with ``applied`` the output of its layers), drawing each step layer's levels with
        fresh noise from ``seed``, or with ``noise`` (one ``[N, ...units]`` tensor per step
        layer from ``start`` on)."""
        draws = []
        for index, segment in enumerate(self._segments[start:]):
            if not (applied and index == 0):
                h = segment.apply(h, training=True)
            if segment.step is None:
                return h, draws
            logits = segment.step.level_logits(tf.cast(h, tf.float32))  # [N, ...units, V]
            if noise is None:
                uniforms = self._uniforms(tf.shape(h), start + index, seed)
            else:
                uniforms = noise[len(draws)]
            levels = levels_from_logits(logits, uniforms)
            draws.append(_Draw(logits, uniforms, levels))
            h = segment.step.level_values(levels, self.compute_dtype)
        raise AssertionError("the last segment has no step layer")  # (chain_segments' promise)

    def _objective(self, y: tf.Tensor, outputs: tf.Tensor, levels: tf.Tensor, copies: Any):
        """What is minimised, per sample: the loss ``[copies, B]`` of ``copies`` stacked passes
        of the batch (``outputs`` ``[copies * B, ...]``), or ``[copies, 1]`` minus the batch
        reward of the last step layer's ``levels``."""
        if self.reward is None:
            values = tf.cast(self._per_example_loss(_tile_rows(y, copies), outputs), tf.float32)
            values = tf.reshape(values, [copies, tf.shape(y)[0], -1])
            return tf.reduce_mean(values, axis=-1)
        levels = tf.reshape(levels, tf.concat([[copies], tf.shape(y)[:1], [-1]], axis=0))
        labels = tf.reshape(y, tf.shape(levels)[1:])
        return -tf.cast(self.reward(labels, levels), tf.float32)[:, None]

    def _rerun(
        self, y: tf.Tensor, layer: int, levels: tf.Tensor, draws: list[_Draw], factor: int
    ) -> tf.Tensor:
        """The objective ``[factor * K', B or 1]`` with step layer ``layer`` (an index into
        ``draws``) at ``levels`` (``factor`` stacked copies of its ``K' * B`` rows) and the step
        layers above re-drawn with the same noise as in ``draws`` (common random numbers)."""
        segment = self._segments[self._step_positions[layer]]
        h = segment.step.level_values(levels, self.compute_dtype)
        noise = [_tile_rows(draw.uniforms, factor) for draw in draws[layer + 1 :]]
        outputs, upper = self._run(h, self._step_positions[layer] + 1, noise=noise)
        last = upper[-1].levels if upper else levels
        copies = factor * (tf.shape(draws[0].levels)[0] // tf.shape(y)[0])
        return self._objective(y, outputs, last, copies)

    # -- the estimators ---------------------------------------------------------------------------
    def _surrogate(self, x: Any, y: Any, seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """(the loss to minimise, the objective per sample ``[K', B or 1]``, the first sample
        set's outputs ``[B, ...]``); runs inside the gradient tape."""
        copies = self.num_samples // 2 if self.estimator == "disarm" else self.num_samples
        # The layers below the first step layer see the same inputs in every sample: they run
        # once, and their output is tiled (their gradient sums over the samples through it).
        below = self._segments[0].apply(x, training=True)
        outputs, draws = self._run(_tile_rows(below, copies), 0, seed=seed, applied=True)
        objective = self._objective(y, outputs, draws[-1].levels, copies)
        per_example = self.reward is None
        # the layers above the last step layer: backprop of the objective itself
        loss = tf.reduce_mean(objective) if per_example else tf.constant(0.0)
        if self.estimator == "reinforce":
            log_probs = tf.add_n([_log_prob(draw, copies) for draw in draws])  # [K, B]
            advantages, _ = baselines_lib.LeaveOneOut().advantages(-objective, None)
            return (
                loss + score_function_loss(log_probs, advantages, per_example),
                objective,
                outputs,
            )
        for layer in range(len(draws)):
            if self.estimator == "disarm":
                loss += self._disarm_loss(y, layer, draws, objective, copies, per_example)
            else:
                loss += self._local_expectation_loss(y, layer, draws, objective, copies)
        return loss, objective, outputs

    def _disarm_loss(self, y, layer, draws, objective, copies, per_example) -> tf.Tensor:
        draw = draws[layer]
        antithetic = levels_from_logits(draw.logits, 1.0 - draw.uniforms)
        antithetic_objective = tf.stop_gradient(self._rerun(y, layer, antithetic, draws, 1))
        alpha = _units(draw.logits[..., 1] - draw.logits[..., 0], copies)  # [P, B, U]
        gradient = disarm_logit_gradient(
            -objective,
            -antithetic_objective,
            _units(draw.levels, copies),
            _units(antithetic, copies),
            alpha,
        )
        ascent = tf.reduce_sum(tf.stop_gradient(gradient) * alpha, axis=[1, 2])  # [P]
        if per_example:
            ascent /= tf.cast(tf.shape(alpha)[1], ascent.dtype)
        return -tf.reduce_mean(ascent)

    def _local_expectation_loss(self, y, layer, draws, objective, copies) -> tf.Tensor:
        draw = draws[layer]
        num_levels = self._segments[self._step_positions[layer]].step.num_levels
        units = int(np.prod(draw.levels.shape[1:]))  # static: the layer's width
        flat = tf.reshape(draw.levels, [-1, units])  # [N, U]
        # variant (o, i): unit i moved o levels up (cyclically), every other decision kept
        offsets = tf.range(1, num_levels)[:, None, None, None]
        moved = (flat[None, None] + offsets) % num_levels  # [V - 1, 1, N, U]
        one_unit = tf.eye(units, dtype=tf.bool)[None, :, None, :]  # [1, U, 1, U]
        variants = tf.where(one_unit, moved, flat[None, None])  # [V - 1, U, N, U]
        unit_shape = tf.shape(draw.levels)[1:]
        variants = tf.reshape(variants, tf.concat([[-1], unit_shape], axis=0))
        factor = (num_levels - 1) * units
        moved_objective = tf.stop_gradient(self._rerun(y, layer, variants, draws, factor))
        moved_objective = tf.reshape(moved_objective, [num_levels - 1, units, copies, -1])
        moved_objective = tf.transpose(moved_objective, [2, 3, 1, 0])  # [K, B, U, V - 1]
        kept = tf.broadcast_to(objective[:, :, None, None], tf.shape(moved_objective[..., :1]))
        variant_losses = tf.concat([kept, moved_objective], axis=-1)  # offsets 0 .. V - 1
        probabilities = tf.reshape(
            tf.nn.softmax(draw.logits, axis=-1), [copies, -1, units, num_levels]
        )
        sampled = tf.reshape(flat, [copies, -1, units, 1])
        shifted = (sampled + tf.range(num_levels)) % num_levels  # level of each offset
        probabilities = tf.gather(probabilities, shifted, batch_dims=3)
        return local_expectation_loss(probabilities, variant_losses)

    # -- Keras steps ------------------------------------------------------------------------------
    def _step_seed(self) -> tf.Tensor:
        step = tf.cast(self.optimizer.iterations, tf.int32)
        return tf.stack([tf.constant(self._seed_base, tf.int32), step])

    def _inputs(self, data: Any) -> tuple[tf.Tensor, tf.Tensor]:
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if sample_weight is not None:
            raise ValueError("StepNetworkTrainer does not support sample_weight.")
        if y is None:
            raise ValueError("StepNetworkTrainer needs labels: call fit(x, y) or give (x, y).")
        return tf.convert_to_tensor(x), tf.convert_to_tensor(y)

    def train_step(self, data: Any) -> dict[str, tf.Tensor]:
        x, y = self._inputs(data)
        with tf.GradientTape() as tape:
            loss, objective, outputs = self._surrogate(x, y, self._step_seed())
            for extra in self.losses:  # regularisers of the model's layers
                loss += tf.cast(extra, tf.float32)
            scaled_loss = self.optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled_loss, self.trainable_variables)
        health = EstimatorOutput(loss, -objective, -objective, tf.zeros([0]), objective)
        apply_if_healthy(self, health, loss, gradients, tf.constant(True))
        return self._update_metrics(y, outputs[: tf.shape(x)[0]], objective)

    def _update_metrics(self, y, outputs, objective) -> dict[str, tf.Tensor]:
        if self.reward is None:
            self._loss_tracker.update_state(tf.reduce_mean(objective))
        else:
            self._reward_tracker.update_state(-tf.reduce_mean(objective))
        compiled = getattr(self, "_compile_metrics", None)
        if compiled is not None:
            compiled.update_state(y, outputs)
        return {name: value for name, value in self.get_metrics_result().items()}

    def test_step(self, data: Any) -> dict[str, tf.Tensor]:
        x, y = self._inputs(data)
        h = x
        for segment in self._segments:  # the hard network
            h = segment.apply(h, training=False)
            if segment.step is None:
                break
            levels = segment.step.mode_levels(tf.cast(h, tf.float32))
            h = segment.step.level_values(levels, self.compute_dtype)
        objective = self._objective(y, h, levels, 1)
        return self._update_metrics(y, h, objective)

    def _update_baseline_state(self, state: tf.Tensor) -> None:
        """(The guard's hook: the per-example leave-one-out baseline keeps no state.)"""

    def _raise_if_nonfinite(self, batch: int | None = None, epoch: int | None = None) -> None:
        raise_if_nonfinite(self, batch, epoch)

    def _raise_if_invalid_test_labels(self, batch: int) -> None:
        raise_if_invalid_test_labels(self, batch)

    def fit(self, *args: Any, callbacks: list | None = None, **kwargs: Any) -> Any:
        """``keras.Model.fit``; stops with :class:`NonFiniteError` after a step whose loss or
        gradients were not finite (that step does not update the weights)."""
        return super().fit(*args, callbacks=[*(callbacks or []), NonFiniteGuard()], **kwargs)

    def estimate_gradient(self, x: Any, y: Any, seed: Any = (0, 0)) -> list[np.ndarray]:
        """One draw of the estimate of the gradient of what ``fit`` minimises (``E[loss]``, or
        ``-E[reward]``) on the batch ``(x, y)``, aligned with ``model.trainable_variables``;
        ``seed`` is a pair of ints. For tests and estimator studies: nothing is updated."""
        if self._gradient_function is None:
            self._gradient_function = tf.function(self._gradient, reduce_retracing=True)
        gradients = self._gradient_function(
            tf.convert_to_tensor(x), tf.convert_to_tensor(y), tf.constant(seed, tf.int32)
        )
        return [keras.ops.convert_to_numpy(g) for g in gradients]

    def _gradient(self, x: tf.Tensor, y: tf.Tensor, seed: tf.Tensor) -> list[tf.Tensor]:
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            loss, _, _ = self._surrogate(x, y, seed)
        gradients = tape.gradient(loss, variables)
        return [
            tf.zeros_like(v) if g is None else g for g, v in zip(gradients, variables, strict=True)
        ]

    # -- serialization ----------------------------------------------------------------------------
    def get_config(self) -> dict:
        serialize = keras.saving.serialize_keras_object
        return {
            "name": self.name,
            "trainable": self.trainable,
            "model": serialize(self.model),
            "loss": serialize(self._loss_config),
            "reward": serialize(self.reward),
            "estimator": self.estimator,
            "num_samples": self.num_samples,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None) -> StepNetworkTrainer:
        config = dict(config)
        for key in ("model", "loss", "reward"):
            if isinstance(config.get(key), dict):
                config[key] = keras.saving.deserialize_keras_object(
                    config[key], custom_objects=custom_objects
                )
        return cls(**config)


def _units(values: tf.Tensor, copies: int) -> tf.Tensor:
    """``[copies * B, ...units]`` -> ``[copies, B, U]``."""
    units = int(np.prod(values.shape[1:]))
    return tf.reshape(values, [copies, -1, units])


def _log_prob(draw: _Draw, copies: int) -> tf.Tensor:
    """``[copies, B]`` log-probability of the drawn levels, summed over the layer's units."""
    log_p = tf.nn.log_softmax(draw.logits, axis=-1)
    chosen = tf.gather(log_p, draw.levels, batch_dims=draw.levels.shape.rank)
    return tf.reduce_sum(_units(chosen, copies), axis=-1)
