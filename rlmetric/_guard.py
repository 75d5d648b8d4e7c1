"""The trainer's guard: a step whose labels are not decisions of the policy, or whose reward,
loss or gradients are not finite, does not update the weights, and ``fit``/``evaluate`` stop
with a clear error after it ([`NonFiniteError`][rlmetric._guard.NonFiniteError], or ``ValueError``
for labels)."""

from __future__ import annotations

import warnings
from typing import Any

import keras
import tensorflow as tf

from rlmetric._distribute import apply_on_replicas_if

__all__ = [
    "NonFiniteError",
    "NonFiniteGuard",
    "apply_if_healthy",
    "add_guard_state",
    "INVALID_LABELS",
]

_NONFINITE_WHAT = {1: "reward", 2: "loss", 3: "gradient"}
INVALID_LABELS = 4  # the "what" of a training step whose labels are not decisions of the policy


class NonFiniteError(FloatingPointError):
    """Raised when a reward, the loss or a gradient is NaN or infinite during training.

    The step that produced it did not update the weights.

    Examples:
        >>> import keras, numpy as np, tensorflow as tf
        >>> from rlmetric import NonFiniteError, PolicyGradientTrainer
        >>> def recall(y_true, actions):  # no guard against a batch without positives
        ...     y = tf.cast(y_true, tf.float32)
        ...     hits = tf.reduce_sum(tf.cast(actions, tf.float32) * y, axis=[1, 2])
        ...     return hits / tf.reduce_sum(y)
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        >>> trainer = PolicyGradientTrainer(model, reward=recall, seed=0)
        >>> trainer.compile()
        >>> x = np.ones([64, 2], "float32")
        >>> y = np.concatenate([np.ones([32, 1]), np.zeros([32, 1])]).astype("int32")
        >>> try:  # the second batch has no positive: recall 0 / 0
        ...     trainer.fit(x, y, batch_size=32, shuffle=False, verbose=0)
        ... except NonFiniteError as error:
        ...     print(str(error)[:43])
        Non-finite reward at training step 1 (optim
    """


#: the mean per-element entropy (nats) below which a policy draws the same decisions every time
CONVERGED_ENTROPY = 1e-3


class NonFiniteGuard(keras.callbacks.Callback):
    """Stops ``fit`` with [`NonFiniteError`][rlmetric._guard.NonFiniteError] after a step that saw a
    non-finite value, and
    ``fit``/``evaluate`` with ``ValueError`` after a batch whose labels are not decisions of the
    policy (labels of a ``tf.data`` pipeline are only known batch by batch)."""

    epoch = 0

    def on_train_begin(self, logs=None):
        self.model._nonfinite.assign([-1, 0])
        self.warned_flat = False

    def on_epoch_end(self, epoch, logs=None):
        # the epoch's mean loss is exactly 0 only when every step's was: no learning signal,
        # unless the policy has converged (no entropy left: every sample set is the same)
        converged = logs is not None and logs.get("entropy", 1.0) < CONVERGED_ENTROPY
        if not self.warned_flat and logs and logs.get("loss") == 0.0 and not converged:
            self.warned_flat = True
            warnings.warn(
                f"No learning signal: the loss was exactly 0 in every training step of epoch "
                f"{epoch + 1}. The reward {getattr(self.model.reward, 'name', 'reward')!r} gave "
                "every decision set the estimator scored the same value (a constant reward, or "
                "one that ignores the decisions), so the weights did not change. Check the "
                "reward on a few decision sets: reward(y_true, actions).",
                UserWarning,
                stacklevel=2,
            )

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        raise_if_nonfinite(self.model, batch, self.epoch)

    def on_test_begin(self, logs=None):
        self.model._invalid_test_labels.assign(0)

    def on_test_batch_end(self, batch, logs=None):
        raise_if_invalid_test_labels(self.model, batch)


