"""The reward protocol and the rewards computed from confusion counts.

[`Reward`][rlmetric.reward_base.Reward] is the protocol every reward follows;
[`CountReward`][rlmetric.reward_base.CountReward] turns ``K`` decision
sets into confusion counts per group and a score, the machinery the count metrics of
[`rlmetric.rewards`][rlmetric.rewards] share (their kernels are in ``rlmetric._count_kernels``).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from rlmetric._count_kernels import (
    AVERAGES,
    CLASSES,
    LABELS,
    bernoulli_counts,
    binary_target_counts,
    categorical_counts,
    coupled_gains,
    is_single_target,
    local_rewards,
    safe_divide,
)
from rlmetric._distribute import sum_over_replicas
from rlmetric._inputs import are_class_ids

__all__ = ["Reward", "CountReward", "AVERAGES", "CLASSES", "LABELS"]


class Reward:
    """Base class of rewards. ``__call__(y_true [B, ...], actions [K, B, ...]) -> [K]``.

    Examples:
        >>> import tensorflow as tf
        >>> from rlmetric.rewards import Reward
        >>> class HitsOfClassOne(Reward):  # a reward is any [B, ...], [K, B, ...] -> [K] callable
        ...     name = "hits"
        ...     def __call__(self, y_true, actions):
        ...         hits = tf.cast((actions == 1) & (y_true[None] == 1), tf.float32)
        ...         return tf.reduce_mean(hits, axis=1)
        >>> HitsOfClassOne()(tf.constant([1, 0]), tf.constant([[1, 1], [0, 0]])).numpy()
        array([0.5, 0. ], dtype=float32)
    """

    name: str = "reward"
    #: False where the reward leaves TensorFlow (``tf.numpy_function``): no XLA.
    xla_compatible: bool = True
    #: What the reward reads as actions: ``"decisions"`` (0/1 or class ids per element),
    #: ``"rankings"`` (the item index at each rank) or ``None`` (anything a policy draws). The
    #: trainer refuses a policy whose
    #: [`rlmetric.policies.Policy.draws`][rlmetric.policies.Policy.draws] is another kind.
    reads: str | None = None

    def __call__(self, y_true: tf.Tensor, actions: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {"name": self.name}

    @classmethod
    def from_config(cls, config: dict) -> Reward:
        return cls(**config)


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

    Examples:
        >>> import tensorflow as tf
        >>> from rlmetric.rewards import CountReward
        >>> class TruePositiveRate(CountReward):  # a count metric needs only its group scores
        ...     default_name = "tpr"
        ...     def group_scores(self, tp, fp, fn, tn):
        ...         return tp / tf.maximum(tp + fn, 1.0)
        >>> reward = TruePositiveRate()
        >>> reward.counts(tf.constant([1, 0, 1]), tf.constant([[1, 1, 0]])).numpy()  # [K, G, 4]
        array([[[0., 1., 1., 1.],
                [1., 1., 1., 0.]]], dtype=float32)
        >>> float(reward(tf.constant([1, 0, 1]), tf.constant([[1, 1, 0]]))[0])
        0.5
    """

    default_name = "count_reward"
    reads = "decisions"
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
        """True when [`counts`][rlmetric.rewards.CountReward.counts] groups by row
        (``average="samples"``): such counts do not
        add up across batches, their per-batch scores do (weighted by the number of rows)."""
        return self.average == "samples"

    # -- layout -------------------------------------------------------------------------------
    def layout(self, actions_shape: tf.TensorShape) -> str:
        """``"classes"`` or ``"labels"``: what the groups of
        [`counts`][rlmetric.rewards.CountReward.counts] are, given the static
        shape of the actions ``[K, B, ...]``."""
        actions_shape = tf.TensorShape(actions_shape)
        if self.average == "samples":
            return LABELS
        if self.num_classes is not None or is_single_target(actions_shape):
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
            if self.num_classes is not None or is_single_target(actions_shape):
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
            return categorical_counts(y_true, actions, self.num_classes, by_row=False)
        rank = actions.shape.rank
        if self.average == "samples":
            keep = 2  # [K, B]
        elif is_single_target(actions.shape):
            return binary_target_counts(y_true, actions)
        else:
            keep = None  # [K, L]: reduce all but K and the label axis
        return bernoulli_counts(y_true, actions, rank, keep)

    def from_counts(self, counts: tf.Tensor, layout: str = CLASSES) -> tf.Tensor:
        """Scores from counts ``[..., G, 4]`` -> ``[...]``; ``layout`` as
        [`layout`][rlmetric.rewards.CountReward.layout] says."""
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

        The reward is [`from_statistics`][rlmetric.rewards.CountReward.from_statistics] of their sum
        over the groups. ``group_ids`` (``[G]``
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
        """The reward from summed
        [`group_statistics`][rlmetric.rewards.CountReward.group_statistics]: ``[..., S]`` ->
        ``[...]``."""
        if self.average in ("micro", "binary"):
            return self.group_scores(*tf.unstack(statistics, num=4, axis=-1))
        total, weight = tf.unstack(statistics, num=2, axis=-1)
        return safe_divide(total, weight, self.zero_division)

    @property
    def supports_coupled_gains(self) -> bool:
        """Whether [`coupled_gains`][rlmetric.rewards.CountReward.coupled_gains] applies: standard
        confusion counts (not Accuracy's own
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
                [`rlmetric.policies.Policy.value_probs`][rlmetric.policies.Policy.value_probs]
                returns them.

        Returns:
            float32 ``[N]`` gains ``>= 0`` of this replica's ``N`` elements (row-major), computed
            on the global batch under ``tf.distribute`` (an all-gather). Cost: for a macro or
            samples average whose groups all weigh throughout (every class occurs in the
            labels), a pair's gain is its own group's change, so one sort of each group's
            pairs; otherwise two sorts of the ``M = N P`` pairs (``P = 2`` for a binary
            target, ``C`` for classes, 1 for labels and rows). ``O(M S)`` memory for ``S``
            statistics per group (at most 5).
        """
        return coupled_gains(self, y_true, value_probs)

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
        return local_rewards(self, y_true, actions)

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
