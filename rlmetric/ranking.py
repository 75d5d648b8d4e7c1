"""Ranking metrics as rewards: NDCG, DCG, MRR, average precision, precision, recall and hit rate
at a cutoff ``k``, scored for ``K`` sampled rankings of every list at once.

Conventions (those of TF-Ranking and KerasRS):

* **labels** ``y_true [B, L]``: the graded relevance (``>= 0``) of each of the ``L`` items of
  each of the ``B`` lists. A label of ``-1`` marks padding, for lists shorter than ``L``: padded
  items take no rank, so the ranks of the real items are counted among the real items only.
* **actions** ``[K, B, L]``: for each sample set and list, the index of the item at each rank
  (``actions[k, b, 0]`` is the top item), a permutation of ``0 .. L-1``. This is what
  [`rlmetric.plackett_luce.PlackettLuce`][rlmetric.plackett_luce.PlackettLuce] samples.
* an item is **relevant** (MRR, MAP, precision, recall, hit rate) when its label is ``>= 1``;
  NDCG and DCG use the graded label through the gain, ``2^rel - 1`` by default (``"linear"``:
  ``rel``), and the discount ``1 / log2(1 + rank)``.
* every list counts once in the mean over lists; a list whose metric is undefined (no relevant
  item, or an all-zero ideal DCG) scores 0, as in scikit-learn's ``ndcg_score`` and KerasRS.

The rewards return the mean over lists, ``[K]``; inside ``strategy.run`` with several replicas,
the mean over the lists of the global batch (the sums and list counts are summed over replicas).
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from rlmetric._distribute import sum_over_replicas
from rlmetric.reward_base import Reward

__all__ = [
    "RankingReward",
    "DCG",
    "NDCG",
    "MRR",
    "AveragePrecision",
    "PrecisionAtK",
    "RecallAtK",
    "HitRate",
    "ranked_labels",
    "by_rank",
    "discount",
    "ALIASES",
    "AT_K",
    "from_alias",
    "PADDING_LABEL",
    "PADDING_LOGIT",
]

#: the label of a padded item (lists shorter than ``L``)
PADDING_LABEL = -1
#: the score given to a padded item: far below any score, yet finite (no NaN in the sums)
PADDING_LOGIT = -1e9
GAINS = ("exponential", "linear")


def invalid_relevance_labels(y_true: Any) -> str:
    """The (first 8) distinct values of ``y_true`` that are not graded relevance labels (finite
    and ``>= 0``, or the padding label), comma-separated; ``""`` when every label is valid."""
    values = np.asarray(y_true, dtype=np.float64)
    bad = ~np.isfinite(values) | ((values < 0) & (values != PADDING_LABEL))
    return ", ".join(repr(v) for v in np.unique(values[bad])[:8].tolist())


def by_rank(values: tf.Tensor, actions: tf.Tensor) -> tf.Tensor:
    """``values [B, L]`` (one per item, or one per rank position) read in the order of each
    ranking or index ``actions [K, B, L]``: ``out[k, b, r] = values[b, actions[k, b, r]]``.

    Examples:
        >>> import tensorflow as tf
        >>> from rlmetric.ranking import by_rank
        >>> by_rank(tf.constant([[10.0, 20.0, 30.0]]), tf.constant([[[2, 0, 1]]])).numpy()
        array([[[30., 10., 20.]]], dtype=float32)
    """
    actions = tf.cast(actions, tf.int32)
    values = tf.convert_to_tensor(values)
    # one gather from the flat [B * L] values (actions [K, B, k] of any length k): broadcasting
    # the values to [K, B, L] first cost more than the gather
    items = tf.shape(values)[-1]
    offsets = tf.range(tf.shape(values)[0]) * items
    return tf.gather(tf.reshape(values, [-1]), actions + offsets[None, :, None])


def discount(ranks: tf.Tensor) -> tf.Tensor:
    """``1 / log2(1 + rank)`` of 1-based ranks (any shape; smooth ranks work too).

    Examples:
        >>> import tensorflow as tf
        >>> from rlmetric.ranking import discount
        >>> discount(tf.constant([1.0, 2.0, 3.0])).numpy().round(4)
        array([1.    , 0.6309, 0.5   ], dtype=float32)
    """
    return tf.math.log(2.0) / tf.math.log1p(tf.cast(ranks, tf.float32))


def ranked_labels(y_true: tf.Tensor, actions: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """The labels in the order of each ranking, and each position's rank among the real items.

    Args:
        y_true: ``[B, L]`` float labels, ``-1`` for padding.
        actions: ``[K, B, L]`` item indices by rank.

    Returns:
        ``labels [K, B, L]`` (``labels[k, b, r]`` is the label of the item at rank ``r``) and
        ``ranks [K, B, L]`` float: the 1-based rank of that position counted over real items
        (padding counts 0 and is skipped), 0 at padded positions.

    Examples:
        >>> import numpy as np
        >>> from rlmetric.ranking import ranked_labels
        >>> labels, ranks = ranked_labels(np.array([[2.0, -1.0, 1.0]]), np.array([[[1, 2, 0]]]))
        >>> labels.numpy().tolist(), ranks.numpy().tolist()  # the padded item takes no rank
        ([[[-1.0, 1.0, 2.0]]], [[[0.0, 1.0, 2.0]]])
    """
    labels = by_rank(tf.cast(y_true, tf.float32), actions)
    valid = tf.cast(labels >= 0.0, tf.float32)
    return labels, tf.math.cumsum(valid, axis=-1) * valid


class RankingReward(Reward):
    """Base class: a metric of each list's ranking, averaged over lists.

    ``__call__(y_true [B, L], actions [K, B, L]) -> [K]``; subclasses implement
    [`per_list`][rlmetric.ranking.RankingReward.per_list] (``[K, B]``). Rewards that are a sum over
    ranks of a rank weight times an
    item gain, ``R = sum_r theta_r rho(pi_r)`` (DCG, NDCG, precision and recall at ``k``), also
    implement [`item_gains`][rlmetric.ranking.RankingReward.item_gains] and
    [`rank_weights`][rlmetric.ranking.RankingReward.rank_weights], which
    [`rlmetric.plackett_luce.PLRank`][rlmetric.plackett_luce.PLRank] needs; ``sums_over_ranks`` says
    which.

    Args:
        k: the cutoff: only the top ``k`` ranks count (``None``: the whole list).
        name: the Keras metric name in the logs.

    Examples:
        >>> import numpy as np
        >>> import tensorflow as tf
        >>> from rlmetric.ranking import RankingReward, ranked_labels
        >>> class TopIsRelevant(RankingReward):  # implement per_list: [K, B]
        ...     default_name = "top_relevant"
        ...     def per_list(self, y_true, actions):
        ...         labels, _ = ranked_labels(y_true, actions)
        ...         return tf.cast(labels[..., 0] >= 1.0, tf.float32)
        >>> TopIsRelevant()(np.array([[0.0, 2.0]]), np.array([[[1, 0]], [[0, 1]]])).numpy()
        array([1., 0.], dtype=float32)
    """

    default_name = "ranking"
    reads = "rankings"
    sums_over_ranks = False

    def __init__(self, k: int | None = None, name: str | None = None) -> None:
        if k is not None and (isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1):
            raise ValueError(
                f"{type(self).__name__}: k must be a positive int (the rank cutoff) or None for "
                f"the whole list; received k={k!r}."
            )
        self.k = None if k is None else int(k)
        self.name = name or (f"{self.default_name}@{k}" if k else self.default_name)

    def _within_k(self, ranks: tf.Tensor) -> tf.Tensor:
        """1.0 where a rank (0 at padding) is a real item within the cutoff."""
        within = ranks > 0.0
        if self.k is not None:
            within &= ranks <= float(self.k)
        return tf.cast(within, tf.float32)

    def _check(self, y_true: tf.Tensor, actions: tf.Tensor) -> None:
        if actions.shape.rank is not None and actions.shape.rank != 3:
            raise ValueError(
                f"Reward {self.name!r} expects actions of shape [K, B, L] (the item index at "
                f"each rank, for K sample sets of B lists); received shape {actions.shape}."
            )
        if y_true.shape.rank is not None and y_true.shape.rank != 2:
            raise ValueError(
                f"Reward {self.name!r} expects labels y_true of shape [B, L] (the relevance of "
                f"the L items of B lists, -1 for padding); received shape {y_true.shape}."
            )
        if (
            y_true.shape.rank is not None
            and actions.shape.rank is not None
            and not y_true.shape.is_compatible_with(actions.shape[1:])
        ):
            raise ValueError(
                f"Reward {self.name!r}: y_true of shape {y_true.shape} does not match actions of "
                f"shape {actions.shape}; y_true must be [B, L] = {actions.shape[1:]}."
            )
        if tf.executing_eagerly():
            # A direct call (the trainer checks labels before training and draws rankings
            # itself): a label of -2 or a repeated index would otherwise give a wrong score.
            self._check_values(np.asarray(y_true), np.asarray(actions))

    def _check_values(self, y_true: np.ndarray, actions: np.ndarray) -> None:
        shown = invalid_relevance_labels(y_true)
        if shown:
            raise ValueError(
                f"Reward {self.name!r}: y_true must hold graded relevance labels >= 0 (and "
                f"{PADDING_LABEL} for padding); received values [{shown}]."
            )
        if actions.size == 0:
            return
        length = actions.shape[-1]
        if not np.issubdtype(actions.dtype, np.integer):
            raise ValueError(
                f"Reward {self.name!r}: actions must be rankings of int item indices; received "
                f"dtype {actions.dtype.name}."
            )
        is_ranking = (np.sort(actions, axis=-1) == np.arange(length)).all(axis=-1)  # [K, B]
        if not is_ranking.all():
            sample_set, row = np.argwhere(~is_ranking)[0]
            raise ValueError(
                f"Reward {self.name!r}: actions must be rankings, each list's item indices "
                f"0..{length - 1} in rank order, each once; sample set {sample_set}, list {row} "
                f"is {actions[sample_set, row][:12].tolist()}."
            )

    def per_list(self, y_true: tf.Tensor, actions: tf.Tensor) -> tf.Tensor:
        """The metric of every list in every sample set: ``[B, L]``, ``[K, B, L]`` -> ``[K, B]``."""
        if not self.sums_over_ranks:
            raise NotImplementedError
        _, ranks = ranked_labels(y_true, actions)
        gains = by_rank(self.item_gains(y_true), actions)
        positions = tf.cast(tf.maximum(ranks - 1.0, 0.0), tf.int32)
        # the weight of each position's rank among the real items: [B, L] by rank
        weights = by_rank(self.rank_weights(y_true), positions)
        return tf.reduce_sum(weights * gains * tf.cast(ranks > 0.0, tf.float32), axis=-1)

    def item_gains(self, y_true: tf.Tensor) -> tf.Tensor:
        """``rho``: each item's gain, ``[B, L]`` -> ``[B, L]`` (0 at padding)."""
        raise NotImplementedError

    def rank_weights(self, y_true: tf.Tensor) -> tf.Tensor:
        """``theta``: the weight of each rank among a list's real items, ``[B, L]`` -> ``[B, L]``
        (0 beyond the cutoff)."""
        raise NotImplementedError

    def _cutoff(self, y_true: tf.Tensor) -> tf.Tensor:
        """``[B, L]``: 1.0 at ranks ``1 .. k`` (all ranks without a cutoff)."""
        ranks = tf.range(1, tf.shape(y_true)[-1] + 1)
        within = ranks <= self.k if self.k is not None else tf.ones_like(ranks, tf.bool)
        return tf.broadcast_to(tf.cast(within, tf.float32)[None], tf.shape(y_true))

    def __call__(self, y_true: tf.Tensor, actions: tf.Tensor) -> tf.Tensor:
        """The mean over lists of [`per_list`][rlmetric.ranking.per_list]: ``[B, L]``, ``[K, B, L]``
        -> ``[K]``."""
        y_true = tf.cast(tf.convert_to_tensor(y_true), tf.float32)
        actions = tf.convert_to_tensor(actions)
        self._check(y_true, actions)
        total = sum_over_replicas(tf.reduce_sum(self.per_list(y_true, actions), axis=-1))
        lists = sum_over_replicas(tf.cast(tf.shape(actions)[1], tf.float32))
        return total / tf.maximum(lists, 1.0)

    def get_config(self) -> dict:
        return {"k": self.k, "name": self.name}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def _relevant(labels: tf.Tensor) -> tf.Tensor:
    return tf.cast(labels >= 1.0, tf.float32)


