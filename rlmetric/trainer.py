"""PolicyGradientTrainer: train any logits-producing Keras model on a non-differentiable metric.

The trainer only wires the small pieces together: a policy (the distribution over decisions
that the logits parameterise), a reward (the metric), a baseline and a gradient estimator. It is
a ``keras.Model`` that overrides ``train_step``/``test_step`` as in the Keras guide
"Customizing what happens in fit()", so ``compile``/``fit``/``evaluate``/callbacks/``tf.data``
work as usual.
"""

from __future__ import annotations

import random
import warnings
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from rlmetric import baselines as baselines_lib
from rlmetric import estimators as estimators_lib
from rlmetric import policies as policies_lib
from rlmetric import rewards as rewards_lib
from rlmetric._distribute import (
    build_optimizer_for_multi_worker,
    logs_for_strategy,
    sum_over_replicas,
)
from rlmetric._guard import (
    NonFiniteError,
    NonFiniteGuard,
    add_guard_state,
    apply_if_healthy,
)
from rlmetric._inputs import (
    as_float32,
    as_numeric_labels,
    check_output_layer,
    reject_sample_weight,
)
from rlmetric._preflight import (
    DEFAULT_NUM_SAMPLES,
    check_components,
    check_fit_arguments,
    check_metric_names,
    check_trainer_arguments,
    fit_reward_to_logits,
    preflight,
    preflight_validation,
    resolve_jit_compile,
)
from rlmetric._saving import AtomicSaving, TrainerConfig, refuse_unsavable_checkpoints
from rlmetric.callbacks import SwitchEstimator
from rlmetric.layers import StochasticStep
from rlmetric.metrics import (
    MeanOfEach,
    MetricList,
    RewardMetric,
    as_logs,
    set_reward_directions,
)

__all__ = ["PolicyGradientTrainer", "NonFiniteError"]

#: what ``fit`` and ``evaluate`` log besides the rewards (a reward may not take these names)
_TRAINER_LOGS = ("loss", "reward", "advantage_std", "entropy")


