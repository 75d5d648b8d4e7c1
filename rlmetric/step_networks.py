"""Networks of step units: train Keras models whose hidden units are hard steps.

A [`StochasticStep`][rlmetric.layers.StochasticStep] unit passes no gradient back: its output is a
level
of a staircase (``H(x)`` by default).
[`StepNetworkTrainer`][rlmetric.step_networks.StepNetworkTrainer] treats every such unit as a
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

import inspect
import random
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from rlmetric import baselines as baselines_lib
from rlmetric import rewards as rewards_lib
from rlmetric._distribute import sum_over_replicas
from rlmetric._guard import (
    NonFiniteError,
    NonFiniteGuard,
    add_guard_state,
    apply_if_healthy,
)
from rlmetric._inputs import as_numeric_labels, first_rows, per_example_loss
from rlmetric._sampling import stateless_uniform
from rlmetric._saving import AtomicSaving, TrainerConfig, refuse_unsavable_checkpoints
from rlmetric._step_chain import _Draw, _tile_rows, chain_segments
from rlmetric.estimator_base import EstimatorOutput
from rlmetric.layers import levels_from_logits
from rlmetric.metrics import set_reward_directions
from rlmetric.step_surrogates import (
    dense_outputs_of_moves,
    disarm_layer_loss,
    disarm_logit_gradient,
    layer_log_prob,
    local_expectation_layer_loss,
    local_expectation_loss,
    plain_dense,
    score_function_loss,
    single_unit_variants,
)

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


# --- the trainer ---------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="rlmetric")
class StepNetworkTrainer(TrainerConfig, AtomicSaving, keras.Model):
    r"""Trains a Keras model containing [`StochasticStep`][rlmetric.layers.StochasticStep] layers.

    The model must be a chain (a ``keras.Sequential``, or a functional model without branches):
    deterministic layers, a step layer, deterministic layers, ... Each training step runs the
    layers below the first step layer once (and the first step layer's level distributions:
    ``K`` sample sets draw from them), runs the rest of the chain on the ``K`` copies with every
    step unit's level drawn from its distribution, and minimises

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
            of the last step layer's level indices: an [`rlmetric.rewards`][rlmetric.rewards] object
            or alias
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
        >>> _ = trainer.fit(x, y, batch_size=64, epochs=20, verbose=0)
        >>> trainer.evaluate(x, y, verbose=0, return_dict=True)["accuracy"] > 0.85  # hard units
        True
    """

    _components = ("model", "loss", "reward")
    _component_attributes = {"loss": "_loss_config"}
    _settings = ("estimator", "num_samples", "seed")

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
        self.reward = None if reward is None else self._reward_of_levels(rewards_lib.get(reward))
        self._loss_config, self._per_example_loss = (
            (None, None) if reward is not None else (per_example_loss(loss))
        )
        self._check_estimator()
        self._seed_base = int(seed) if seed is not None else random.randint(1, 10**9)
        add_guard_state(self)
        self._loss_tracker = keras.metrics.Mean(name="loss")
        self._reward_tracker = keras.metrics.Mean(name="reward")
        self._gradient_function = None
        if model.built:
            self.built = True

    @property
    def _output_levels(self) -> int:
        """The number of levels of the last step layer (whose levels a reward scores)."""
        return self._segments[self._step_positions[-1]].step.num_levels

    def _reward_of_levels(self, reward: Any) -> Any:
        """A count reward reads the last step layer's level indices as class ids: its
        ``num_classes`` is that layer's number of levels (more than 2), filled in or checked."""
        if not isinstance(reward, rewards_lib.CountReward):
            return reward
        levels = self._output_levels
        if reward.num_classes is None and levels > 2:
            return type(reward).from_config({**reward.get_config(), "num_classes": levels})
        if reward.num_classes is not None and reward.num_classes != levels:
            raise ValueError(
                f"reward={reward!r} has num_classes={reward.num_classes}, but the last step "
                f"layer of model {self.model.name!r} has {levels} levels (the classes it "
                f"scores); use num_classes={levels} or leave it None."
            )
        return reward

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

    def compile(
        self, optimizer: Any = "adam", loss: Any = None, jit_compile: Any = "auto", **kwargs: Any
    ) -> None:
        """``keras.Model.compile`` without ``loss`` (the trainer's ``loss=`` is the objective);
        ``metrics`` are scored on the output of the hard network (and on the first sample set
        during training).

        ``jit_compile="auto"`` compiles the step with XLA when every layer is one of Keras' or
        rlmetric's own (not ``Lambda``) and the loss or reward is too; Keras' own ``"auto"``
        never does on a CPU. A step draws K sets of small tensors, which XLA fuses: through
        ``fit`` at 128 hidden units a REINFORCE step costs 1.3x a straight-through step with
        XLA and 2.1x without (benchmarks/RESULTS.md)."""
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
        if jit_compile == "auto" and not kwargs.get("run_eagerly"):
            jit_compile = self._xla_compatible() or "auto"
        super().compile(optimizer=optimizer, jit_compile=jit_compile, **kwargs)

    def _xla_compatible(self) -> bool:
        """Whether the model, loss and reward are built only from Keras' and rlmetric's own
        pieces (which compile with XLA); a custom layer, ``Lambda`` or callable may not."""

        def own(value: Any) -> bool:
            module = type(value).__module__
            return module.startswith(("keras.", "rlmetric.")) and not isinstance(
                value, keras.layers.Lambda
            )

        layers = self.model._flatten_layers(include_self=False)
        objective = self.reward if self.reward is not None else self._loss_config
        objective_ok = isinstance(objective, str) or (
            own(objective) and getattr(objective, "xla_compatible", True)
        )
        return own(self.model) and all(own(layer) for layer in layers) and objective_ok

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
        skip: int = 0,
        copies: int = 1,
    ) -> tuple[tf.Tensor, list[_Draw]]:
        """Runs segments ``start, start + 1, ...`` from ``h`` (the input of segment ``start``,
        or the output of its first ``skip`` layers), drawing each step layer's levels with
        fresh noise from ``seed``, or with ``noise`` (one ``[N, ...units]`` tensor per step
        layer from ``start`` on). The first step layer draws ``copies`` sample sets from ``h``
        (``[B, ...]``): its logits are computed once, for ``B`` rows, and every layer above
        sees ``N = copies * B`` rows."""
        draws = []
        for index, segment in enumerate(self._segments[start:]):
            for layer in segment.layers[skip if index == 0 else 0 :]:
                h = layer(h, training=True)
            if segment.step is None:
                return h, draws
            logits = segment.step.level_logits(tf.cast(h, tf.float32))  # [B or N, ...units, V]
            rows = tf.shape(h)[0]
            shape = tf.concat([[copies * rows], tf.shape(h)[1:]], axis=0)  # [N, ...units]
            if noise is None:
                uniforms = self._uniforms(shape, start + index, seed)
            else:
                uniforms = noise[len(draws)]
            by_copy = tf.reshape(uniforms, tf.concat([[-1], tf.shape(h)], axis=0))
            levels = tf.reshape(levels_from_logits(logits, by_copy), shape)
            draws.append(_Draw(logits, uniforms, levels))
            h = segment.step.level_values(levels, self.compute_dtype)
            copies = 1
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
        return self._rerun_from(y, layer, h, draws, factor, levels)

    def _rerun_from(self, y, layer, h, draws, factor, levels, skip=0) -> tf.Tensor:
        """[`_rerun`][rlmetric.step_networks._rerun] from ``h``, the output of the first ``skip``
        layers above step layer
        ``layer`` (``levels``: its levels, read only where it is the last step layer)."""
        noise = [_tile_rows(draw.uniforms, factor) for draw in draws[layer + 1 :]]
        outputs, upper = self._run(h, self._step_positions[layer] + 1, noise=noise, skip=skip)
        last = upper[-1].levels if upper else levels
        copies = factor * (tf.shape(draws[0].levels)[0] // tf.shape(y)[0])
        return self._objective(y, outputs, last, copies)

    def _rerun_moves(self, y, layer, draws, moved: tf.Tensor) -> tf.Tensor:
        """The objective ``[V - 1, U, K, B]`` of every single-unit move of step layer ``layer``:
        unit ``i`` at ``moved[o, :, i]`` (``moved`` ``[V - 1, N, U]``), the others as drawn.

        When the first layer above is a plain ``Dense``, its outputs for the moves are the drawn
        ones plus one row of the kernel each (``z + (v' - v) W_i``): ``O(U D)`` per row instead
        of a ``U x D`` product per move. Otherwise every move is run through the layers above."""
        step = self._segments[self._step_positions[layer]].step
        drawn = draws[layer].levels
        moves, units = moved.shape[0], moved.shape[-1]
        above = self._segments[self._step_positions[layer] + 1].layers
        dense = above[0] if above and plain_dense(above[0]) and drawn.shape.rank == 2 else None
        if dense is None:
            variants = single_unit_variants(drawn, moved)
            moved_objective = self._rerun(y, layer, variants, draws, moves * units)
        else:
            values = step.level_values(drawn, self.compute_dtype)  # [N, U]
            moved_values = step.level_values(moved, self.compute_dtype)  # [V - 1, N, U]
            outputs = dense_outputs_of_moves(dense, values, moved_values)
            moved_objective = self._rerun_from(
                y, layer, outputs, draws, moves * units, None, skip=1
            )
        return tf.reshape(moved_objective, [moves, units, -1, tf.shape(moved_objective)[-1]])

    # -- the estimators ---------------------------------------------------------------------------
    def _surrogate(self, x: Any, y: Any, seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """(the loss to minimise, the objective per sample ``[K', B or 1]``, the first sample
        set's outputs ``[B, ...]``); runs inside the gradient tape."""
        copies = self.num_samples // 2 if self.estimator == "disarm" else self.num_samples
        # The layers below the first step layer see the same inputs in every sample: they and
        # the first step layer's logits run once, and the K copies broadcast against them.
        below = self._segments[0].apply(x, training=True)
        skip = len(self._segments[0].layers)
        outputs, draws = self._run(below, 0, seed=seed, skip=skip, copies=copies)
        objective = self._objective(y, outputs, draws[-1].levels, copies)
        per_example = self.reward is None
        # the layers above the last step layer: backprop of the objective itself
        loss = tf.reduce_mean(objective) if per_example else tf.constant(0.0)
        if self.estimator == "reinforce":
            log_probs = tf.add_n([layer_log_prob(d.logits, d.levels, copies) for d in draws])
            advantages, _ = baselines_lib.LeaveOneOut().advantages(-objective, None)
            return (
                loss + score_function_loss(log_probs, advantages, per_example),
                objective,
                outputs,
            )
        for layer, draw in enumerate(draws):

            def rerun(levels, factor=1, layer=layer):
                return self._rerun(y, layer, levels, draws, factor)

            if self.estimator == "disarm":
                loss += disarm_layer_loss(
                    draw.logits, draw.uniforms, draw.levels, objective, rerun, copies, per_example
                )
            else:

                def rerun_moves(moved, layer=layer):
                    return self._rerun_moves(y, layer, draws, moved)

                num_levels = self._segments[self._step_positions[layer]].step.num_levels
                loss += local_expectation_layer_loss(
                    draw.logits, draw.levels, objective, rerun_moves, copies, num_levels
                )
        return loss, objective, outputs

    # -- Keras steps ------------------------------------------------------------------------------
    def _step_seed(self) -> tf.Tensor:
        step = tf.cast(self.optimizer.iterations, tf.int32)
        return tf.stack([tf.constant(self._seed_base, tf.int32), step])

    def _inputs(self, data: Any) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if sample_weight is not None:
            raise ValueError("StepNetworkTrainer does not support sample_weight.")
        if y is None:
            raise ValueError("StepNetworkTrainer needs labels: call fit(x, y) or give (x, y).")
        y = tf.convert_to_tensor(y)
        labels_ok = self._labels_valid(y)
        if self._one_hot(y.shape):  # the default cross-entropy takes class ids
            y = tf.argmax(y, axis=-1, output_type=tf.int32)
        return tf.convert_to_tensor(x), y, labels_ok

    def _labels_valid(self, y: tf.Tensor) -> tf.Tensor:
        """Whether a batch's labels ``y`` (any shape) hold what ``_check_labels_of`` checks
        before training: batches of a ``PyDataset``, a generator or a later ``tf.data`` batch
        are only known here. A scalar bool."""
        if not (y.dtype.is_floating or y.dtype.is_integer):
            return tf.constant(True)
        values = tf.cast(y, tf.float32)
        ok = tf.reduce_all(tf.math.is_finite(values))
        classes = self._class_ids_expected
        if classes is None:
            return ok
        if self._one_hot(y.shape):
            binary = tf.reduce_all(tf.equal(values, 0.0) | tf.equal(values, 1.0))
            return ok & binary & tf.reduce_all(tf.equal(tf.reduce_sum(values, axis=-1), 1.0))
        ids = (values == tf.round(values)) & (values >= 0.0) & (values < float(classes))
        return ok & tf.reduce_all(ids)

    def train_step(self, data: Any) -> dict[str, tf.Tensor]:
        x, y, labels_ok = self._inputs(data)
        # a bad label is read as class 0 (the step is not applied): no raw sparse-softmax error
        y = tf.where(labels_ok, y, tf.zeros_like(y))
        with tf.GradientTape() as tape:
            loss, objective, outputs = self._surrogate(x, y, self._step_seed())
            for extra in self.losses:  # regularisers of the model's layers
                loss += tf.cast(extra, tf.float32)
            scaled_loss = self.optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled_loss, self.trainable_variables)
        health = EstimatorOutput(loss, -objective, -objective, tf.zeros([0]), objective)
        apply_if_healthy(self, health, loss, gradients, labels_ok)
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
        x, y, labels_ok = self._inputs(data)
        invalid = sum_over_replicas(tf.cast(tf.logical_not(labels_ok), tf.int64))
        self._invalid_test_labels.assign(
            tf.maximum(self._invalid_test_labels, tf.minimum(invalid, 1))
        )
        y = tf.where(labels_ok, y, tf.zeros_like(y))
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
        del state

    def fit(
        self, x: Any = None, y: Any = None, *args: Any, callbacks: list | None = None, **kwargs: Any
    ) -> Any:
        """``keras.Model.fit``; stops with [`NonFiniteError`][rlmetric.step_networks.NonFiniteError]
        after a step whose loss or
        gradients were not finite (that step does not update the weights). Labels (and the
        labels of ``validation_data``) are checked before the first step."""
        for arg in ("class_weight", "sample_weight"):
            if kwargs.get(arg) is not None:
                raise ValueError(
                    f"StepNetworkTrainer.fit does not support {arg}: its objective is the mean "
                    "loss or the batch reward, unweighted. Received "
                    f"{arg} of type {type(kwargs[arg]).__name__}."
                )
        refuse_unsavable_checkpoints(self, callbacks)
        if self.reward is not None:
            set_reward_directions(callbacks, ["reward"])
        self._check_labels_of(x, y, "y")
        validation = kwargs.get("validation_data")
        if isinstance(validation, tf.data.Dataset):
            self._check_labels_of(validation, None, "validation_data's labels")
        elif isinstance(validation, tuple | list) and len(validation) >= 2:
            self._check_labels_of(validation[0], validation[1], "validation_data's labels")
        return super().fit(x, y, *args, callbacks=[*(callbacks or []), NonFiniteGuard()], **kwargs)

    def evaluate(self, x: Any = None, y: Any = None, *args: Any, **kwargs: Any) -> Any:
        self._check_labels_of(x, y, "y")
        # Keras' positional arguments by name, so that the guard joins the callbacks
        arguments = inspect.signature(keras.Model.evaluate).bind(self, x, y, *args, **kwargs)
        arguments = dict(arguments.arguments, **arguments.arguments.pop("kwargs", {}))
        del arguments["self"]
        callbacks = arguments.pop("callbacks", None)
        if not isinstance(callbacks, keras.callbacks.CallbackList):  # (fit's holds the guard)
            callbacks = [*(callbacks or []), NonFiniteGuard()]
        return super().evaluate(callbacks=callbacks, **arguments)

    # -- labels -----------------------------------------------------------------------------------
    @property
    def _class_ids_expected(self) -> int | None:
        """The number of classes ``C`` when labels must be class ids in ``[0, C)``: the levels of
        the last step layer for a count reward, the outputs for the default cross-entropy."""
        if self.reward is not None:
            return self._output_levels if isinstance(self.reward, rewards_lib.CountReward) else None
        sparse = isinstance(self._loss_config, keras.losses.SparseCategoricalCrossentropy) or (
            self._loss_config == "sparse_categorical_crossentropy"
        )
        shape = getattr(self.model, "output_shape", None) if self.model.built else None
        if not sparse or not isinstance(shape, tuple) or not isinstance(shape[-1], int):
            return None
        return shape[-1]

    @property
    def _labels_expected(self) -> str:
        """What the objective reads labels as, for error messages."""
        classes = self._class_ids_expected
        if classes is None:
            return "finite labels"
        if self.reward is not None:
            return f"the levels 0..{classes - 1} of the last step layer"
        return f"class ids 0..{classes - 1} (the model has {classes} outputs), or one-hot rows"

    def _one_hot(self, y_shape: tf.TensorShape) -> bool:
        """Whether labels of this shape are one-hot rows for the default cross-entropy (which
        takes class ids): as many trailing entries as the outputs, at the outputs' rank."""
        classes = self._class_ids_expected
        return (
            self.reward is None
            and classes is not None
            and classes > 1
            and y_shape.rank == len(self.model.output_shape)
            and y_shape[-1] == classes
        )

    def _check_labels_of(self, x: Any, y: Any, arg: str) -> None:
        """Refuses, before training, labels that are not finite numbers, or not class ids in
        ``[0, C)`` (or one-hot rows) where the objective reads class ids; all of ``y`` in
        memory, the first batch of a dataset."""
        if isinstance(x, tf.data.Dataset) and arg == "y":
            arg = "the labels of the dataset x"
        first = first_rows(x, y)
        labels = None if first is None else (first[2] if first[2] is not None else first[1])
        if labels is None:
            return
        values = keras.ops.convert_to_numpy(as_numeric_labels(labels, arg)).astype(np.float64)
        if values.size and not np.all(np.isfinite(values)):
            raise ValueError(f"{arg} holds NaN or infinite labels; every label must be finite.")
        classes = self._class_ids_expected
        if classes is None or not values.size:
            return
        what = self._labels_expected
        if self._one_hot(tf.TensorShape(values.shape)):
            if np.isin(values, (0.0, 1.0)).all() and (values.sum(axis=-1) == 1).all():
                return
            raise ValueError(
                f"{arg} of shape {values.shape} is read as one-hot rows, but not every row holds "
                f"a single 1 and zeros; the objective expects {what}."
            )
        bad = values[(values != np.round(values)) | (values < 0) | (values >= classes)]
        if bad.size:
            shown = ", ".join(repr(float(v)) for v in np.unique(bad)[:5])
            raise ValueError(
                f"{arg} holds label values [{shown}] (of {bad.size} bad entries); the objective "
                f"expects {what}."
            )

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