def _discounts(length: tf.Tensor) -> tf.Tensor:
    """``1 / log2(1 + r)`` for ranks ``r = 1 .. length``."""
    return discount(tf.range(1, length + 1))


@keras.saving.register_keras_serializable(package="rlmetric")
class DCG(RankingReward):
    r"""Discounted cumulative gain at ``k``:

    .. math:: \mathrm{DCG@k} = \sum_{r=1}^{k} \frac{g(\mathrm{rel}_{\pi_r})}{\log_2(1 + r)},
       \qquad g(x) = 2^x - 1 \text{ (or } x \text{ with gain="linear")}

    Equals ``sklearn.metrics.dcg_score(gains, scores, k=k)`` for the ranking the scores sort to.

    Args:
        k: the cutoff (``None``: the whole list).
        gain: ``"exponential"`` (``2^rel - 1``, the default of TF-Ranking and KerasRS) or
            ``"linear"`` (``rel``, scikit-learn's).
        name: the metric name.

    References:
        Jarvelin & Kekalainen (2002), Cumulated gain-based evaluation of IR techniques.

    Examples:
        >>> import numpy as np
        >>> from sklearn.metrics import dcg_score
        >>> from rlmetric.ranking import DCG
        >>> labels, ranking = np.array([[3.0, 0.0, 1.0, 2.0]]), np.array([[[1, 0, 3, 2]]])
        >>> ours = float(DCG(k=3, gain="linear")(labels, ranking)[0])
        >>> scores = np.array([[3.0, 4.0, 1.0, 2.0]])  # sorts to the same ranking
        >>> bool(np.isclose(ours, dcg_score(labels, scores, k=3)))
        True
    """

    default_name = "dcg"
    sums_over_ranks = True

    def __init__(self, k: int | None = None, gain: str = "exponential", name: str | None = None):
        super().__init__(k=k, name=name)
        if gain not in GAINS:
            raise ValueError(
                f"{type(self).__name__}: gain must be one of {list(GAINS)}; received {gain!r}."
            )
        self.gain = gain

    def _gain(self, labels: tf.Tensor) -> tf.Tensor:
        labels = tf.maximum(labels, 0.0)  # padding (-1) gains nothing
        return tf.pow(2.0, labels) - 1.0 if self.gain == "exponential" else labels

    def item_gains(self, y_true):
        return self._gain(tf.cast(y_true, tf.float32))

    def rank_weights(self, y_true):
        return _discounts(tf.shape(y_true)[-1])[None] * self._cutoff(y_true)

    def get_config(self) -> dict:
        return {**super().get_config(), "gain": self.gain}


