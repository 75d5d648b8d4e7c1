"""The count kernels of [`rlmetric.rewards.CountReward`][rlmetric.rewards.CountReward]: confusion
counts of ``K`` decision
sets, and what each decision is worth to the reward (local rewards, coupled gains).

The functions take the reward object for its ``counts``, ``group_statistics`` and
``from_statistics``;
[`CountReward.local_rewards`][rlmetric._count_kernels.CountReward.local_rewards] (used by the
local-expectation and
best-response estimators) and
[`CountReward.coupled_gains`][rlmetric._count_kernels.CountReward.coupled_gains] (the coupled best
response)
document them and call them here.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from rlmetric._distribute import global_rows, sum_over_replicas

AVERAGES = ("binary", "micro", "macro", "samples")
CLASSES = "classes"  # groups are mutually exclusive classes (one true class per element)
LABELS = "labels"  # groups are independent binary labels, or rows for average="samples"


def safe_divide(numerator: tf.Tensor, denominator: tf.Tensor, zero_division: float) -> tf.Tensor:
    """``numerator / denominator`` where the denominator is positive, else ``zero_division``."""
    defined = denominator > 0
    ratio = numerator / tf.where(defined, denominator, tf.ones_like(denominator))
    return tf.where(defined, ratio, tf.cast(zero_division, ratio.dtype))


def is_single_target(actions_shape: tf.TensorShape) -> bool:
    """One binary decision per example or pixel: actions ``[K, B]`` or ``[K, B, ..., 1]``."""
    actions_shape = tf.TensorShape(actions_shape)
    rank = actions_shape.rank
    return rank is not None and (rank == 2 or actions_shape[-1] == 1)


def binary_target_counts(y_true: tf.Tensor, actions: tf.Tensor) -> tf.Tensor:
    """Counts of the classes 0 and 1 of a pooled binary target: ``[K, B, ...]`` -> ``[K, 2, 4]``."""
    num_elements = tf.size(y_true)
    actions = tf.reshape(tf.cast(actions, tf.float32), [-1, num_elements])  # [K, N]
    y_true = tf.cast(tf.reshape(y_true, [num_elements, 1]), tf.float32)  # [N, 1]
    # tp and the predicted positives of all K sets in one [K, N] x [N, 2] product
    tp, predicted = tf.unstack(
        tf.matmul(actions, tf.concat([y_true, tf.ones_like(y_true)], 1)), 2, 1
    )
    positives = tf.reduce_sum(y_true)
    fp = predicted - tp
    fn = positives - tp
    tn = tf.cast(num_elements, tf.float32) - predicted - fn
    positive_class = tf.stack([tp, fp, fn, tn], axis=-1)
    negative_class = tf.stack([tn, fn, fp, tp], axis=-1)
    return tf.stack([negative_class, positive_class], axis=1)


def bernoulli_counts(
    y_true: tf.Tensor, actions: tf.Tensor, rank: int, keep_rows: int | None
) -> tf.Tensor:
    """Positive-class counts per label (``keep_rows=None``) or per row: -> ``[K, G, 4]``."""
    actions = tf.cast(actions, tf.float32)
    y_true = tf.cast(y_true, tf.float32)
    if keep_rows is None:
        axes = list(range(1, rank - 1))  # keep K and the label axis
    else:
        axes = list(range(2, rank))  # keep K and B
    tp = tf.reduce_sum(actions * y_true, axis=axes)
    predicted = tf.reduce_sum(actions, axis=axes)
    positives = tf.reduce_sum(y_true[None] * tf.ones_like(actions[:1]), axis=axes)
    group_size = tf.cast(tf.size(y_true) // tf.size(positives), tf.float32)
    fp = predicted - tp
    fn = positives - tp
    tn = group_size - tp - fp - fn
    return tf.stack([tp, fp, fn, tn], axis=-1)


def categorical_counts(
    y_true: tf.Tensor, actions: tf.Tensor, num_classes: int, by_row: bool
) -> tf.Tensor:
    """Per-class counts of class-id decisions: ``[K, B, ...]`` -> ``[K, C, 4]``.

    With ``by_row`` the groups are the rows instead: ``[K, B, 4]`` counts of correct (tp) and
    wrong (fp, fn) elements of each row.
    """
    actions = tf.cast(actions, tf.int32)
    y_true = tf.cast(y_true, tf.int32)
    rank = actions.shape.rank
    if by_row:
        correct = tf.cast(tf.equal(actions, y_true), tf.float32)
        axes = list(range(2, rank))
        tp = tf.reduce_sum(correct, axis=axes) if axes else correct
        size = tf.cast(tf.size(y_true) // tf.shape(y_true)[0], tf.float32)
        wrong = size - tp
        return tf.stack([tp, wrong, wrong, tf.zeros_like(tp)], axis=-1)
    axes = list(range(1, rank))
    predicted_one_hot = tf.one_hot(actions, num_classes, dtype=tf.float32)  # [K, B, ..., C]
    true_one_hot = tf.one_hot(y_true, num_classes, dtype=tf.float32)  # [B, ..., C]
    tp = tf.reduce_sum(predicted_one_hot * true_one_hot, axis=axes)  # [K, C]
    predicted = tf.reduce_sum(predicted_one_hot, axis=axes)
    positives = tf.reduce_sum(true_one_hot, axis=list(range(rank - 1)))[None]
    total = tf.cast(tf.size(y_true), tf.float32)
    fp = predicted - tp
    fn = positives - tp
    tn = total - tp - fp - fn
    return tf.stack([tp, fp, fn, tn], axis=-1)


# the change of (tp, fp, fn, tn) when a pair with target 1 / target 0 turns wrong (lists: a
# tensor made at import would start TensorFlow before a multi-worker strategy can be set up)
_WRONG_ONE = [[-1.0, 0.0, 1.0, 0.0]]
_WRONG_ZERO = [[0.0, 1.0, 0.0, -1.0]]


def _pairs_by_group(errors, layout, reward, num_groups, y_true):
    """``[G, P]``: the pairs of each group (row ``g``: group ``g``'s), in decreasing error (ties
    by index), by one sort per group: the pairs of a group are every ``C``-th (classes) or
    ``G``-th (labels) pair, or a row's contiguous pairs."""
    if layout == CLASSES or not reward.groups_are_rows:  # pair = index * G + group
        by_group = tf.transpose(tf.reshape(errors, [-1, num_groups]))  # [G, M / G]
        index = tf.argsort(by_group, axis=-1, direction="DESCENDING", stable=True)
        return index * num_groups + tf.range(num_groups)[:, None]
    by_row = tf.reshape(errors, [tf.shape(y_true)[0], -1])  # rows: pair = row * R + index
    index = tf.argsort(by_row, axis=-1, direction="DESCENDING", stable=True)
    return tf.range(tf.shape(by_row)[0])[:, None] * tf.shape(by_row)[1] + index


