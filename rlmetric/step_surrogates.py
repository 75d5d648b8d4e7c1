"""The estimators of
[`rlmetric.step_networks.StepNetworkTrainer`][rlmetric.step_networks.StepNetworkTrainer] as pure
functions of
tensors: what each minimises for the layers below a step layer (re-exported by
[`rlmetric.step_networks`][rlmetric.step_networks])."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from rlmetric.layers import level_log_prob, levels_from_logits

__all__ = [
    "score_function_loss",
    "disarm_logit_gradient",
    "local_expectation_loss",
    "layer_log_prob",
    "disarm_layer_loss",
    "local_expectation_layer_loss",
    "single_unit_variants",
    "plain_dense",
    "dense_outputs_of_moves",
]

#: ``rerun(levels, factor) -> [factor * K, B or 1]``: the objective with one step layer at
#: ``levels`` (``factor`` stacked copies of its ``K * B`` rows), the layers above re-drawn with
#: the noise of the original pass
Rerun = Callable[..., tf.Tensor]


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
        >>> from rlmetric.step_surrogates import score_function_loss
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
        logits: ``[P, B, U]`` (or ``[1, B, U]``, shared by the pairs) the units' logits
            ``alpha`` (only their magnitude is read).

    Returns:
        ``[P, B, U]`` the gradient estimate per unit (not stopped: a constant of the inputs).

    Examples:
        >>> import tensorflow as tf
        >>> from rlmetric.step_surrogates import disarm_logit_gradient
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
        >>> from rlmetric.step_surrogates import local_expectation_loss
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


# --- one step layer's surrogate, from its draw and a re-run of the layers above ------------------


def _units(values: tf.Tensor, copies: int) -> tf.Tensor:
    """``[copies * B, ...units]`` -> ``[copies, B, U]``."""
    return tf.reshape(values, [copies, -1, int(np.prod(values.shape[1:]))])


def _logits_by_copy(logits: tf.Tensor, rows: tf.Tensor) -> tf.Tensor:
    """``[C * rows, ...units, V]`` -> ``[C, rows, U, V]``: ``C`` is the number of copies, or 1
    where one set of logits serves every copy (the first step layer, whose input is the same in
    every sample set), which then broadcasts against the copies' levels."""
    units = int(np.prod(logits.shape[1:-1]))
    return tf.reshape(logits, [-1, rows, units, logits.shape[-1]])


def layer_log_prob(logits: tf.Tensor, levels: tf.Tensor, copies: int) -> tf.Tensor:
    """``[copies, B]`` log-probability of the drawn ``levels`` ``[copies * B, ...units]``
    under ``logits`` ``[copies * B, ...units, V]`` (or ``[B, ...units, V]``, shared by the
    copies), summed over the layer's units.

    Examples:
        >>> import tensorflow as tf
        >>> from rlmetric.step_surrogates import layer_log_prob
        >>> logits = tf.constant([[[0.0, 0.0], [0.0, 2.0]]])  # one example, two binary units
        >>> # log(.5 x .881)
        >>> layer_log_prob(logits, tf.constant([[1, 1]]), copies=1).numpy().round(4)
        array([[-0.8201]], dtype=float32)
    """
    levels = _units(levels, copies)
    logits = _logits_by_copy(logits, tf.shape(levels)[1])  # shared logits broadcast
    return tf.reduce_sum(level_log_prob(logits, levels), axis=-1)