@keras.saving.register_keras_serializable(package="rlmetric")
class PolicyGradientTrainer(TrainerConfig, AtomicSaving, keras.Model):
    """Trains ``model`` (which outputs logits) to maximise a reward of its decisions, e.g. the
    batch F1, that has no gradient of its own.

    The outputs are the parameters of a distribution over decisions (the policy). Each training
    step runs the model once on the batch and follows the estimator's update:

    * the default for a metric of confusion counts, or your own function of per-element
      decisions (``estimator="auto"``: the best response) scores the policy's most likely
      decisions, finds what each decision is worth to the metric (the metric of the batch with
      that one decision changed) and takes a cross-entropy step toward the better decision,
      weighted by that worth. It draws no samples: ``num_samples`` and ``baseline`` are not
      used (set explicitly, they warn), ``reward`` in the logs is the score of the most likely
      decisions, and ``advantage_std`` is 0;
    * REINFORCE (``estimator="reinforce"``, and the default for any other reward) draws
      ``num_samples`` (``K``) decision sets, scores each with the reward, subtracts the
      baseline and raises the log-probability of the sets that scored above it.

    Args:
        model: a Keras model whose outputs are logits: ``[B]``, ``[B, 1]``, ``[B, L]`` or
            ``[B, H, W, 1]`` for ``policy="bernoulli"``; ``[B, C]`` or ``[B, H, W, C]`` for
            ``policy="categorical"``. It stays a plain Keras model (``model.save`` works).
        reward: a [`rlmetric.rewards`][rlmetric.rewards] object, an alias (``"f1"``, ``"macro_f1"``,
            ``"iou"``, ``"miou"``, ``"dice"``, ``"precision"``, ``"recall"``, ``"accuracy"``,
            ``"mcc"``, ...) or a TensorFlow callable ``reward(y_true [B, ...], actions [K, B, ...])
            -> [K]``. Its ``name`` names the metric in the logs (``f1``, ``val_f1``).
            ``None`` for a trainer used only with
            [`fit_env`][rlmetric.trainer.PolicyGradientTrainer.fit_env] (rewards from the env).
        policy: ``"bernoulli"``, ``"categorical"``, ``"plackett_luce"`` (rankings: logits
            ``[B, L]``, one score per item) or a [`rlmetric.policies`][rlmetric.policies] object.
        baseline: ``"leave_one_out"`` (default), ``"none"``, ``"moving_average"``,
            ``"greedy"``, ``"group_norm"`` or a [`rlmetric.baselines`][rlmetric.baselines] object.
        num_samples: ``K``, decision sets drawn per batch (``>= 2`` for leave-one-out), by
            the estimators that sample (not the default best response).
        estimator: ``"auto"`` (default: ``"best_response"`` for rewards computed from confusion
            counts, with ``context="coupled"`` for the mean IoU of categorical decisions;
            ``"pairwise_best_response"`` for NDCG, DCG, precision and recall at ``k`` of
            ``policy="plackett_luce"``; else ``"reinforce"``; see
            [`rlmetric.estimators.default_estimator`][rlmetric.estimators.default_estimator]),
            ``"best_response"``, ``"reinforce"``, ``"local_expectation"``, ``"disarm"`` or a
            [`rlmetric.estimators`][rlmetric.estimators] object.
        entropy_weight: weight of the mean per-element policy entropy bonus.
        crossentropy_weight: weight of the supervised cross-entropy mixed into the loss (a
            warm start or a hybrid objective); 0 trains on the reward alone.
        seed: seed of the action sampling (``None``: a random one).

    Examples:
        Binary F1 on a small imbalanced problem, with a model that outputs logits:

        >>> import keras, numpy as np
        >>> from rlmetric import PolicyGradientTrainer
        >>> keras.utils.set_random_seed(0)
        >>> rng = np.random.default_rng(0)
        >>> x = rng.normal(size=(256, 4)).astype("float32")
        >>> y = (x[:, 0] > 1.0).astype("int32")  # about 16% positive
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        >>> trainer = PolicyGradientTrainer(model, reward="f1", seed=0)
        >>> trainer.compile(optimizer=keras.optimizers.Adam(0.05))
        >>> history = trainer.fit(x, y, batch_size=64, epochs=20, verbose=0)
        >>> trainer.evaluate(x, y, return_dict=True, verbose=0)["f1"] > 0.8
        True
    """

    _components = ("model", "reward", "policy", "baseline", "estimator")
    _settings = ("num_samples", "entropy_weight", "crossentropy_weight", "seed")

    def __init__(
        self,
        model: keras.Model,
        reward: Any = "f1",
        policy: Any = "bernoulli",
        baseline: Any = "leave_one_out",
        num_samples: int = DEFAULT_NUM_SAMPLES,
        estimator: Any = "auto",
        entropy_weight: float = 0.0,
        crossentropy_weight: float = 0.0,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_trainer_arguments(model, num_samples, seed, entropy_weight, crossentropy_weight)
        check_output_layer(model)
        steps = [
            layer.name
            for layer in model._flatten_layers(include_self=False)
            if isinstance(layer, StochasticStep)
        ]
        if steps:  # a step passes no gradient: every layer below it would stay as initialised
            raise ValueError(
                f"model {model.name!r} contains StochasticStep layer(s) {steps}, which pass no "
                "gradient to the layers below them: PolicyGradientTrainer would train only the "
                "layers above. Train it with rlmetric.StepNetworkTrainer, which credits every "
                "layer below a step unit."
            )
        self.model = model
        self.policy = policies_lib.get(policy)
        self.reward = None if reward is None else rewards_lib.get(reward)
        self.baseline = baselines_lib.get(baseline)
        if isinstance(estimator, str) and estimator == "auto":
            estimator = estimators_lib.default_estimator(self.reward, self.policy)
        self.estimator = estimators_lib.get(estimator)
        self.num_samples = int(num_samples)
        self.entropy_weight = float(entropy_weight)
        self.crossentropy_weight = float(crossentropy_weight)
        self.seed = seed
        check_components(self.policy, self.reward, self.baseline, self.estimator, num_samples)

        # Training step t draws its actions from the stateless seed (seed, t), t being the
        # optimizer's iteration count: reproducible, and no seed state to update every step.
        # Python's random (seeded by keras.utils.set_random_seed) picks a seed for seed=None.
        self._seed_base = int(seed) if seed is not None else random.randint(1, 10**9)
        self._seed_generator = keras.random.SeedGenerator(self._seed_base, name="action_seed")
        initial_state = np.asarray(self.baseline.initial_state(), np.float32)
        self._baseline_state = self.add_weight(
            shape=initial_state.shape,
            initializer=keras.initializers.Constant(initial_state),
            trainable=False,
            name="baseline_state",
        )
        add_guard_state(self)
        self._training_stats = MeanOfEach(("loss", "reward", "advantage_std", "entropy"))
        self._entropy_tracker = keras.metrics.Mean(name="entropy")  # evaluate's
        self._reward_metrics = MetricList()
        self._extra_rewards: list[rewards_lib.Reward] = []
        self._logits_shape: tf.TensorShape | None = None
        self._gradient_function = None
        try:
            output_shape = model.output_shape
        except (AttributeError, ValueError):  # a subclassed model that is not built yet
            output_shape = None
        if isinstance(output_shape, tuple) and all(
            d is None or isinstance(d, int) for d in output_shape
        ):
            self._setup_outputs(tf.TensorShape(output_shape))
        if model.built:
            # The trainer's own state exists already; a built model makes the whole trainer
            # ready for load_weights without a call on data.
            self.built = True

    # -- wiring -------------------------------------------------------------------------------
    def _setup_outputs(self, logits_shape: tf.TensorShape) -> None:
        """Checks the logits against the policy and creates the reward metrics (once)."""
        logits_shape = tf.TensorShape(logits_shape)
        if self._logits_shape is not None:
            if not self._logits_shape[1:].is_compatible_with(logits_shape[1:]):
                raise ValueError(
                    f"The model returned logits of shape {logits_shape}, but earlier of shape "
                    f"{self._logits_shape}."
                )
            return
        self.policy.check_logits(logits_shape)
        self._logits_shape = logits_shape
        if self.reward is None:  # a trainer for fit_env only
            return
        self.reward = fit_reward_to_logits(self.reward, self.policy, logits_shape, "reward")
        self._create_reward_metrics()

    def _create_reward_metrics(self) -> None:
        if self._logits_shape is None or self.reward is None:
            return
        action_shape = self.policy.action_shape(self._logits_shape)
        rewards = [self.reward] + [
            fit_reward_to_logits(r, self.policy, self._logits_shape, "metrics")
            for r in self._extra_rewards
        ]
        check_metric_names([r.name for r in rewards], _TRAINER_LOGS)
        self._reward_metrics.items = [RewardMetric(r, action_shape) for r in rewards]

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return [self._training_stats, *self._reward_metrics.items, self._entropy_tracker]

    def get_metrics_result(self) -> dict[str, Any]:
        """The metrics' values, read outside the step (summed over replicas under
        ``tf.distribute``). The training statistics are left out when they saw no update since
        the last reset (during ``evaluate``), and evaluate's entropy when it saw none (during
        training), so these keys match the step's and Keras reports these cross-replica values
        rather than the last step's per-replica ones."""
        logs = {}
        for metric in self.metrics:
            mode_only = metric is self._training_stats or metric is self._entropy_tracker
            if not (mode_only and float(metric.count.numpy()) == 0):
                logs.update(as_logs(metric))
        return logs

    def compile(
        self,
        optimizer: Any = "adam",
        metrics: list | None = None,
        jit_compile: Any = "auto",
        loss: Any = None,
        **kwargs: Any,
    ) -> None:
        """Configures training. ``metrics``: extra rewards (objects or aliases such as
        ``["precision", "recall"]``) reported on the most likely decisions (``policy.mode``),
        over whole sets in ``evaluate``. Other arguments are ``keras.Model.compile``'s (no
        ``loss``: the loss is the estimator's surrogate)."""
        if loss is not None:
            raise ValueError(
                "PolicyGradientTrainer.compile does not take a loss: the loss is the "
                "policy-gradient surrogate of the reward. Use crossentropy_weight=... to mix in "
                f"the supervised loss. Received loss={loss!r}."
            )
        extra = [rewards_lib.get(m) for m in (metrics or [])]
        for metric in extra:  # a metric of another kind of action would log a wrong value
            self.policy.check_reward(metric)
        jit_compile = resolve_jit_compile(
            [self.reward, *extra], jit_compile, self.distribute_strategy
        )
        self._extra_rewards = extra
        self._create_reward_metrics()
        super().compile(optimizer=optimizer, jit_compile=jit_compile, **kwargs)

    # -- the Keras model ----------------------------------------------------------------------
    def build(self, input_shape: Any) -> None:
        if not self.model.built:
            self.model.build(input_shape)
        self.built = True

    def call(self, inputs: Any, training: bool | None = None) -> tf.Tensor:
        return self.model(inputs, training=training)

    def _next_seed(self) -> tf.Tensor:
        """A fresh seed for draws outside training steps (``estimate_gradient``)."""
        return tf.cast(self._seed_generator.next(), tf.int32)

    def _step_seed(self) -> tf.Tensor:
        """The seed ``[2]`` of this training step: (seed, optimizer iterations)."""
        step = tf.cast(self.optimizer.iterations, tf.int32)
        return tf.stack([tf.constant(self._seed_base, tf.int32), step])

    def _replica_mean(self, values: tf.Tensor) -> tf.Tensor:
        """Local mean divided by the replica count: summed over replicas, the global mean."""
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        return tf.reduce_mean(tf.cast(values, tf.float32)) / replicas

    def _forward(self, x: Any, y: Any, training: bool) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Logits ``[B, ...]`` (float32), labels in the action shape (int32) and a scalar bool:
        whether every label value is a decision of the policy."""
        logits = as_float32(self(x, training=training))
        if self._logits_shape is None:
            self._setup_outputs(logits.shape)
        self.policy.check_logits(logits.shape)
        y = as_numeric_labels(y, "y")
        labels_ok = self.policy.labels_valid(y, logits.shape)
        labels = self.policy.format_labels(y, logits.shape)
        # Out-of-range class ids would fail inside a gather; the step is discarded anyway.
        labels = tf.where(labels_ok, labels, tf.zeros_like(labels))
        return self.policy.mask_logits(logits, labels), labels, labels_ok

    def _estimate(
        self, logits: tf.Tensor, labels: tf.Tensor, seed: tf.Tensor
    ) -> estimators_lib.EstimatorOutput:
        return self.estimator(
            logits,
            labels,
            policy=self.policy,
            reward=self.reward,
            baseline=self.baseline,
            baseline_state=self._baseline_state.value,
            num_samples=self.num_samples,
            seed=seed,
        )

    def train_step(self, data: Any) -> dict[str, tf.Tensor]:
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        reject_sample_weight(sample_weight)
        seed = self._step_seed()
        with tf.GradientTape() as tape:
            logits, labels, labels_ok = self._forward(x, y, training=True)
            estimate = self._estimate(logits, labels, seed)
            entropy = self.policy.entropy(logits)
            loss = estimate.loss
            if self.entropy_weight:
                loss -= self.entropy_weight * self._replica_mean(entropy)
            if self.crossentropy_weight:
                crossentropy = self.policy.crossentropy(logits, labels)
                loss += self.crossentropy_weight * self._replica_mean(crossentropy)
            for extra in self.losses:
                # as Keras' own step: in float32, divided by the replica count (summed over
                # replicas, a regulariser counts once)
                loss += tf.cast(self._aggregate_additional_loss(extra), tf.float32)
            # Keras' optimizers divide the gradients by the loss scale (a LossScaleOptimizer
            # under mixed_float16, or loss_scale_factor=), so the loss must be multiplied by it.
            scaled_loss = self.optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled_loss, self.trainable_variables)
        self._apply_if_finite(estimate, loss, gradients, labels_ok)

        decisions = self.policy.mode(logits)
        for metric in self._reward_metrics.items:
            metric.update_state(labels, decisions)
        self._training_stats.update_state(
            [
                loss,
                tf.reduce_mean(estimate.rewards),
                tf.math.reduce_std(estimate.advantages),
                tf.reduce_mean(entropy),
            ]
        )
        return self._step_logs([self._training_stats, *self._reward_metrics.items])

    def _apply_if_finite(self, estimate, loss, gradients, labels_ok) -> None:
        apply_if_healthy(self, estimate, loss, gradients, labels_ok)

    def _update_baseline_state(self, state: tf.Tensor) -> None:
        if self._baseline_state.shape.num_elements() != 0:  # stateless baselines: no write
            self._baseline_state.assign(state)

    def test_step(self, data: Any) -> dict[str, tf.Tensor]:
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        reject_sample_weight(sample_weight)
        logits, labels, labels_ok = self._forward(x, y, training=False)
        # invalid anywhere: the flag of every replica (the identity on one)
        invalid = sum_over_replicas(tf.cast(tf.logical_not(labels_ok), tf.int64))
        self._invalid_test_labels.assign(
            tf.maximum(self._invalid_test_labels, tf.minimum(invalid, 1))
        )
        decisions = self.policy.mode(logits)
        for metric in self._reward_metrics.items:
            metric.update_state(labels, decisions)
        self._entropy_tracker.update_state(tf.reduce_mean(self.policy.entropy(logits)))
        reported = [*self._reward_metrics.items, self._entropy_tracker]
        return self._step_logs(reported)

    def _step_logs(self, metrics: list) -> dict[str, tf.Tensor]:
        logs = {}
        for metric in metrics:
            logs.update(as_logs(metric))
        return logs_for_strategy(logs, self.distribute_strategy)

    def _maybe_symbolic_build(self, iterator: Any = None, data_batch: Any = None) -> None:
        if not build_optimizer_for_multi_worker(self):
            super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    # -- Keras entry points with checks before training -----------------------------------------
    def fit(
        self,
        x: Any = None,
        y: Any = None,
        batch_size: int | None = None,
        epochs: int = 1,
        verbose: Any = "auto",
        callbacks: list | None = None,
        validation_split: float = 0.0,
        validation_data: Any = None,
        **kwargs: Any,
    ) -> keras.callbacks.History:
        """``keras.Model.fit``; the data are checked against the model and the reward first."""
        check_fit_arguments(x, kwargs)
        refuse_unsavable_checkpoints(self, callbacks)
        self._fit_batch_size = _batch_size_of(x, batch_size)
        rewards = [r for r in (self.reward, *self._extra_rewards) if r is not None]
        set_reward_directions(callbacks, ["reward", *(r.name for r in rewards)])
        self._preflight(x, y, "x", "y")
        preflight_validation(self, validation_data)
        switches = [c for c in callbacks or [] if isinstance(c, SwitchEstimator)]
        for switch in switches:
            switch.undone_by_fit = True  # this fit puts the estimators back, in reverse order
        try:
            return super().fit(
                x,
                y,
                batch_size=batch_size,
                epochs=epochs,
                verbose=verbose,
                callbacks=[*(callbacks or []), NonFiniteGuard()],
                validation_split=validation_split,
                validation_data=validation_data,
                **kwargs,
            )
        finally:
            # Keras skips on_train_end when fit stops on an exception; and switches undone in
            # list order would leave an earlier switch's estimator: undo the latest first
            for switch in reversed(switches):
                switch.undo()
                switch.undone_by_fit = False

    def _replace_estimator(self, estimator: Any) -> None:
        """Trains with ``estimator`` from the next step on ([`
        SwitchEstimator`][rlmetric.callbacks.
        SwitchEstimator]): the compiled functions traced with the old one are rebuilt."""
        self.estimator = estimator
        self.make_train_function(force=True)  # fit reads train_function at every step
        self._gradient_function = None  # estimate_gradient's

    def evaluate(self, x: Any = None, y: Any = None, **kwargs: Any) -> Any:
        """``keras.Model.evaluate``: the metrics of the most likely decisions over the whole set.

        Without ``return_dict=True`` the list is ``[reward, *extra metrics, entropy]`` in the
        order of ``metrics_names``, with no loss first: evaluation scores decisions, and the
        training loss (a surrogate of the estimator) has no meaning there. A reward computed on a
        whole batch is averaged over batches: pass ``fit``'s ``batch_size`` (a warning says when
        it differs)."""
        self._preflight(x, y, "x", "y")
        self._warn_if_the_batch_changes_the_metric(_batch_size_of(x, kwargs.get("batch_size")))
        callbacks = kwargs.pop("callbacks", None)
        if not isinstance(callbacks, keras.callbacks.CallbackList):  # (fit's holds the guard)
            callbacks = [*(callbacks or []), NonFiniteGuard()]
        return super().evaluate(x, y, callbacks=callbacks, **kwargs)

    def _warn_if_the_batch_changes_the_metric(self, batch_size: int | None) -> None:
        """Warns once when ``evaluate`` scores a reward of whole batches (not a count metric, a
        mean over lists or examples) with batches of another size than ``fit``'s."""
        trained = getattr(self, "_fit_batch_size", None)
        if batch_size is None or trained is None or batch_size == trained:
            return
        per_batch = [m.name for m in self._reward_metrics.items if m.depends_on_the_batch]
        if per_batch and not getattr(self, "_warned_batch_size", False):
            self._warned_batch_size = True
            warnings.warn(
                f"evaluate scores {per_batch} on batches of {batch_size}, but fit trained on "
                f"batches of {trained}: a reward computed on a whole batch (a budget per batch, "
                "a ratio of sums) is another metric on batches of another size, and evaluate "
                "reports its mean over batches. Pass batch_size="
                f"{trained} to evaluate the metric that was trained.",
                UserWarning,
                stacklevel=3,
            )

    def fit_env(self, env: Any, **kwargs: Any) -> keras.callbacks.History:
        """Trains the model as a policy on a gymnasium env from its rewards (episodic
        REINFORCE); see [`rlmetric.episodic.fit_env`][rlmetric.episodic.fit_env] for the
        arguments."""
        from rlmetric.episodic import fit_env

        return fit_env(self, env, **kwargs)

    def predict_actions(self, x: Any, batch_size: int | None = None) -> np.ndarray:
        """The policy's most likely decisions for ``x`` (its mode): 0/1 (Bernoulli) or class
        ids (categorical) in the action shape ``[N, ...]`` (``[N, 1]`` for a model with one
        output unit), or rankings (``plackett_luce``: ``[N, L]``, the item index at each rank)."""
        logits = self.predict(x, batch_size=batch_size, verbose=0)
        return keras.ops.convert_to_numpy(self.policy.mode(as_float32(logits)))

    def estimate_gradient(self, x: Any, y: Any) -> list[np.ndarray]:
        """One draw of the estimator's estimate of ``grad E[reward]`` (the ascent direction) on
        the batch ``(x, y)``, aligned with ``model.trainable_variables``.

        Only the reward term: no entropy bonus, cross-entropy or regularisation. The model runs
        in inference mode and the baseline state is read, not updated.
        """
        x = tf.nest.map_structure(tf.convert_to_tensor, x)
        y = as_numeric_labels(y, "y")
        if self._gradient_function is None:
            self._preflight(x, y, "x", "y")  # checks every label value too
            self._gradient_function = tf.function(self._reward_gradient, reduce_retracing=True)
        else:  # the labels change from call to call
            self.policy.check_label_values(y, self._logits_shape, "y")
        gradients = self._gradient_function(x, y)
        return [keras.ops.convert_to_numpy(g) for g in gradients]

    def _reward_gradient(self, x: Any, y: tf.Tensor) -> list[tf.Tensor]:
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            logits, labels, _ = self._forward(x, y, training=False)
            estimate = self._estimate(logits, labels, self._next_seed())
        gradients = tape.gradient(estimate.loss, variables)
        return [
            -g if g is not None else tf.zeros_like(v)
            for g, v in zip(gradients, variables, strict=True)
        ]

    # -- checks before training ---------------------------------------------------------------
    def _preflight(self, x: Any, y: Any, x_name: str, y_name: str) -> None:
        preflight(self, x, y, x_name, y_name)

    # -- serialization ------------------------------------------------------------------------
    def get_compile_config(self) -> dict:
        config = super().get_compile_config()
        if config:
            config["metrics"] = [
                keras.saving.serialize_keras_object(r) for r in self._extra_rewards
            ]
        return config


def _batch_size_of(x: Any, batch_size: int | None) -> int | None:
    """The batch size ``fit``/``evaluate`` use for ``x``: ``batch_size`` (Keras' 32 when it is
    None) for arrays; ``None`` (unknown here) for a dataset or generator, which batches itself."""
    leaves = tf.nest.flatten(x)
    if not leaves or not all(isinstance(a, np.ndarray | tf.Tensor) for a in leaves):
        return None
    return int(batch_size) if batch_size is not None else 32