def _statistics_changes(reward, layout, base, targets, pairs):
    """``[G, P, S]``: the change of its group's statistics when each pair turns wrong, for the
    pairs ``[G, P]`` of each group (every group has ``P`` pairs) in the order they turn wrong
    within the group, from the counts ``base`` ``[G, 4]`` of every decision right."""
    pair_targets = tf.gather(targets, pairs)  # [G, P]
    # the wrong pairs of its group before each pair: those with target 1 and those with 0
    ones = tf.cumsum(pair_targets, axis=-1, exclusive=True)
    zeros = tf.cast(tf.range(tf.shape(pairs)[1]), ones.dtype)[None] - ones
    wrong_one, wrong_zero = tf.constant(_WRONG_ONE), tf.constant(_WRONG_ZERO)
    before = base[:, None] + ones[..., None] * wrong_one + zeros[..., None] * wrong_zero
    cell = tf.where(pair_targets[..., None] > 0.5, wrong_one, wrong_zero)
    groups = tf.range(tf.shape(pairs)[0])[:, None]  # [G, 1]
    return reward.group_statistics(before + cell, groups, layout) - reward.group_statistics(
        before, groups, layout
    )


def coupled_gains(reward: Any, y_true: tf.Tensor, value_probs: tf.Tensor) -> tf.Tensor:
    """[`rlmetric.rewards.CountReward.coupled_gains`][rlmetric.rewards.CountReward.coupled_gains]
    (see there): ``[B, ...]`` labels and
    ``[B, ..., V]`` value probabilities -> ``[N]`` gains."""
    if not reward.supports_coupled_gains:
        raise ValueError(
            f"Reward {reward.name!r}: coupled gains need standard confusion counts per class, "
            "label or Bernoulli row; use context='mode' for this reward."
        )
    y_true = tf.convert_to_tensor(y_true)
    value_probs = tf.cast(tf.convert_to_tensor(value_probs), tf.float32)
    layout = reward.layout(tf.TensorShape([1]).concatenate(y_true.shape))
    local_rows = tf.shape(y_true)[0]
    replica = tf.distribute.get_replica_context()
    distributed = replica is not None and replica.num_replicas_in_sync > 1
    if distributed:  # the order and the counts are those of the global batch
        total_rows, offset = global_rows(replica, local_rows)
        y_true = replica.all_gather(y_true, axis=0)
        value_probs = replica.all_gather(value_probs, axis=0)
    labels = tf.reshape(tf.cast(y_true, tf.int32), [-1])  # [N]
    num_elements = tf.size(labels)
    num_values = tf.shape(value_probs)[-1]
    probs = tf.reshape(value_probs, [num_elements, num_values])
    base = reward.counts(y_true, y_true[None])[0]  # [G, 4]: every decision right
    num_groups = tf.shape(base)[0]
    if layout == CLASSES:  # one pair per element and class
        targets = tf.one_hot(labels, num_values)  # [N, P = C]
        pair_probs = probs
        group = tf.broadcast_to(tf.range(num_values)[None], tf.shape(targets))
    else:  # one pair per element: its label (the last axis) or its row
        targets = tf.cast(labels, tf.float32)[:, None]  # [N, 1]
        pair_probs = probs[:, 1:]  # the probability of 1
        element = tf.range(num_elements)
        if reward.groups_are_rows:
            group = element // (num_elements // tf.shape(y_true)[0])
        else:
            group = element % num_groups
        group = group[:, None]
    errors = tf.reshape(tf.abs(targets - pair_probs), [-1])  # [M] pairs, element-major
    targets = tf.reshape(targets, [-1])
    group = tf.reshape(group, [-1])
    total = tf.reduce_sum(
        reward.group_statistics(base[None], tf.range(num_groups), layout)[0], axis=0
    )  # [S]: every decision right

    def separable_gains():
        # A macro average with fixed weights is a constant times the sum of the groups'
        # scores: a pair's gain is its own group's score change, whatever the other groups'
        # pairs did before it. Only the order within each group matters: a sort per group,
        # not of all the pairs.
        pairs = _pairs_by_group(errors, layout, reward, num_groups, y_true)  # [G, P]
        change = _statistics_changes(reward, layout, base, targets, pairs)
        # statistics (weighted score, weight): the reward is their ratio, the weight fixed
        gains = -tf.math.divide_no_nan(tf.reshape(change[..., 0], [-1]), total[1])
        return tf.gather(gains, tf.math.invert_permutation(tf.reshape(pairs, [-1])))

    def ordered_gains():
        # the reward after each prefix of the order of all pairs
        order = tf.argsort(errors, direction="DESCENDING", stable=True)
        by_group = tf.argsort(tf.gather(group, order), stable=True)  # error order within
        pairs = tf.gather(order, by_group)  # every group has the same number of pairs
        change = _statistics_changes(
            reward, layout, base, targets, tf.reshape(pairs, [num_groups, -1])
        )
        change = tf.reshape(change, [tf.size(pairs), -1])  # [M, S] in the group order
        # back to the error order: a gather by the inverse permutation (TensorFlow's
        # scatter_nd took several times as long on CPU)
        change = tf.gather(change, tf.math.invert_permutation(by_group))
        prefix = total[None] + tf.cumsum(change, axis=0)  # [M, S]
        scores = tf.cast(
            reward.from_statistics(tf.concat([total[None], prefix], axis=0), layout), tf.float32
        )  # [M + 1]: the reward with the first j pairs of the order wrong
        return tf.gather(scores[:-1] - scores[1:], tf.math.invert_permutation(order))

    if reward.average in ("micro", "binary"):  # a ratio of pooled counts: not separable
        pair_gains = ordered_gains()
    elif layout != CLASSES:  # labels and rows: every group weighs 1 throughout
        pair_gains = separable_gains()
    else:  # a class absent from the labels starts to weigh at its first false positive
        every_class = tf.reduce_all(base[:, 0] + base[:, 2] > 0)
        pair_gains = tf.cond(every_class, separable_gains, ordered_gains)
    gains = tf.reduce_sum(tf.reshape(pair_gains, [num_elements, -1]), axis=1)
    gains = tf.maximum(gains, 0.0)  # count metrics never gain from a wrong decision
    if distributed:
        per_row = num_elements // total_rows
        gains = gains[offset * per_row : (offset + local_rows) * per_row]
    return gains