def disarm_layer_loss(
    logits: tf.Tensor,
    uniforms: tf.Tensor,
    levels: tf.Tensor,
    objective: tf.Tensor,
    rerun: Rerun,
    copies: int,
    per_example: bool,
) -> tf.Tensor:
    """DisARM's surrogate for one layer of binary units: its antithetic levels (from
    ``1 - uniforms``) re-run through the layers above, then
    [`disarm_logit_gradient`][rlmetric.step_surrogates.disarm_logit_gradient].

    Args:
        logits: ``[P * B, ...units, 2]``, or ``[B, ...units, 2]`` shared by the ``P`` copies;
            uniforms, levels: ``[P * B, ...units]`` of the draw.
        objective: ``[P, B or 1]`` what is minimised, for the drawn levels.
        rerun: see ``Rerun``.

    Examples:
        >>> import tensorflow as tf
        >>> from rlmetric.step_surrogates import disarm_layer_loss
        >>> logits = tf.Variable([[[0.0, 0.0]]])  # one binary unit at p = .5; level 1 is better
        >>> def loss_of(levels):  # the layers above: loss 1 at level 0, 0 at level 1
        ...     return tf.cast(1 - levels, tf.float32)
        >>> with tf.GradientTape() as tape:  # u = .3 draws level 0, its antithetic 1 - u level 1
        ...     surrogate = disarm_layer_loss(
        ...         logits, tf.constant([[0.3]]), tf.constant([[0]]), tf.constant([[1.0]]),
        ...         loss_of, copies=1, per_example=True)
        >>> tape.gradient(surrogate, logits).numpy()  # descent raises level 1's logit: sigmoid'(0)
        array([[[ 0.25, -0.25]]], dtype=float32)
    """
    drawn = _units(levels, copies)  # [P, B, U]
    by_copy = _logits_by_copy(logits, tf.shape(drawn)[1])  # [P or 1, B, U, 2]
    antithetic = levels_from_logits(by_copy, 1.0 - _units(uniforms, copies))  # [P, B, U]
    antithetic_objective = tf.stop_gradient(rerun(tf.reshape(antithetic, tf.shape(levels))))
    alpha = by_copy[..., 1] - by_copy[..., 0]  # [P or 1, B, U]
    gradient = disarm_logit_gradient(-objective, -antithetic_objective, drawn, antithetic, alpha)
    ascent = tf.reduce_sum(tf.stop_gradient(gradient) * alpha, axis=[1, 2])  # [P]
    if per_example:
        ascent /= tf.cast(tf.shape(alpha)[1], ascent.dtype)
    return -tf.reduce_mean(ascent)


def plain_dense(layer: Any) -> bool:
    """A ``keras.layers.Dense`` computing ``activation(x W + b)`` on 2-D inputs, nothing else.

    Examples:
        >>> import keras
        >>> from rlmetric.step_surrogates import plain_dense
        >>> dense = keras.layers.Dense(3)
        >>> dense.build((None, 4))
        >>> plain_dense(dense), plain_dense(keras.layers.ReLU())
        (True, False)
    """
    return (
        type(layer) is keras.layers.Dense
        and not getattr(layer, "lora_enabled", False)
        and getattr(layer, "quantization_mode", None) is None
        and layer.built
        and len(layer.kernel.shape) == 2
    )


def dense_outputs_of_moves(dense: Any, values: tf.Tensor, moved_values: tf.Tensor) -> tf.Tensor:
    """The outputs of a [`plain_dense`][rlmetric.step_surrogates.plain_dense] layer for every
    single-unit move of its input:
    ``values`` ``[N, U]`` the drawn input, ``moved_values`` ``[M, N, U]`` each unit's
    alternatives -> ``[M * U * N, D]`` in
    [`single_unit_variants`][rlmetric.step_surrogates.single_unit_variants]' row order. A move adds
    one kernel row to the drawn output (``z + (v' - v) W_i``): ``O(D)`` per row instead of a
    ``U x D`` product.

    Examples:
        >>> import keras, tensorflow as tf
        >>> from rlmetric.step_surrogates import dense_outputs_of_moves
        >>> dense = keras.layers.Dense(1, use_bias=False, kernel_initializer="ones")
        >>> dense.build((None, 2))
        >>> # input (0, 1): unit 0 moved to 1 gives (1, 1) -> 2, unit 1 moved to 0 gives (0, 0) -> 0
        >>> values, moved = tf.constant([[0.0, 1.0]]), tf.constant([[[1.0, 0.0]]])
        >>> dense_outputs_of_moves(dense, values, moved).numpy()
        array([[2.],
               [0.]], dtype=float32)
    """
    kernel = tf.cast(dense.kernel, values.dtype)
    outputs = tf.matmul(values, kernel)  # [N, D]
    delta = tf.transpose(moved_values - values, [0, 2, 1])[..., None]  # [M, U, N, 1]
    outputs = outputs + delta * kernel[None, :, None, :]  # [M, U, N, D]
    if dense.use_bias:
        outputs += tf.cast(dense.bias, values.dtype)
    return tf.reshape(dense.activation(outputs), [-1, kernel.shape[-1]])


