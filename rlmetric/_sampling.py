"""Stateless, counter-based draws for the policies: reproducible from an explicit ``[2]`` seed,
and keyed by each example's position in the global batch under ``tf.distribute``."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from rlmetric._distribute import global_rows

__all__ = ["stateless_uniform", "batch_uniform"]


def _as_seed(seed: Any) -> tf.Tensor:
    """Returns an int32 seed of shape [2] for the stateless ops (``None`` draws a fresh one)."""
    if seed is None:
        return tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int32)
    if isinstance(seed, int):
        return tf.constant([seed, 0], dtype=tf.int32)
    return tf.cast(seed, tf.int32)


_PHILOX = 1  # tf.random.Algorithm.PHILOX.value


def _random_algorithm() -> str:
    """``"threefry"`` where the graph being traced is XLA-compiled, else ``"philox"``.

    TensorFlow's own kernels implement Philox only. XLA implements both, and on CPU its
    Threefry draws 2048 uniforms about 3x faster than its Philox (6-9 us vs 24-31 us measured;
    the default, auto-selected algorithm took 170 us), which is most of what sampling costs in
    a compiled training step of a small model. Compiled and uncompiled steps already draw
    different numbers for the same seed, so nothing is lost.
    """
    try:  # TensorFlow has no public test for "inside XLA"; without this one, Philox everywhere
        from tensorflow.python.ops.control_flow_util import GraphOrParentsInXlaContext
    except ImportError:
        return "philox"
    in_xla = GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())
    return "threefry" if in_xla else "philox"


def stateless_uniform(shape: Any, seed: Any, dtype: tf.DType = tf.float32) -> tf.Tensor:
    """Uniform draws in ``(0, 1)`` (never exactly 0) from a ``[2]`` seed: Philox, or Threefry
    inside an XLA-compiled function (see ``_random_algorithm``).

    Examples:
        >>> import numpy as np
        >>> from rlmetric.policies import stateless_uniform
        >>> a, b = stateless_uniform([2, 3], seed=[1, 2]), stateless_uniform([2, 3], seed=[1, 2])
        >>> bool(np.array_equal(a.numpy(), b.numpy()))  # the same seed, the same draws
        True
    """
    tiny = np.finfo(dtype.as_numpy_dtype).tiny
    algorithm = _random_algorithm()
    if algorithm == "philox":
        # Two kernels where tf.random.stateless_uniform scrambles the seed in some twenty small
        # ops, a cost paid every training step. (Under XLA this pair is far slower.)
        key, counter = tf.raw_ops.StatelessRandomGetKeyCounter(seed=_as_seed(seed))
        uniform = tf.raw_ops.StatelessRandomUniformV2(
            shape=shape, key=key, counter=counter, alg=_PHILOX, dtype=dtype
        )
        return tf.maximum(uniform, tiny)
    return tf.random.stateless_uniform(
        shape, seed=_as_seed(seed), minval=tiny, maxval=1.0, dtype=dtype, alg=algorithm
    )


def batch_uniform(shape: Any, seed: Any, dtype: tf.DType = tf.float32) -> tf.Tensor:
    """Uniform noise ``[K, B, ...]`` for ``K`` sample sets of a batch, keyed by the position of
    each example in the *global* batch.

    On one device this is [`stateless_uniform`][rlmetric._sampling.stateless_uniform]. Inside
    ``strategy.run`` of a
    ``tf.distribute`` strategy with several replicas, each replica draws the noise of the whole
    global batch from the same seed and keeps the rows of its own examples (their offset comes
    from an all-gather of the local batch sizes), so the same seed gives the same actions for an
    example on 1 or N replicas, whatever the split. The price is ``N`` times the sampling work,
    which is ``O(K x outputs)``: small next to the model, which still runs once per local batch.

    Examples:
        >>> from rlmetric.policies import batch_uniform
        >>> batch_uniform([8, 4, 3], seed=[0, 1]).shape  # noise for K = 8 sets of a batch of 4
        TensorShape([8, 4, 3])
    """
    replica = tf.distribute.get_replica_context()
    if replica is None or replica.num_replicas_in_sync == 1:
        return stateless_uniform(shape, seed, dtype)
    shape = tf.cast(shape, tf.int32)
    local_rows = shape[1]
    total_rows, offset = global_rows(replica, local_rows)
    global_shape = tf.concat([shape[:1], [total_rows], shape[2:]], axis=0)
    noise = stateless_uniform(global_shape, seed, dtype)
    return noise[:, offset : offset + local_rows]