def local_rewards(reward: Any, y_true: tf.Tensor, actions: tf.Tensor) -> tf.Tensor:
    """[`rlmetric.rewards.CountReward.local_rewards`][rlmetric.rewards.CountReward.local_rewards]
    (see there): ``[B, ...]`` labels and
    ``[K, B, ...]`` decisions -> ``[K, N, V]``."""
    y_true = tf.convert_to_tensor(y_true)
    actions = tf.convert_to_tensor(actions)
    layout = reward.layout(actions.shape)
    if reward.groups_are_rows and reward.num_classes is not None:
        raise ValueError(
            f"Reward {reward.name!r}: local rewards are not available for row-wise rewards of "
            "categorical decisions."
        )
    counts = reward.counts(y_true, actions)  # [K, G, 4]
    if not reward.groups_are_rows:  # classes and labels: counts of the global batch
        counts = sum_over_replicas(counts)
    num_groups = tf.shape(counts)[1]
    statistics = reward.group_statistics(counts, tf.range(num_groups), layout)  # [K, G, S]
    base = tf.reduce_sum(statistics, axis=1)  # [K, S]
    if reward.groups_are_rows:  # rows are local; their summed statistics are global
        base = sum_over_replicas(base)
    num_sets = tf.shape(actions)[0]
    labels = tf.reshape(tf.cast(y_true, tf.int32), [1, -1])  # [1, N]
    before = tf.reshape(tf.cast(actions, tf.int32), [num_sets, -1])  # [K, N]
    num_elements = tf.shape(before)[1]

    if layout == CLASSES:  # cases (label, old, new) over C classes; slots: those classes
        num_values = num_groups
        cases = tf.reshape(tf.range(num_values**3), [-1, 1])
        label_case = cases // (num_values * num_values)
        old_case = cases // num_values % num_values
        new_case = cases % num_values
        slots = tf.concat([label_case, old_case, new_case], axis=1)  # [T, 3] group ids
        active = tf.concat(
            [
                tf.ones_like(label_case, tf.bool),
                old_case != label_case,
                (new_case != label_case) & (new_case != old_case),
            ],
            axis=1,
        )
        is_true, was_predicted, is_predicted = (
            slots == label_case,
            slots == old_case,
            slots == new_case,
        )
        element_case = (labels * num_values + before) * num_values  # [K, N], + new value
    else:  # cases (group, label, old, new) with binary values; one slot: the group
        num_values = 2
        cases = tf.reshape(tf.range(num_groups * 8), [-1, 1])
        slots = cases // 8
        label_case, old_case, new_case = cases // 4 % 2, cases // 2 % 2, cases % 2
        active = tf.ones_like(slots, tf.bool)
        is_true, was_predicted, is_predicted = label_case == 1, old_case == 1, new_case == 1
        element = tf.range(num_elements)[None]
        if reward.groups_are_rows:
            group = element // (num_elements // tf.shape(y_true)[0])
        else:
            group = element % num_groups  # the label axis is the last one
        element_case = ((group * 2 + labels) * 2 + before) * 2

    def confusion_cell(truth, predicted):  # one-hot over (tp, fp, fn, tn)
        index = (1 - tf.cast(truth, tf.int32)) + 2 * (1 - tf.cast(predicted, tf.int32))
        return tf.one_hot(index, 4, dtype=counts.dtype)

    delta = confusion_cell(is_true, is_predicted) - confusion_cell(is_true, was_predicted)
    old_counts = tf.gather(counts, slots, axis=1)  # [K, T, slots, 4]
    change = (
        reward.group_statistics(old_counts + delta[None], slots, layout)
        - tf.gather(statistics, slots, axis=1)
    ) * tf.cast(active, statistics.dtype)[None, :, :, None]
    table = reward.from_statistics(base[:, None] + tf.reduce_sum(change, axis=2), layout)
    indices = element_case[..., None] + tf.range(num_values)  # [K, N, V]
    return tf.gather(
        table, tf.broadcast_to(indices, [num_sets, num_elements, num_values]), batch_dims=1
    )
