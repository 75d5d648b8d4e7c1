"""tf.distribute helpers shared by the rewards, the estimators and the trainer: sums over the
replicas inside ``strategy.run``, and the check of a strategy before training.

(The replicas' global batch offsets for sampling live in :func:`rlmetric.policies.batch_uniform`
and :meth:`rlmetric.rewards.CountReward.coupled_gains`; the merge_call apply and the multi-worker
logs in the trainer, next to the step that uses them.)"""

from __future__ import annotations

import tensorflow as tf


def sum_over_replicas(values: tf.Tensor) -> tf.Tensor:
    """Sums over the replicas of a ``tf.distribute`` strategy inside ``strategy.run``; the
    identity elsewhere (one replica, or the cross-replica context)."""
    replica = tf.distribute.get_replica_context()
    if replica is None or replica.num_replicas_in_sync == 1:
        return values
    return replica.all_reduce(tf.distribute.ReduceOp.SUM, values)


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
