"""Per-element credit for a reward known only as a function: the reward of each sampled decision
set with one element's decision changed, found by calling the reward on changed sets, batched
along the leading axis ``M`` (as the ``K`` axis of an ordinary call).

``score(y_true [B, ...], sets [M, B, ...]) -> [M]`` is the reward. Decisions are integers in
``[0, V)`` (``V = 2`` for Bernoulli, ``C`` for categorical), and so are labels (the policies'
``format_labels`` make them so). Used by
[`rlmetric.custom_rewards.ProbedReward`][rlmetric.custom_rewards.ProbedReward].
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf

__all__ = [
    "LEVELS",
    "group_ids",
    "exchangeable_local_rewards",
    "sampled_local_rewards",
    "per_example_local_rewards",
    "ordered_gains",
    "probe_exchangeability",
]

Score = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]

#: What a permutation may shuffle without changing the reward: every element of the batch
#: (``"elements"``: pooled F1 or IoU), the examples with the positions inside them kept
#: (``"examples"``: a macro average over the labels of a multi-label batch), or the positions
#: inside each example (``"within_examples"``: a mean over images of a per-image IoU).
LEVELS = ("elements", "examples", "within_examples")


def _flat(actions: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """``[K, B, ...]`` -> ``([K, N] int32, the shape [K, B, ...])``."""
    actions = tf.cast(actions, tf.int32)
    shape = tf.shape(actions)
    return tf.reshape(actions, [shape[0], -1]), shape


def group_ids(level: str, y_true: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """The group of each of the ``N`` elements of ``y_true [B, ...]`` at an exchangeability
    level, and the number of groups: ``([N] int32, G)``. Two elements of one group with the same
    label and decision are interchangeable."""
    shape = tf.shape(y_true)
    batch = shape[0]
    per_example = tf.reduce_prod(shape[1:])
    if level == "elements":
        return tf.zeros([batch * per_example], tf.int32), tf.constant(1)
    if level == "examples":  # the position inside the example
        return tf.tile(tf.range(per_example), [batch]), per_example
    if level == "within_examples":  # the example
        return tf.repeat(tf.range(batch), per_example), batch
    raise ValueError(f"exchangeable must be one of {LEVELS}, True, False or None; got {level!r}.")


def _with_one_changed(flat: tf.Tensor, positions: tf.Tensor, num_values: int) -> tf.Tensor:
    """``flat [K, N]`` decisions and ``positions [K, S]`` -> ``[K, S, V, N]``: set ``(k, s, v)``
    is set ``k`` with element ``positions[k, s]`` set to ``v``."""
    num_elements = tf.shape(flat)[1]
    at = tf.equal(tf.range(num_elements)[None, None, :], positions[:, :, None])  # [K, S, N]
    values = tf.range(num_values, dtype=flat.dtype)[None, None, :, None]
    return tf.where(at[:, :, None, :], values, flat[:, None, None, :])


def _score_sets(score: Score, y_true: tf.Tensor, sets: tf.Tensor, shape: tf.Tensor) -> tf.Tensor:
    """Scores ``sets [..., N]`` reshaped to ``[M, B, ...]``; returns ``[M]`` float32."""
    batch_shape = shape[1:]
    flat_sets = tf.reshape(sets, tf.concat([[-1], batch_shape], axis=0))
    return tf.reshape(tf.cast(score(y_true, flat_sets), tf.float32), [-1])


def exchangeable_local_rewards(
    score: Score,
    y_true: tf.Tensor,
    actions: tf.Tensor,
    num_values: int,
    groups: tf.Tensor,
    num_groups: tf.Tensor,
) -> tf.Tensor:
    """Exact local rewards of a reward that permutations within each group leave unchanged.

    The reward of set ``k`` with element ``i`` changed to ``v`` depends only on ``i``'s group,
    label and current decision: one representative element of each such case is changed, so
    ``G V^2`` cases times ``V`` values are scored per set, whatever the batch size.

    Args:
        score: the reward, ``(y_true [B, ...], sets [M, B, ...]) -> [M]``.
        y_true: ``[B, ...]`` labels in ``[0, V)``.
        actions: ``[K, B, ...]`` decisions in ``[0, V)``.
        num_values: ``V``.
        groups: ``[N]`` the group of each element
            ([`group_ids`][rlmetric._probe_kernels.group_ids]); ``num_groups``: ``G``.

    Returns:
        ``[K, N, V]`` float32: entry ``(k, n, v)`` is the reward of set ``k`` with element ``n``
        (row-major) set to ``v``. Memory: ``O(K G V^3 N)`` for the changed sets.
    """
    flat, shape = _flat(actions)
    num_sets, num_elements = tf.shape(flat)[0], tf.shape(flat)[1]
    labels = tf.reshape(tf.cast(y_true, tf.int32), [-1])
    cases = num_groups * num_values * num_values
    case = ((groups * num_values + labels) * num_values)[None, :] + flat  # [K, N]
    segment = case + tf.range(num_sets)[:, None] * cases
    positions = tf.broadcast_to(tf.range(num_elements)[None, :], tf.shape(flat))
    # an empty case (no element of it) gets the lowest int, then 0: scored, never gathered
    representative = tf.math.unsorted_segment_max(positions, segment, num_sets * cases)
    representative = tf.reshape(tf.maximum(representative, 0), [num_sets, cases])
    sets = _with_one_changed(flat, representative, num_values)  # [K, cases, V, N]
    scores = tf.reshape(_score_sets(score, y_true, sets, shape), [num_sets, cases, num_values])
    return tf.gather(scores, case, batch_dims=1)  # [K, N, V]


def sampled_local_rewards(
    score: Score, y_true: tf.Tensor, actions: tf.Tensor, num_values: int, budget: int
) -> tf.Tensor:
    """Local rewards of ``budget`` elements drawn at random (the same for every set), for a
    reward with no known symmetry; every other element keeps the set's own reward for all its
    values, i.e. gets no credit this step.

    Args:
        score, y_true, actions, num_values: as
        [`exchangeable_local_rewards`][rlmetric._probe_kernels.exchangeable_local_rewards].
        budget: how many elements are changed per step; ``K * budget * V`` sets are scored.

    Returns:
        ``[K, N, V]`` float32, as
        [`exchangeable_local_rewards`][rlmetric._probe_kernels.exchangeable_local_rewards].
    """
    flat, shape = _flat(actions)
    num_sets, num_elements = tf.shape(flat)[0], tf.shape(flat)[1]
    size = tf.minimum(budget, num_elements)
    chosen = tf.argsort(tf.random.uniform([num_elements]))[:size]  # [S]
    positions = tf.broadcast_to(chosen[None, :], [num_sets, size])
    sets = _with_one_changed(flat, positions, num_values)  # [K, S, V, N]
    scores = tf.reshape(_score_sets(score, y_true, sets, shape), [num_sets, size, num_values])
    base = _score_sets(score, y_true, flat, shape)  # [K]
    unchanged = tf.tile(base[:, None, None], [1, 1, num_values])  # [K, 1, V]
    table = tf.concat([scores, unchanged], axis=1)  # [K, S + 1, V]
    slot = tf.tensor_scatter_nd_update(
        tf.fill([num_elements], size), chosen[:, None], tf.range(size)
    )  # [N]: the element's row of the table, S where it was not drawn
    return tf.gather(table, slot, axis=1)


def per_example_local_rewards(
    terms: Score, y_true: tf.Tensor, actions: tf.Tensor, num_values: int
) -> tf.Tensor:
    """Exact local rewards of a mean over examples of per-example terms.

    Changing a decision of example ``b`` changes only ``b``'s term, so each of the ``P``
    positions inside an example is set to each value in every example at once: ``P V`` sets
    per sample set.

    Args:
        terms: ``(y_true [B, ...], sets [M, B, ...]) -> [M, B]`` the per-example terms; the
            reward is their mean over ``B``.
        y_true, actions, num_values: as
        [`exchangeable_local_rewards`][rlmetric._probe_kernels.exchangeable_local_rewards].

    Returns:
        ``[K, N, V]`` float32. Memory ``O(K P^2 V B)``.
    """
    actions = tf.cast(actions, tf.int32)
    shape = tf.shape(actions)
    num_sets, batch = shape[0], shape[1]
    by_example = tf.reshape(actions, [num_sets, batch, -1])  # [K, B, P]
    per_example = tf.shape(by_example)[2]
    at = tf.equal(tf.range(per_example)[:, None], tf.range(per_example)[None, :])  # [P, P]
    values = tf.range(num_values)[None, :, None, None]  # [1, V, 1, 1]
    sets = tf.where(
        at[None, :, None, None, :], values[None], by_example[:, None, None, :, :]
    )  # [K, P, V, B, P]
    flat_sets = tf.reshape(sets, tf.concat([[-1], shape[1:]], axis=0))
    changed = tf.reshape(
        tf.cast(terms(y_true, flat_sets), tf.float32), [num_sets, per_example, num_values, batch]
    )
    base = tf.cast(terms(y_true, actions), tf.float32)  # [K, B]
    size = tf.cast(batch, tf.float32)
    local = (
        tf.reduce_mean(base, axis=1)[:, None, None, None]
        + (changed - base[:, None, None, :]) / size
    )  # [K, P, V, B]
    return tf.reshape(tf.transpose(local, [0, 3, 1, 2]), [num_sets, -1, num_values])


def ordered_gains(
    score: Score, y_true: tf.Tensor, value_probs: tf.Tensor, points: int
) -> tf.Tensor:
    """Coupled gains of any reward, found on nested decision sets.

    The decisions are seen as pairs of an element ``i`` and a value ``c`` (a class; for
    Bernoulli decisions the element itself): the pair is right when ``i``'s decision agrees
    with ``1[y_i = c]``, and its error is ``|1[y_i = c] - p_i(c)|``. For each value, its pairs
    turn wrong one after another in the order of decreasing error, the other decisions at their
    labels: a wrong pair of ``i``'s own class moves ``i`` to its most likely other value, any
    other pair moves ``i`` to ``c``. A pair's gain is the reward lost when it turns wrong, and an
    element's gain is the sum over its pairs. For a mean of per-class Jaccard indices these
    are the Lovasz-softmax weights up to the effect of each move on the other class it touches.

    Each value's sequence is scored on ``points + 1`` nested sets (0, N/points, ..., N pairs
    wrong); a pair's gain is its segment's loss divided by the segment's size (exact when
    ``points >= N``). Negative losses (a reward that rises as a decision turns wrong) give 0.

    Args:
        score: the reward, ``(y_true [B, ...], sets [M, B, ...]) -> [M]``.
        y_true: ``[B, ...]`` labels in ``[0, V)``.
        value_probs: ``[B, ..., V]`` the policy's probability of each value.
        points: the number of segments of each sequence.

    Returns:
        ``[N]`` float32 gains ``>= 0``. ``(points + 1) P`` sets are scored (``P = 1`` for
        Bernoulli decisions, ``C`` for categorical), memory ``O(points P N)``.
    """
    num_values = value_probs.shape[-1] or tf.shape(value_probs)[-1]
    probs = tf.reshape(tf.cast(value_probs, tf.float32), [-1, num_values])  # [N, V]
    labels = tf.reshape(tf.cast(y_true, tf.int32), [-1])
    num_elements = tf.shape(labels)[0]
    own = tf.one_hot(labels, num_values, dtype=probs.dtype)  # [N, V]
    other_value = tf.argmax(probs - 2.0 * own, axis=-1, output_type=tf.int32)  # [N]
    if num_values == 2:  # both pairs of a Bernoulli decision are the element: one sequence
        own, probs = own[:, 1:], probs[:, 1:]
        wrong = (1 - labels)[:, None]  # [N, 1]
    else:
        value_ids = tf.range(num_values)[None, :]
        wrong = tf.where(own > 0, other_value[:, None], value_ids)  # [N, P]
    error = tf.abs(own - probs)  # [N, P]
    order = tf.argsort(-tf.transpose(error), axis=-1, stable=True)  # [P, N]
    rank = tf.argsort(order, axis=-1)  # [P, N]: the inverse permutations
    segments = tf.minimum(points, num_elements)
    cuts = (tf.range(segments + 1) * num_elements) // segments  # [S + 1], strictly increasing
    turned = rank[:, None, :] < cuts[None, :, None]  # [P, S + 1, N]
    sets = tf.where(turned, tf.transpose(wrong)[:, None, :], labels[None, None, :])
    shape = tf.concat([[1], tf.shape(y_true)], axis=0)
    rewards = tf.reshape(_score_sets(score, y_true, sets, shape), [-1, segments + 1])  # [P, S+1]
    widths = tf.cast(cuts[1:] - cuts[:-1], tf.float32)
    loss_per_pair = tf.maximum((rewards[:, :-1] - rewards[:, 1:]) / widths, 0.0)  # [P, S]
    segment = tf.searchsorted(tf.tile(cuts[None, 1:], [tf.shape(rank)[0], 1]), rank, "right")
    return tf.reduce_sum(tf.gather(loss_per_pair, segment, batch_dims=1), axis=0)  # [N]


def _permuted(level: str, y: np.ndarray, actions: np.ndarray, rng: np.random.Generator):
    """``y [B, ...]`` and ``actions [M, B, ...]`` jointly permuted at ``level``."""
    batch = y.shape[0]
    y_rows = y.reshape(batch, -1)
    a_rows = actions.reshape(actions.shape[0], batch, -1)
    if level == "elements":
        order = rng.permutation(y_rows.size)
        y_new = y_rows.reshape(-1)[order]
        a_new = a_rows.reshape(actions.shape[0], -1)[:, order]
    elif level == "examples":
        order = rng.permutation(batch)
        y_new, a_new = y_rows[order], a_rows[:, order]
    else:  # within_examples: each example's own permutation of its positions
        order = np.argsort(rng.random(y_rows.shape), axis=1)
        y_new = np.take_along_axis(y_rows, order, axis=1)
        a_new = np.take_along_axis(a_rows, order[None], axis=2)
    return y_new.reshape(y.shape), a_new.reshape(actions.shape)


def probe_exchangeability(
    score: Callable[[np.ndarray, np.ndarray], np.ndarray],
    y: np.ndarray,
    actions: np.ndarray,
    trials: int = 3,
    seed: int = 0,
) -> str | None:
    """The cheapest level of [`LEVELS`][rlmetric._probe_kernels.LEVELS] at which jointly permuted
    copies of ``y [B, ...]``
    and ``actions [M, B, ...]`` keep every score (``trials`` permutations, relative tolerance
    1e-5), or ``None`` when none does. ``score`` returns ``[M]``."""
    rng = np.random.default_rng(seed)
    base = np.asarray(score(y, actions), np.float64)
    batch = y.shape[0]
    per_example = int(np.prod(y.shape[1:], dtype=np.int64))

    def holds(level: str) -> bool:
        for _ in range(trials):
            scores = np.asarray(score(*_permuted(level, y, actions, rng)), np.float64)
            if not np.allclose(scores, base, rtol=1e-5, atol=1e-6, equal_nan=True):
                return False
        return True

    if holds("elements"):
        return "elements"
    candidates = [("examples", per_example), ("within_examples", batch)]
    for level, _ in sorted(candidates, key=lambda c: c[1]):
        if per_example > 1 and holds(level):
            return level
    return None