@keras.saving.register_keras_serializable(package="rlmetric")
class NDCG(DCG):
    r"""Normalized DCG at ``k``: ``DCG@k`` of the ranking over ``DCG@k`` of the ideal ranking
    (items sorted by label). 0 for a list with no positive gain.

    Equals ``sklearn.metrics.ndcg_score`` (given the gains as its ``y_true``) and
    ``keras_rs.metrics.NDCG``.

    Examples:
        >>> import tensorflow as tf
        >>> from rlmetric.ranking import NDCG
        >>> labels = tf.constant([[3.0, 0.0, 1.0, -1.0]])  # the 4th item is padding
        >>> ideal, worst = tf.constant([[[0, 2, 1, 3]]]), tf.constant([[[1, 2, 0, 3]]])
        >>> float(NDCG()(labels, ideal)[0]), round(float(NDCG()(labels, worst)[0]), 4)
        (1.0, 0.5413)

    References:
        Jarvelin & Kekalainen (2002), Cumulated gain-based evaluation of IR techniques.
    """

    default_name = "ndcg"

    def ideal_dcg(self, y_true: tf.Tensor) -> tf.Tensor:
        """``[B, L]`` -> ``[B]``: the DCG at ``k`` of the items sorted by label."""
        y_true = tf.cast(y_true, tf.float32)
        weights = self.rank_weights(y_true)
        num_items = y_true.shape[-1]
        if self.k is not None and num_items is not None and self.k < num_items:
            # only the k best labels weigh: a partial sort (a full one cost ~0.2 ms a batch)
            ideal = tf.math.top_k(y_true, k=self.k).values
            weights = weights[:, : self.k]
        else:
            ideal = tf.sort(y_true, axis=-1, direction="DESCENDING")  # padding (-1) last
        return tf.reduce_sum(weights * self._gain(ideal), axis=-1)

    def item_gains(self, y_true):
        ideal = self.ideal_dcg(y_true)[:, None]
        gains = self._gain(tf.cast(y_true, tf.float32))
        return tf.where(ideal > 0.0, gains / tf.where(ideal > 0.0, ideal, 1.0), 0.0)


