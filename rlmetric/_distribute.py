"""tf.distribute helpers shared by the rewards, the estimators and the trainer: sums over the
replicas inside ``strategy.run``, the check of a strategy before training, and the optimizer
update taken on every replica or none.

(The replicas' global batch offsets for sampling live in
[`rlmetric.policies.batch_uniform`][rlmetric.policies.batch_uniform]
and [`rlmetric.rewards.CountReward.coupled_gains`][rlmetric.rewards.CountReward.coupled_gains]; the
multi-worker logs in the trainer,
next to the step that uses them.)"""

from __future__ import annotations

from typing import Any

import tensorflow as tf


def sum_over_replicas(values: tf.Tensor) -> tf.Tensor:
    """Sums over the replicas of a ``tf.distribute`` strategy inside ``strategy.run``; the
    identity elsewhere (one replica, or the cross-replica context)."""
    replica = tf.distribute.get_replica_context()
    if replica is None or replica.num_replicas_in_sync == 1:
        return values
    return replica.all_reduce(tf.distribute.ReduceOp.SUM, values)


def global_rows(replica: Any, local_rows: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Inside ``strategy.run`` with several replicas: the number of rows of the global batch and
    the offset of this replica's ``local_rows`` in it (an all-gather of the local sizes)."""
    rows = replica.all_gather(tf.reshape(local_rows, [1]), axis=0)  # [replicas]
    return tf.reduce_sum(rows), tf.reduce_sum(rows[: replica.replica_id_in_sync_group])


def check_xla_strategy(strategy: tf.distribute.Strategy) -> None:
    """Refuses ``jit_compile=True`` with several replicas on CPU devices, before training."""
    if strategy.num_replicas_in_sync <= 1:
        return
    cpu_replicas = [d for d in strategy.extended.worker_devices if "CPU" in d.upper()]
    if cpu_replicas:
        raise ValueError(
            f"jit_compile=True does not run under {type(strategy).__name__} with replicas on CPU "
            f"devices ({', '.join(cpu_replicas)}): TensorFlow's XLA compiles each replica's step "
            "for one device and fails on the mirrored variables of the other logical CPU "
            "devices (a plain Keras model fails the same way). Compile with "
            "jit_compile=False (Keras' choice on CPU) or use GPU replicas."
        )


def apply_on_replicas_if(
    optimizer: Any, variables: list, replica: Any, condition: tf.Tensor, gradients: list
) -> None:
    """``optimizer.apply(gradients, variables)`` on every replica of ``replica``'s strategy
    where ``condition`` holds (agreed across replicas).

    Under a strategy that synchronises through ``merge_call`` the optimizer cannot run in a
    ``tf.cond`` of the replica context, so the condition is taken in the cross-replica
    context, as Keras' LossScaleOptimizer does.
    """
    if tf.__internal__.distribute.strategy_supports_no_merge_call():

        def apply():
            optimizer.apply(gradients, variables)

        tf.cond(condition, apply, lambda: None)
        return

    def cross_replica(distribution, condition, gradients):
        take = distribution.experimental_local_results(condition)[0]

        def apply_everywhere():
            distribution.extended.call_for_each_replica(
                lambda g: optimizer.apply(g, variables), args=(gradients,)
            )

        tf.cond(take, apply_everywhere, lambda: None)

    replica.merge_call(cross_replica, args=(condition, gradients))


def logs_for_strategy(logs: dict, strategy: tf.distribute.Strategy) -> dict:
    """The step's logs as Keras can reduce them under ``strategy``: Keras 3 reduces multi-worker
    logs with ``strategy.reduce("MEAN", v, axis=0)``, which rejects scalars
    (tensorflow/tensorflow#72388); as ``[1]`` tensors they reduce to the scalar mean over
    replicas, equal to each replica's value (the counts are global)."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return {name: tf.reshape(value, [1]) for name, value in logs.items()}
    return logs


def build_optimizer_for_multi_worker(trainer: Any) -> bool:
    """Under MultiWorkerMirroredStrategy, builds the optimizer of ``trainer`` (a built
    ``keras.Model``) and returns True: Keras would build the model symbolically from the mean of
    a first batch (strategy.reduce over the replicas' data), which raises there, and the
    preflight has run the model on the first rows already. Elsewhere returns False (Keras'
    own symbolic build applies)."""
    strategy = trainer.distribute_strategy
    if not (
        trainer.model.built and isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    ):
        return False
    if trainer.optimizer is not None and not trainer.optimizer.built:
        with strategy.scope():
            trainer.optimizer.build(trainer.trainable_variables)
    return True
