"""Rewards: the metric a model is trained on, scored for ``K`` sets of decisions at once.

A reward is any callable ``reward(y_true, actions) -> [K]`` with ``y_true`` of the action shape
``[B, ...]`` and ``actions`` ``[K, B, ...]``: one score per sample set, higher is better.

The metrics here (F1, F-beta, IoU/Jaccard, Dice, precision, recall, accuracy, MCC) depend on the
decisions only through confusion counts, so they are computed in two vectorized steps that later
estimators and the whole-set evaluation reuse:

* :meth:`CountReward.counts` -> ``[K, G, 4]`` float counts ``(tp, fp, fn, tn)`` per group, where
  the groups are the classes, the labels, or the rows of the batch (see :meth:`CountReward.layout`);
* :meth:`CountReward.from_counts` -> ``[K]`` scores.

Counts add up across batches, which is how :class:`rlmetric.trainer.PolicyGradientTrainer`
reports a metric over a whole evaluation set rather than an average of per-batch scores.

Values equal ``sklearn.metrics`` (``f1_score``, ``fbeta_score``, ``jaccard_score``,
``precision_score``, ``recall_score``, ``accuracy_score``, ``matthews_corrcoef``) called on the
same decisions, with these conventions for Bernoulli decisions:

* one decision per example (``[B]``, ``[B, 1]``) or per pixel (``[B, H, W, 1]``) is a binary
  target: ``average="binary"`` scores the positive class over every element, ``"micro"`` and
  ``"macro"`` pool or average the classes 0 and 1 that occur (scikit-learn on raveled arrays);
* ``[B, L]`` with ``L > 1`` is multi-label: ``"macro"`` averages the ``L`` labels, ``"micro"``
  (and ``"binary"``, which pools every element) sums their counts, ``"samples"`` averages rows.

For categorical decisions (``num_classes`` set) the groups are the classes; ``"macro"`` averages
over the classes present in ``y_true`` or in the decisions, as scikit-learn does by default.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from rlmetric._distribute import global_rows, sum_over_replicas
from rlmetric._inputs import are_class_ids
from rlmetric._registry import resolve

__all__ = [
    "Reward",
    "CountReward",
    "F1",
    "FBeta",
    "IoU",
    "Dice",
    "Precision",
    "Recall",
    "Accuracy",
    "MatthewsCorrCoef",
    "CallableReward",
    "NumpyReward",
    "from_numpy",
    "get",
    "ALIASES",
]

AVERAGES = ("binary", "micro", "macro", "samples")
CLASSES = "classes"  # groups are mutually exclusive classes (one true class per element)
LABELS = "labels"  # groups are independent binary labels, or rows for average="samples"


class Reward:
    """Base class of rewards. ``__call__(y_true [B, ...], actions [K, B, ...]) -> [K]``."""

    name: str = "reward"
    #: False where the reward leaves TensorFlow (``tf.numpy_function``): no XLA.
    xla_compatible: bool = True

    def __call__(self, y_true: tf.Tensor, actions: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {"name": self.name}

    @classmethod
    def from_config(cls, config: dict) -> Reward:
        return cls(**config)


def _safe_divide(numerator: tf.Tensor, denominator: tf.Tensor, zero_division: float) -> tf.Tensor:
    """``numerator / denominator`` where the denominator is positive, else ``zero_division``."""
    defined = denominator > 0
    ratio = numerator / tf.where(defined, denominator, tf.ones_like(denominator))
    return tf.where(defined, ratio, tf.cast(zero_division, ratio.dtype))


class CountReward(Reward):
    """A metric computed from confusion counts ``(tp, fp, fn, tn)``.

    Args:
        average: ``"binary"`` (positive class), ``"micro"`` (pool the counts of all classes or
            labels), ``"macro"`` (unweighted mean over classes or labels) or ``"samples"``
            (mean over the rows of a multi-label batch), as in scikit-learn.
        num_classes: for categorical decisions (class ids), the number of classes ``C``; leave
            ``None`` for Bernoulli decisions. The trainer fills it in from the logits.
        zero_division: the value of a ratio whose denominator is zero (``0.0`` or ``1.0``),
            with scikit-learn's meaning; its default behaves as scikit-learn's default.
        name: the Keras metric name (``"f1"`` gives ``val_f1`` in the logs).
    """

    default_name = "count_reward"
    supported_averages: tuple[str, ...] = AVERAGES

    def __init__(
        self,
        average: str = "binary",
        num_classes: int | None = None,
        zero_division: float = 0.0,
        name: str | None = None,
    ) -> None:
        if average not in self.supported_averages:
            raise ValueError(
                f"{type(self).__name__}: average={average!r} is not supported; expected one of "
                f"{list(self.supported_averages)}."
            )
        if num_classes is not None and (isinstance(num_classes, bool) or int(num_classes) < 2):
            raise ValueError(
                f"{type(self).__name__}: num_classes must be an integer >= 2 (or None for "
                f"Bernoulli decisions); received num_classes={num_classes!r}."
            )
        if zero_division == "warn":
            zero_division = 0.0
        if (
            isinstance(zero_division, bool)
            or not isinstance(zero_division, int | float)
            or (float(zero_division) not in (0.0, 1.0))
        ):
            raise ValueError(
                f"{type(self).__name__}: zero_division must be 0.0 or 1.0 (a NaN reward cannot "
                f"be trained on); received zero_division={zero_division!r}."
            )
        self.average = average
        self.num_classes = None if num_classes is None else int(num_classes)
        self.zero_division = float(zero_division)
        self.name = name or self.default_name

    @property
    def groups_are_rows(self) -> bool:
        """True when :meth:`counts` groups by row (``average="samples"``): such counts do not
        add up across batches, their per-batch scores do (weighted by the number of rows)."""
        return self.average == "samples"

    # -- layout -------------------------------------------------------------------------------
    def layout(self, actions_shape: tf.TensorShape) -> str:
        """``"classes"`` or ``"labels"``: what the groups of :meth:`counts` are, given the static
        shape of the actions ``[K, B, ...]``."""
        actions_shape = tf.TensorShape(actions_shape)
        if self.average == "samples":
            return LABELS
        if self.num_classes is not None or _is_single_target(actions_shape):
            return CLASSES
        return LABELS

    def _check(self, y_true: tf.Tensor, actions: tf.Tensor) -> None:
        actions_shape = actions.shape
        if actions_shape.rank is not None and actions_shape.rank < 2:
            raise ValueError(
                f"Reward {self.name!r} expects actions of shape [K, B, ...] (K sample sets); "
                f"received shape {actions_shape}."
            )
        if (
            y_true.shape.rank is not None
            and actions_shape.rank is not None
            and not y_true.shape.is_compatible_with(actions_shape[1:])
        ):
            raise ValueError(
                f"Reward {self.name!r}: y_true of shape {y_true.shape} does not match actions of "
                f"shape {actions_shape}; y_true must have the action shape {actions_shape[1:]}."
            )
        if self.average == "samples":
            if self.num_classes is not None or _is_single_target(actions_shape):
                raise ValueError(
                    f"Reward {self.name!r}: average='samples' is only defined for multi-label "
                    f"Bernoulli decisions [B, L] with L > 1; received actions of shape "
                    f"{actions_shape}{' with num_classes' if self.num_classes else ''}. "
                    "Use 'binary', 'micro' or 'macro'."
                )
        if self.average == "binary" and self.num_classes is not None and self.num_classes != 2:
            raise ValueError(
                f"Reward {self.name!r}: average='binary' needs 2 classes but num_classes="
                f"{self.num_classes}; use average='macro' or 'micro' for multi-class decisions."
            )
        if tf.executing_eagerly():
            # A direct call (graph callers, the trainer's steps, check values themselves): a
            # label of 2 would otherwise count as more than one true positive (F1 1.33).
            for arg, values in (("y_true", y_true), ("actions", actions)):
                self._check_values(arg, values)

    def _check_values(self, arg: str, values: tf.Tensor) -> None:
        values = np.unique(np.asarray(values))
        if self.num_classes is None:
            expected, num_values = "0 or 1", 2
        else:
            expected, num_values = f"class ids in [0, {self.num_classes})", self.num_classes
        if not are_class_ids(values, num_values):
            raise ValueError(
                f"Reward {self.name!r}: {arg} must hold {expected}; received values "
                f"{values[:8].tolist()}."
            )

    # -- counts -------------------------------------------------------------------------------
    def counts(self, y_true: tf.Tensor, actions: tf.Tensor) -> tf.Tensor:
        """Confusion counts per sample set and group.

        Args:
            y_true: ``[B, ...]`` labels in the action shape (0/1, or class ids).
            actions: ``[K, B, ...]`` decisions.

        Returns:
            float32 ``[K, G, 4]`` holding ``(tp, fp, fn, tn)``: ``G = 2`` (classes 0 and 1) for a
            binary target, ``C`` for categorical, ``L`` for multi-label, ``B`` (rows) for
            ``average="samples"``.
        """
        y_true = tf.convert_to_tensor(y_true)
        actions = tf.convert_to_tensor(actions)
        self._check(y_true, actions)
        if self.num_classes is not None:
            return _categorical_counts(y_true, actions, self.num_classes, by_row=False)
        rank = actions.shape.rank
        if self.average == "samples":
            keep = 2  # [K, B]
        elif _is_single_target(actions.shape):
            return _binary_target_counts(y_true, actions)
        else:
            keep = None  # [K, L]: reduce all but K and the label axis
        return _bernoulli_counts(y_true, actions, rank, keep)

    def from_counts(self, counts: tf.Tensor, layout: str = CLASSES) -> tf.Tensor:
        """Scores from counts ``[..., G, 4]`` -> ``[...]``; ``layout`` as :meth:`layout` says."""
        counts = tf.convert_to_tensor(counts)
        if type(self).group_statistics is CountReward.group_statistics:
            # Pooled averages, whose statistics are the counts themselves, read them directly
            # (what the general path computes too): this runs every training step, where each
            # op saved shows.
            if self.average == "binary" and layout == CLASSES:
                return self.from_statistics(counts[..., 1, :], layout)  # the positive class
            if self.average in ("binary", "micro"):
                return self.from_statistics(tf.reduce_sum(counts, axis=-2), layout)
        group_ids = tf.range(tf.shape(counts)[-2])
        statistics = self.group_statistics(counts, group_ids, layout)
        return self.from_statistics(tf.reduce_sum(statistics, axis=-2), layout)

    def group_statistics(self, counts: tf.Tensor, group_ids: tf.Tensor, layout: str) -> tf.Tensor:
        """Per-group statistics that add up over groups: ``[..., G, 4]`` -> ``[..., G, S]``.

        The reward is :meth:`from_statistics` of their sum over the groups. ``group_ids`` (``[G]``
        or broadcastable to ``[..., G]``) says which group each row of counts belongs to. Changing
        one decision changes at most three groups, so the local-expectation estimator updates
        these sums instead of recomputing every group.
        """
        tp, fp, fn, tn = tf.unstack(counts, num=4, axis=-1)
        if self.average == "micro" or (self.average == "binary" and layout != CLASSES):
            return counts  # pooled counts
        if self.average == "binary":  # the positive class of a two-class layout
            return counts * tf.cast(group_ids == 1, counts.dtype)[..., None]
        scores = self.group_scores(tp, fp, fn, tn)
        if self.average == "macro" and layout == CLASSES:  # classes that occur
            weights = tf.cast(tp + fp + fn > 0, scores.dtype)
        else:
            weights = tf.ones_like(scores)
        return tf.stack([scores * weights, weights], axis=-1)

    def from_statistics(self, statistics: tf.Tensor, layout: str) -> tf.Tensor:
        """The reward from summed :meth:`group_statistics`: ``[..., S]`` -> ``[...]``."""
        if self.average in ("micro", "binary"):
            return self.group_scores(*tf.unstack(statistics, num=4, axis=-1))
        total, weight = tf.unstack(statistics, num=2, axis=-1)
        return _safe_divide(total, weight, self.zero_division)

    @property
    def supports_coupled_gains(self) -> bool:
        """Whether :meth:`coupled_gains` applies: standard confusion counts (not Accuracy's own
        counting), and not row-wise groups of categorical decisions."""
        standard = type(self).counts is CountReward.counts
        return standard and not (self.groups_are_rows and self.num_classes is not None)

    def coupled_gains(self, y_true: tf.Tensor, value_probs: tf.Tensor) -> tf.Tensor:
        """What each element's correct decision is worth when the decisions are drawn coupled.

        The count groups see the decisions as one-vs-rest pairs: element ``i`` and group ``g``
        (a class, a label, or a row for ``average="samples"``) form a pair whose target is
        ``t = 1[label of i is g]`` (for labels and rows: the element's 0/1 label) and whose error is
        ``|t - p_i(g)|``. The coupled draw takes one uniform ``u`` for all pairs of the (global)
        batch: a pair is wrong iff ``u < error``. Each pair keeps its probability of being wrong,
        and the wrong sets are nested in the order of decreasing error. A wrong pair with
        ``t = 1`` moves a true positive of its group to a false negative; with ``t = 0``, a true
        negative to a false positive. The gain of a pair is the reward lost when it turns wrong at
        its place in that order, ``R(worse pairs wrong) - R(worse pairs and this one wrong)``. An
        element's gain is the sum over its pairs. The worst decisions get the gains of a batch
        that is still mostly right. For the Jaccard index (binary, or the mean over classes)
        these are the gradients of the Lovasz extension of the Jaccard loss (Berman et al. 2018),
        the weights of the Lovasz hinge and Lovasz-softmax losses.

        Args:
            y_true: ``[B, ...]`` labels in the action shape.
            value_probs: ``[B, ..., V]`` the policy's probability of each value (``V = 2`` for
                Bernoulli decisions, ``C`` for categorical ones), as
                :meth:`rlmetric.policies.Policy.value_probs` returns them.

        Returns:
            float32 ``[N]`` gains ``>= 0`` of this replica's ``N`` elements (row-major), computed
            on the global batch under ``tf.distribute`` (an all-gather). Cost: two sorts of the
            ``M = N P`` pairs (``P = 2`` for a binary target, ``C`` for classes, 1 for labels and
            rows) and ``O(M S)`` memory for ``S`` statistics per group (at most 5).
        """
        if not self.supports_coupled_gains:
            raise ValueError(
                f"Reward {self.name!r}: coupled gains need standard confusion counts per class, "
                "label or Bernoulli row; use context='mode' for this reward."
            )
        y_true = tf.convert_to_tensor(y_true)
        value_probs = tf.cast(tf.convert_to_tensor(value_probs), tf.float32)
        layout = self.layout(tf.TensorShape([1]).concatenate(y_true.shape))
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
        base = self.counts(y_true, y_true[None])[0]  # [G, 4]: every decision right
        num_groups = tf.shape(base)[0]
        if layout == CLASSES:  # one pair per element and class
            targets = tf.one_hot(labels, num_values)  # [N, P = C]
            pair_probs = probs
            group = tf.broadcast_to(tf.range(num_values)[None], tf.shape(targets))
        else:  # one pair per element: its label (the last axis) or its row
            targets = tf.cast(labels, tf.float32)[:, None]  # [N, 1]
            pair_probs = probs[:, 1:]  # the probability of 1
            element = tf.range(num_elements)
            if self.groups_are_rows:
                group = element // (num_elements // tf.shape(y_true)[0])
            else:
                group = element % num_groups
            group = group[:, None]
        errors = tf.reshape(tf.abs(targets - pair_probs), [-1])  # [M] pairs, element-major
        targets = tf.reshape(targets, [-1])
        group = tf.reshape(group, [-1])
        # a wrong pair moves one count of its group: tp -> fn (target 1) or tn -> fp (target 0)
        cell = tf.where(
            (targets > 0.5)[:, None],
            tf.constant([[-1.0, 0.0, 1.0, 0.0]]),
            tf.constant([[0.0, 1.0, 0.0, -1.0]]),
        )  # [M, 4]
        order = tf.argsort(errors, direction="DESCENDING", stable=True)
        group, cell = tf.gather(group, order), tf.gather(cell, order)  # in the error order
        # Each pair changes its own group's counts only, and the reward is a function of the
        # groups' statistics summed (group_statistics): so the reward after each prefix is
        # the sum of the statistics' changes so far, and only each pair's own group's running
        # counts are needed -- O(M S) memory, not the O(M G 4) of every group's counts.
        by_group = tf.argsort(group, stable=True)  # contiguous groups, error order within
        grouped_cells = tf.gather(cell, by_group)
        running = tf.cumsum(grouped_cells, axis=0, exclusive=True)  # [M, 4]
        grouped = tf.gather(group, by_group)
        position = tf.range(tf.size(grouped))
        first = tf.math.unsorted_segment_min(position, grouped, num_groups)  # [G]
        before = (
            tf.gather(base, grouped) + running - tf.gather(running, tf.gather(first, grouped))
        )  # this pair's group's counts before it turns wrong, [M, 4]
        statistics_change = self.group_statistics(
            (before + grouped_cells)[:, None], grouped[:, None], layout
        ) - self.group_statistics(before[:, None], grouped[:, None], layout)  # [M, 1, S]
        change = tf.scatter_nd(
            by_group[:, None], statistics_change[:, 0], tf.shape(statistics_change[:, 0])
        )  # back to the error order
        total = tf.reduce_sum(
            self.group_statistics(base[None], tf.range(num_groups), layout)[0], axis=0
        )  # [S]: every decision right
        prefix = total[None] + tf.cumsum(change, axis=0)  # [M, S]
        scores = tf.cast(
            self.from_statistics(tf.concat([total[None], prefix], axis=0), layout), tf.float32
        )  # [M + 1]: the reward with the first j pairs of the order wrong
        pair_gains = tf.scatter_nd(order[:, None], scores[:-1] - scores[1:], tf.shape(errors))
        gains = tf.reduce_sum(tf.reshape(pair_gains, [num_elements, -1]), axis=1)
        gains = tf.maximum(gains, 0.0)  # count metrics never gain from a wrong decision
        if distributed:
            per_row = num_elements // total_rows
            gains = gains[offset * per_row : (offset + local_rows) * per_row]
        return gains

    def local_rewards(self, y_true: tf.Tensor, actions: tf.Tensor) -> tf.Tensor:
        """The reward of every sample set with one element's decision replaced by each value.

        Args:
            y_true: ``[B, ...]`` labels in the action shape.
            actions: ``[K, B, ...]`` decisions.

        Returns:
            ``[K, N, V]``: entry ``(k, n, v)`` is the reward of sample set ``k`` with element
            ``n`` (of the ``N`` elements of ``[B, ...]``, row-major) set to ``v``, the other
            decisions unchanged; ``V`` is 2 for Bernoulli decisions and ``C`` for categorical.

        A change touches at most three groups' counts (the true, old and new class; or the
        element's label or row), and its effect depends only on the group, the label, the old
        and the new value. So the rewards are tabulated once per sample set for every such case
        (``C^3`` classes cases, or ``8 G`` label/row cases) and gathered for the elements:
        ``O(K * N * V)`` memory and time beyond the counts.
        """
        y_true = tf.convert_to_tensor(y_true)
        actions = tf.convert_to_tensor(actions)
        layout = self.layout(actions.shape)
        if self.groups_are_rows and self.num_classes is not None:
            raise ValueError(
                f"Reward {self.name!r}: local rewards are not available for row-wise rewards of "
                "categorical decisions."
            )
        counts = self.counts(y_true, actions)  # [K, G, 4]
        if not self.groups_are_rows:  # classes and labels: counts of the global batch
            counts = sum_over_replicas(counts)
        num_groups = tf.shape(counts)[1]
        statistics = self.group_statistics(counts, tf.range(num_groups), layout)  # [K, G, S]
        base = tf.reduce_sum(statistics, axis=1)  # [K, S]
        if self.groups_are_rows:  # rows are local; their summed statistics are global
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
            if self.groups_are_rows:
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
            self.group_statistics(old_counts + delta[None], slots, layout)
            - tf.gather(statistics, slots, axis=1)
        ) * tf.cast(active, statistics.dtype)[None, :, :, None]
        table = self.from_statistics(base[:, None] + tf.reduce_sum(change, axis=2), layout)
        indices = element_case[..., None] + tf.range(num_values)  # [K, N, V]
        return tf.gather(
            table, tf.broadcast_to(indices, [num_sets, num_elements, num_values]), batch_dims=1
        )

    def group_scores(self, tp: tf.Tensor, fp: tf.Tensor, fn: tf.Tensor, tn: tf.Tensor) -> tf.Tensor:
        """The metric of each group from its counts, each ``[K, G]`` -> ``[K, G]``."""
        raise NotImplementedError

    def __call__(self, y_true: tf.Tensor, actions: tf.Tensor) -> tf.Tensor:
        """Scores ``K`` decision sets: ``y_true [B, ...]``, ``actions [K, B, ...]`` -> ``[K]``.

        Inside ``strategy.run`` with several replicas, the score is that of the global batch:
        the counts (or, for row-wise averages, the row statistics) are summed over replicas.
        """
        actions = tf.convert_to_tensor(actions)
        layout = self.layout(actions.shape)
        counts = self.counts(y_true, actions)
        if self.groups_are_rows:
            group_ids = tf.range(tf.shape(counts)[1])
            statistics = tf.reduce_sum(self.group_statistics(counts, group_ids, layout), axis=1)
            return self.from_statistics(sum_over_replicas(statistics), layout)
        return self.from_counts(sum_over_replicas(counts), layout)

    def get_config(self) -> dict:
        return {
            "average": self.average,
            "num_classes": self.num_classes,
            "zero_division": self.zero_division,
            "name": self.name,
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def _is_single_target(actions_shape: tf.TensorShape) -> bool:
    """One binary decision per example or pixel: actions ``[K, B]`` or ``[K, B, ..., 1]``."""
    actions_shape = tf.TensorShape(actions_shape)
    rank = actions_shape.rank
    return rank is not None and (rank == 2 or actions_shape[-1] == 1)


def _binary_target_counts(y_true: tf.Tensor, actions: tf.Tensor) -> tf.Tensor:
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


def _bernoulli_counts(
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


def _categorical_counts(
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


@keras.saving.register_keras_serializable(package="rlmetric")
class FBeta(CountReward):
    """F-beta score ``(1 + b^2) tp / ((1 + b^2) tp + b^2 fn + fp)`` (``fbeta_score``)."""

    default_name = "fbeta"

    def __init__(
        self,
        beta: float = 1.0,
        average: str = "binary",
        num_classes: int | None = None,
        zero_division: float = 0.0,
        name: str | None = None,
    ) -> None:
        if not isinstance(beta, int | float) or not beta > 0 or not math.isfinite(beta):
            raise ValueError(f"FBeta: beta must be a positive finite number; received {beta!r}.")
        self.beta = float(beta)
        super().__init__(average, num_classes, zero_division, name)

    def group_scores(self, tp, fp, fn, tn):
        beta2 = self.beta**2
        numerator = (1.0 + beta2) * tp
        return _safe_divide(numerator, numerator + beta2 * fn + fp, self.zero_division)

    def get_config(self) -> dict:
        return {"beta": self.beta, **super().get_config()}


@keras.saving.register_keras_serializable(package="rlmetric")
class F1(FBeta):
    """F1 score ``2 tp / (2 tp + fp + fn)`` (``f1_score``).

    Examples:
        One score per decision set: labels ``[B]``, decisions ``[K, B]``.

        >>> import tensorflow as tf
        >>> from sklearn.metrics import f1_score
        >>> from rlmetric import rewards
        >>> y_true = tf.constant([1, 0, 1, 1])
        >>> actions = tf.constant([[1, 0, 0, 1], [1, 1, 1, 1]])
        >>> print(rewards.F1()(y_true, actions).numpy().round(4))
        [0.8    0.8571]
        >>> round(f1_score([1, 0, 1, 1], [1, 1, 1, 1]), 4)
        0.8571
    """

    default_name = "f1"

    def __init__(
        self,
        average: str = "binary",
        num_classes: int | None = None,
        zero_division: float = 0.0,
        name: str | None = None,
    ) -> None:
        super().__init__(1.0, average, num_classes, zero_division, name)

    def get_config(self) -> dict:
        config = super().get_config()
        config.pop("beta")
        return config


@keras.saving.register_keras_serializable(package="rlmetric")
class Dice(F1):
    """Dice coefficient, ``2 |A n B| / (|A| + |B|)``: the same value as F1 on the same counts."""

    default_name = "dice"


@keras.saving.register_keras_serializable(package="rlmetric")
class IoU(CountReward):
    """Intersection over union (Jaccard index) ``tp / (tp + fp + fn)`` (``jaccard_score``).

    Examples:
        The mean IoU over 3 classes of per-pixel class ids ``[B, H, W]``:

        >>> import tensorflow as tf
        >>> from rlmetric import rewards
        >>> y_true = tf.constant([[[0, 1], [2, 2]]])
        >>> actions = tf.constant([[[[0, 1], [2, 0]]]])  # K = 1 set: one pixel wrong
        >>> miou = rewards.IoU(average="macro", num_classes=3)
        >>> round(float(miou(y_true, actions)[0]), 4)  # (1/2 + 1 + 1/2) / 3
        0.6667
    """

    default_name = "iou"

    def group_scores(self, tp, fp, fn, tn):
        return _safe_divide(tp, tp + fp + fn, self.zero_division)


@keras.saving.register_keras_serializable(package="rlmetric")
class Precision(CountReward):
    """Precision ``tp / (tp + fp)`` (``precision_score``)."""

    default_name = "precision"

    def group_scores(self, tp, fp, fn, tn):
        return _safe_divide(tp, tp + fp, self.zero_division)


@keras.saving.register_keras_serializable(package="rlmetric")
class Recall(CountReward):
    """Recall ``tp / (tp + fn)`` (``recall_score``)."""

    default_name = "recall"

    def group_scores(self, tp, fp, fn, tn):
        return _safe_divide(tp, tp + fn, self.zero_division)


@keras.saving.register_keras_serializable(package="rlmetric")
class Accuracy(CountReward):
    """Fraction of correct decisions (``accuracy_score``).

    Args:
        subset: ``False`` scores every element (scikit-learn on raveled arrays, pixel accuracy);
            ``True`` scores a row only if all its decisions are right (scikit-learn's
            ``accuracy_score`` on multi-label ``[B, L]`` arrays).
        num_classes: ``C`` for categorical decisions, else ``None``.
    """

    default_name = "accuracy"
    supported_averages = ("micro",)

    def __init__(
        self, subset: bool = False, num_classes: int | None = None, name: str | None = None
    ) -> None:
        self.subset = bool(subset)
        super().__init__("micro", num_classes, 0.0, name)

    @property
    def groups_are_rows(self) -> bool:
        return self.subset

    def layout(self, actions_shape: tf.TensorShape) -> str:
        return LABELS if self.subset or self.num_classes is None else CLASSES

    def counts(self, y_true: tf.Tensor, actions: tf.Tensor) -> tf.Tensor:
        """``[K, G, 4]``: per-row counts with ``subset=True``, else per class or label."""
        actions = tf.convert_to_tensor(actions)
        y_true = tf.convert_to_tensor(y_true)
        self._check(y_true, actions)
        if self.subset:
            if self.num_classes is not None:
                return _categorical_counts(y_true, actions, self.num_classes, by_row=True)
            return _bernoulli_counts(y_true, actions, actions.shape.rank, keep_rows=2)
        if self.num_classes is not None:
            return _categorical_counts(y_true, actions, self.num_classes, by_row=False)
        return _bernoulli_counts(y_true, actions, actions.shape.rank, keep_rows=None)

    def group_statistics(self, counts, group_ids, layout):
        tp, fp, fn, tn = tf.unstack(counts, num=4, axis=-1)
        if self.subset:  # rows with no wrong decision
            return tf.stack([tf.cast(fp + fn == 0, tp.dtype), tf.ones_like(tp)], axis=-1)
        if layout == CLASSES:  # every element is a true member of exactly one class
            return tf.stack([tp, tp + fn], axis=-1)
        return tf.stack([tp + tn, tp + fp + fn + tn], axis=-1)

    def from_statistics(self, statistics, layout):
        correct, total = tf.unstack(statistics, num=2, axis=-1)
        return _safe_divide(correct, total, 0.0)

    def get_config(self) -> dict:
        return {"subset": self.subset, "num_classes": self.num_classes, "name": self.name}


@keras.saving.register_keras_serializable(package="rlmetric")
class MatthewsCorrCoef(CountReward):
    """Matthews correlation coefficient (``matthews_corrcoef``), in ``[-1, 1]``.

    Bernoulli decisions are pooled into one binary problem (scikit-learn on raveled arrays);
    categorical decisions use the multi-class form. An undefined value (a constant prediction or
    a constant truth) is 0, as in scikit-learn. Computed in float64: the numerator is a
    difference of products of counts that float32 cannot resolve on large batches.
    """

    default_name = "mcc"
    supported_averages = ("micro",)

    def __init__(self, num_classes: int | None = None, name: str | None = None) -> None:
        super().__init__("micro", num_classes, 0.0, name)

    def layout(self, actions_shape: tf.TensorShape) -> str:
        single = self.num_classes is not None or _is_single_target(actions_shape)
        return CLASSES if single else LABELS

    def group_statistics(self, counts, group_ids, layout):
        counts = tf.cast(counts, tf.float64)
        if layout != CLASSES:
            return counts  # pooled into one binary problem
        tp, fp, fn, _ = tf.unstack(counts, num=4, axis=-1)
        true_count, predicted_count = tp + fn, tp + fp
        return tf.stack(
            [
                tp,
                true_count,
                predicted_count * true_count,
                predicted_count**2,
                true_count**2,
            ],
            axis=-1,
        )

    def from_statistics(self, statistics, layout):
        statistics = tf.cast(statistics, tf.float64)
        if layout != CLASSES:  # the classes 1 and 0 of the pooled binary problem
            tp, fp, fn, tn = tf.unstack(statistics, num=4, axis=-1)
            correct, total = tp + tn, tp + fp + fn + tn
            true_1, predicted_1, true_0, predicted_0 = tp + fn, tp + fp, tn + fp, tn + fn
            cross = predicted_1 * true_1 + predicted_0 * true_0
            predicted_squares = predicted_1**2 + predicted_0**2
            true_squares = true_1**2 + true_0**2
        else:
            correct, total, cross, predicted_squares, true_squares = tf.unstack(
                statistics, num=5, axis=-1
            )
        covariance = correct * total - cross
        denominator = tf.sqrt((total**2 - predicted_squares) * (total**2 - true_squares))
        return tf.cast(_safe_divide(covariance, denominator, 0.0), tf.float32)

    def get_config(self) -> dict:
        return {"num_classes": self.num_classes, "name": self.name}


@keras.saving.register_keras_serializable(package="rlmetric")
class CallableReward(Reward):
    """Wraps a TensorFlow function ``fn(y_true [B, ...], actions [K, B, ...]) -> [K]``.

    Saved by reference, as Keras saves custom loss functions: loading finds ``fn`` in its module
    if that is importable, else by its name in ``custom_objects`` (or registered with
    ``keras.saving.register_keras_serializable``).
    """

    def __init__(self, fn: Callable[[tf.Tensor, tf.Tensor], tf.Tensor], name: str | None = None):
        if not callable(fn):
            raise TypeError(f"reward must be callable; received {fn!r}.")
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "reward")

    def __call__(self, y_true: tf.Tensor, actions: tf.Tensor) -> tf.Tensor:
        return self.fn(y_true, actions)

    def get_config(self) -> dict:
        return {"fn": keras.saving.serialize_keras_object(self.fn), "name": self.name}

    @classmethod
    def from_config(cls, config: dict) -> CallableReward:
        try:
            fn = keras.saving.deserialize_keras_object(config["fn"])
        except (TypeError, ValueError) as error:
            fn_name = config["fn"].get("config") if isinstance(config["fn"], dict) else None
            raise TypeError(
                f"The reward function {fn_name!r} is not known here: load with "
                f"custom_objects={{{fn_name!r}: {fn_name}}} (as for a custom Keras loss), or "
                "register it with @keras.saving.register_keras_serializable()."
            ) from error
        return cls(fn, config.get("name"))


class NumpyReward(Reward):
    """Scores each of the ``K`` decision sets with a Python function ``fn(y_true, y_pred)``.

    Runs through ``tf.numpy_function``: slower than the TensorFlow rewards (a Python call per
    sample set and step, and a host round trip), and not compatible with XLA
    (``jit_compile=True``). Arrays reach ``fn`` as scikit-learn expects them: ``[B, L]`` multi-label
    decisions stay 2-D, every other shape is raveled to 1-D.
    """

    xla_compatible = False

    def __init__(self, fn: Callable[[np.ndarray, np.ndarray], float], name: str | None = None):
        if not callable(fn):
            raise TypeError(f"rewards.from_numpy expects a callable; received {fn!r}.")
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "reward")

    def _score_all(self, y_true: np.ndarray, actions: np.ndarray) -> np.ndarray:
        multilabel = actions.ndim == 3 and actions.shape[-1] > 1
        if not multilabel:
            y_true = y_true.reshape(-1)
            actions = actions.reshape(actions.shape[0], -1)
        return np.asarray([self.fn(y_true, sample) for sample in actions], dtype=np.float32)

    def __call__(self, y_true: tf.Tensor, actions: tf.Tensor) -> tf.Tensor:
        actions = tf.convert_to_tensor(actions)
        scores = tf.numpy_function(
            self._score_all, [tf.convert_to_tensor(y_true), actions], tf.float32, stateful=False
        )
        return tf.reshape(scores, tf.shape(actions)[:1])

    def get_config(self) -> dict:
        raise TypeError(
            f"The reward {self.name!r} wraps a Python function (rewards.from_numpy) and cannot be "
            "serialized; save the wrapped Keras model (trainer.model.save(...)) instead."
        )


def from_numpy(
    fn: Callable[[np.ndarray, np.ndarray], float], name: str | None = None
) -> NumpyReward:
    """Wraps a black-box ``fn(y_true, y_pred) -> float`` (e.g. ``sklearn.metrics.f1_score``).

    Slower than the built-in rewards and not usable with ``jit_compile=True``.
    """
    return NumpyReward(fn, name)


ALIASES: dict[str, Callable[[], Reward]] = {
    "f1": F1,
    "macro_f1": lambda: F1(average="macro", name="macro_f1"),
    "micro_f1": lambda: F1(average="micro", name="micro_f1"),
    "f2": lambda: FBeta(beta=2.0, name="f2"),
    "iou": IoU,
    "jaccard": lambda: IoU(name="jaccard"),
    "miou": lambda: IoU(average="macro", name="miou"),
    "dice": Dice,
    "precision": Precision,
    "recall": Recall,
    "accuracy": Accuracy,
    "mcc": MatthewsCorrCoef,
    "matthews_corrcoef": lambda: MatthewsCorrCoef(name="matthews_corrcoef"),
}


def get(identifier: Any) -> Reward:
    """A reward from an alias (see ``ALIASES``), a Reward, a config dict, or a TF callable
    ``fn(y_true [B, ...], actions [K, B, ...]) -> [K]``."""
    if isinstance(identifier, keras.metrics.Metric):
        raise TypeError(
            f"{type(identifier).__name__} is a Keras metric, not a reward: rewards score sampled "
            "decision sets, reward(y_true [B, ...], actions [K, B, ...]) -> [K]. Pass a "
            "rlmetric.rewards object or alias (e.g. 'precision'); to track a Keras metric of "
            "the outputs, compile the wrapped model with it (trainer.model.compile(metrics=...))."
        )
    if callable(identifier) and getattr(identifier, "__module__", "").startswith("sklearn"):
        raise TypeError(
            f"{getattr(identifier, '__name__', identifier)!r} is a scikit-learn function of "
            "NumPy arrays, which a TensorFlow step cannot call directly: wrap it with "
            "rlmetric.rewards.from_numpy(fn), or use the built-in reward (e.g. 'f1')."
        )
    if callable(identifier) and not isinstance(identifier, Reward | type):
        return CallableReward(identifier)
    from rlmetric import ranking  # (imports this module: the ranking aliases join here)

    return resolve(identifier, {**ALIASES, **ranking.ALIASES}, Reward, "reward")