@keras.saving.register_keras_serializable(package="rlmetric")
class PrecisionAtK(RankingReward):
    """The fraction of relevant items (label ``>= 1``) among the top ``k``; a list with fewer than
    ``k`` real items divides by its length (as ``keras_rs.metrics.PrecisionAtK``).

    Examples:
        >>> import numpy as np
        >>> from rlmetric.ranking import PrecisionAtK
        >>> labels = np.array([[1.0, 0.0, 1.0, 0.0]])
        >>> float(PrecisionAtK(k=2)(labels, np.array([[[0, 1, 2, 3]]]))[0])
        0.5
    """

    default_name = "precision"
    sums_over_ranks = True

    def item_gains(self, y_true):
        return _relevant(tf.cast(y_true, tf.float32))

    def rank_weights(self, y_true):
        length = tf.reduce_sum(tf.cast(y_true >= 0.0, tf.float32), axis=-1, keepdims=True)
        cutoff = tf.minimum(length, float(self.k)) if self.k is not None else length
        return self._cutoff(y_true) / tf.maximum(cutoff, 1.0)


@keras.saving.register_keras_serializable(package="rlmetric")
class RecallAtK(RankingReward):
    """The fraction of a list's relevant items (label ``>= 1``) that are in the top ``k``.

    Examples:
        >>> import numpy as np
        >>> from rlmetric.ranking import RecallAtK
        >>> labels = np.array([[1.0, 0.0, 1.0, 0.0]])
        >>> float(RecallAtK(k=3)(labels, np.array([[[0, 1, 2, 3]]]))[0])
        1.0
    """

    default_name = "recall"
    sums_over_ranks = True

    def item_gains(self, y_true):
        relevant = _relevant(tf.cast(y_true, tf.float32))
        count = tf.reduce_sum(relevant, axis=-1, keepdims=True)
        return relevant / tf.maximum(count, 1.0)

    def rank_weights(self, y_true):
        return self._cutoff(y_true)