def single_unit_variants(levels: tf.Tensor, moved: tf.Tensor) -> tf.Tensor:
    """Every single-unit move of a draw: ``levels`` ``[N, ...units]`` and ``moved``
    ``[M, N, U]`` (each unit's alternative levels, units flattened) -> ``[M * U * N, ...units]``,
    row ``(m, i, n)`` being ``levels[n]`` with unit ``i`` at ``moved[m, n, i]``.

    Examples:
        >>> import tensorflow as tf
        >>> from rlmetric.step_surrogates import single_unit_variants
        >>> single_unit_variants(tf.constant([[0, 1]]), tf.constant([[[1, 0]]])).numpy()
        array([[1, 1],
               [0, 0]], dtype=int32)
    """
    units = moved.shape[-1]
    flat = tf.reshape(levels, [-1, units])  # [N, U]
    one_unit = tf.eye(units, dtype=tf.bool)[None, :, None, :]  # [1, U, 1, U]
    variants = tf.where(one_unit, moved[:, None], flat[None, None])  # [M, U, N, U]
    return tf.reshape(variants, tf.concat([[-1], tf.shape(levels)[1:]], axis=0))


def local_expectation_layer_loss(
    logits: tf.Tensor,
    levels: tf.Tensor,
    objective: tf.Tensor,
    rerun_moves: Callable[[tf.Tensor], tf.Tensor],
    copies: int,
    num_levels: int,
) -> tf.Tensor:
    """The local-expectation surrogate of one step layer: every unit moved to each of its other
    levels with the rest of the draw held (``units x (V - 1)`` variants, evaluated by
    ``rerun_moves``), then
    [`local_expectation_loss`][rlmetric.step_surrogates.local_expectation_loss].

    Args:
        logits: ``[K * B, ...units, V]``, or ``[B, ...units, V]`` shared by the ``K`` copies;
            levels: ``[K * B, ...units]`` of the draw.
        objective: ``[K, B]`` the per-example loss of the draw.
        rerun_moves: ``moved [V - 1, N, U] -> [V - 1, U, K, B]``, the loss with unit ``i`` at
            ``moved[o, n, i]`` and every other unit as drawn (e.g.
            [`single_unit_variants`][rlmetric.step_surrogates.single_unit_variants]
            run through the layers above).

    Examples:
        >>> import tensorflow as tf
        >>> from rlmetric.step_surrogates import local_expectation_layer_loss
        >>> logits = tf.Variable([[[0.0, 0.0]]])  # one binary unit at p = .5, drawn at level 0
        >>> def loss_of_moves(moved):  # [1, N, U] -> [1, U, K, B]: loss 0 once moved to level 1
        ...     return tf.reshape(tf.cast(1 - moved, tf.float32), [1, 1, 1, 1])
        >>> with tf.GradientTape() as tape:
        ...     surrogate = local_expectation_layer_loss(
        ...         logits, tf.constant([[0]]), tf.constant([[1.0]]), loss_of_moves, 1, 2)
        >>> float(surrogate), tape.gradient(surrogate, logits).numpy()  # E[loss] = .5 x 1 + .5 x 0
        (0.5, array([[[ 0.25, -0.25]]], dtype=float32))
    """
    units = int(np.prod(levels.shape[1:]))  # static: the layer's width
    flat = tf.reshape(levels, [-1, units])  # [N, U]
    moved = (flat[None] + tf.range(1, num_levels)[:, None, None]) % num_levels  # [V - 1, N, U]
    moved_objective = tf.stop_gradient(rerun_moves(moved))  # [V - 1, U, K, B]
    moved_objective = tf.transpose(moved_objective, [2, 3, 1, 0])  # [K, B, U, V - 1]
    kept = tf.broadcast_to(objective[:, :, None, None], tf.shape(moved_objective[..., :1]))
    variant_losses = tf.concat([kept, moved_objective], axis=-1)  # offsets 0 .. V - 1
    drawn = tf.reshape(flat, [copies, -1, units, 1])
    probabilities = tf.broadcast_to(
        _logits_by_copy(tf.nn.softmax(logits, axis=-1), tf.shape(drawn)[1]),
        tf.concat([tf.shape(drawn)[:-1], [num_levels]], axis=0),
    )  # [K, B, U, V] (shared logits broadcast)
    offset_levels = (drawn + tf.range(num_levels)) % num_levels  # the level of each offset
    probabilities = tf.gather(probabilities, offset_levels, batch_dims=3)
    return local_expectation_loss(probabilities, variant_losses)