def apply_if_healthy(trainer, estimate, loss, gradients, labels_ok) -> None:
    """Applies the update only if the labels are valid and rewards, loss and gradients are
    all finite; otherwise records the step so that ``fit`` stops
    ([`NonFiniteError`][rlmetric._guard.NonFiniteError],
    or ``ValueError`` for labels)."""
    reward_ok = tf.reduce_all(tf.math.is_finite(estimate.rewards))
    loss_ok = tf.math.is_finite(loss)
    # One reduction per gradient: a sum is non-finite iff an element is (or it overflows the
    # float range, which a usable gradient does not). The condition must read every
    # gradient: under XLA on CPU a backward pass that ends up inside the conditional runs
    # more than 10x slower (measured on the conv net of benchmarks/step_cost.py).
    sums = [tf.reduce_sum(tf.cast(g, tf.float32)) for g in gradients if g is not None]
    if isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer) or not sums:
        # Scaled float16 gradients overflow now and then by design: the LossScaleOptimizer
        # skips that step and lowers its scale. Rewards and the loss are still checked.
        gradients_ok = tf.constant(True)
    else:
        gradients_ok = tf.math.is_finite(tf.add_n(sums))
    replica = tf.distribute.get_replica_context()
    distributed = replica is not None and replica.num_replicas_in_sync > 1
    if distributed:
        # every replica must take the same branch: finite only if finite everywhere
        healthy = labels_ok & reward_ok & loss_ok & gradients_ok
        failures = tf.cast(tf.logical_not(healthy), tf.int32)
        all_finite = replica.all_reduce(tf.distribute.ReduceOp.SUM, failures) == 0
        gradients_ok &= all_finite
    finite = labels_ok & reward_ok & loss_ok & gradients_ok
    clean_so_far = trainer._nonfinite[0] < 0
    take = finite & clean_so_far

    def record_failure():
        step = tf.cast(trainer.optimizer.iterations, tf.int64)
        what = tf.where(reward_ok, tf.where(loss_ok, 3, 2), 1)
        what = tf.cast(tf.where(labels_ok, what, INVALID_LABELS), tf.int64)
        first_failure = tf.logical_not(finite) & clean_so_far
        failure = tf.stack([step, what])
        trainer._nonfinite.assign(tf.where(first_failure, failure, trainer._nonfinite))

    if not distributed:
        # the state updates live in the branches: no per-step select ops on the fast path
        def apply():
            trainer.optimizer.apply(gradients, trainer.trainable_variables)
            trainer._update_baseline_state(estimate.baseline_state)

        tf.cond(take, apply, record_failure)
        return
    apply_on_replicas_if(trainer.optimizer, trainer.trainable_variables, replica, take, gradients)
    trainer._update_baseline_state(
        tf.where(take, estimate.baseline_state, trainer._baseline_state.value)
    )
    record_failure()


def raise_if_nonfinite(trainer, batch: int | None = None, epoch: int | None = None) -> None:
    step, what = (int(v) for v in trainer._nonfinite.numpy())
    if step >= 0 and what == INVALID_LABELS:
        where = f" (batch {batch} of epoch {epoch})" if batch is not None else ""
        raise ValueError(
            f"The labels of training step {step}{where} are not {_expected_labels(trainer)}. "
            "Training stopped and that step did not update the weights. Labels of in-memory "
            "arrays are checked in full before training; this batch came later from the "
            "dataset, so check the pipeline's labels."
        )
    if step >= 0:
        raise NonFiniteError(
            f"Non-finite {_NONFINITE_WHAT.get(what, 'value')} at training step {step} "
            "(optimizer iteration, counted from 0): training stopped and that step did not "
            "update the weights. Check the reward for NaN/inf outputs (e.g. a division by "
            "zero) and the model for exploding logits."
        )


def raise_if_invalid_test_labels(trainer, batch: int) -> None:
    if int(trainer._invalid_test_labels.numpy()):
        raise ValueError(
            f"The labels of batch {batch} of the evaluation (or validation) data are not "
            f"{_expected_labels(trainer)}. The metrics were not reported; check the labels."
        )


def _expected_labels(trainer) -> str:
    """What ``trainer`` reads labels as: decisions of its policy, or (a ``StepNetworkTrainer``)
    what its objective reads."""
    policy = getattr(trainer, "policy", None)
    if policy is None:
        return trainer._labels_expected
    return f"decisions of policy={policy.name!r}: it expects labels{policy._label_hint}"


def add_guard_state(trainer: Any) -> None:
    """Creates the guard's non-trainable state on ``trainer`` (a ``keras.Model``)."""
    # (training step, what) of the first non-finite value seen; -1 while there is none.
    trainer._nonfinite = trainer.add_weight(
        shape=(2,),
        initializer=keras.initializers.Constant([-1, 0]),
        dtype="int64",
        trainable=False,
        name="nonfinite_step",
    )
    # 1 once a test step saw labels that are not decisions of the policy
    trainer._invalid_test_labels = trainer.add_weight(
        shape=(),
        initializer="zeros",
        dtype="int64",
        trainable=False,
        name="invalid_test_labels",
    )