@keras.saving.register_keras_serializable(package="rlmetric")
class MRR(RankingReward):
    """Reciprocal rank of the first relevant item (label ``>= 1``) within the top ``k``; 0 if
    there is none. Its mean over lists is the mean reciprocal rank.

    Examples:
        >>> import numpy as np
        >>> from rlmetric.ranking import MRR
        >>> labels = np.array([[0.0, 1.0, 0.0, 2.0]])
        >>> ranking = np.array([[[0, 2, 1, 3]]])  # the first relevant item at rank 3
        >>> round(float(MRR()(labels, ranking)[0]), 4)
        0.3333
    """

    default_name = "mrr"

    def per_list(self, y_true, actions):
        labels, ranks = ranked_labels(y_true, actions)
        hits = _relevant(labels) * self._within_k(ranks)
        return tf.reduce_max(hits / tf.maximum(ranks, 1.0), axis=-1)


@keras.saving.register_keras_serializable(package="rlmetric")
class AveragePrecision(RankingReward):
    """Average precision at ``k``: the sum of the precision at the rank of every relevant item
    within the top ``k``, over the number of relevant items in the list (as
    ``keras_rs.metrics.MeanAveragePrecision`` and TF-Ranking). Without a cutoff it equals
    ``sklearn.metrics.average_precision_score`` of the list. Its mean over lists is MAP.

    Examples:
        >>> import numpy as np
        >>> from rlmetric.ranking import AveragePrecision
        >>> labels = np.array([[1.0, 0.0, 1.0, 0.0]])
        >>> ranking = np.array([[[0, 1, 2, 3]]])  # precisions 1 and 2/3 at the relevant items
        >>> round(float(AveragePrecision()(labels, ranking)[0]), 4)
        0.8333
    """

    default_name = "map"

    def per_list(self, y_true, actions):
        labels, ranks = ranked_labels(y_true, actions)
        hits = _relevant(labels) * self._within_k(ranks)
        precision = tf.math.cumsum(hits, axis=-1) / tf.maximum(ranks, 1.0)
        relevant = tf.reduce_sum(_relevant(tf.cast(y_true, tf.float32)), axis=-1)[None]
        return tf.reduce_sum(precision * hits, axis=-1) / tf.maximum(relevant, 1.0)


@keras.saving.register_keras_serializable(package="rlmetric")
class HitRate(RankingReward):
    """1 if a relevant item (label ``>= 1``) is in the top ``k``, else 0.

    Examples:
        >>> import numpy as np
        >>> from rlmetric.ranking import HitRate
        >>> labels = np.array([[0.0, 0.0, 1.0, 0.0]])
        >>> rankings = np.array([[[0, 2, 1, 3]], [[0, 1, 3, 2]]])  # K = 2 sets of B = 1 list
        >>> HitRate(k=2)(labels, rankings).numpy()
        array([1., 0.], dtype=float32)
    """

    default_name = "hit_rate"

    def per_list(self, y_true, actions):
        labels, ranks = ranked_labels(y_true, actions)
        return tf.reduce_max(_relevant(labels) * self._within_k(ranks), axis=-1)


def _at(cls: type, k: int | None = None, **kwargs: Any):
    return lambda: cls(k=k, **kwargs)


ALIASES = {
    "ndcg": _at(NDCG),
    "ndcg@5": _at(NDCG, 5),
    "ndcg@10": _at(NDCG, 10),
    "dcg": _at(DCG),
    "dcg@10": _at(DCG, 10),
    "mrr": _at(MRR),
    "mrr@10": _at(MRR, 10),
    "map": _at(AveragePrecision),
    "map@10": _at(AveragePrecision, 10),
    "precision@5": _at(PrecisionAtK, 5),
    "precision@10": _at(PrecisionAtK, 10),
    "recall@10": _at(RecallAtK, 10),
    "hit_rate@10": _at(HitRate, 10),
}

#: the metrics that ``"<metric>@<k>"`` names, for any positive ``k``
#: ([`from_alias`][rlmetric.ranking.from_alias])
AT_K = {
    "ndcg": NDCG,
    "dcg": DCG,
    "mrr": MRR,
    "map": AveragePrecision,
    "precision": PrecisionAtK,
    "recall": RecallAtK,
    "hit_rate": HitRate,
}


def from_alias(identifier: str) -> RankingReward | None:
    """The ranking reward ``"<metric>@<k>"`` names, for a metric of ``AT_K`` and any
    positive ``k``; ``None`` for a string of another form.

    Examples:
        >>> from rlmetric import ranking
        >>> ranking.from_alias("ndcg@3")
        NDCG(k=3, name='ndcg@3', gain='exponential')
    """
    metric, at, cutoff = identifier.lower().partition("@")
    if not at or metric not in AT_K:
        return None
    if not cutoff.isdigit() or int(cutoff) < 1:
        raise ValueError(
            f"Unknown reward {identifier!r}: the cutoff after '@' must be a positive int "
            f"(e.g. '{metric}@5'); received {cutoff!r}."
        )
    return AT_K[metric](k=int(cutoff))
