"""Differentiable ranking surrogates, the losses a ranking model is trained on today: RankNet's
pairwise logistic loss, ListNet's softmax cross-entropy, ApproxNDCG and LambdaLoss with NDCG
weights (LambdaRank).

Each is a pure function ``loss(y_true [B, L], scores [B, L]) -> [B]`` (one value per list) and a
Keras loss class around it with ``get_config``, the mean over lists as Keras reduces. Labels
follow [`rlmetric.ranking`][rlmetric.ranking]: graded relevance ``>= 0``, ``-1`` for padding (padded
items take
no part); a list without a positive label contributes 0.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from rlmetric.ranking import DCG, NDCG, PADDING_LOGIT, discount

__all__ = [
    "listnet",
    "pairwise_logistic",
    "approx_ndcg",
    "lambda_loss",
    "ListNet",
    "PairwiseLogistic",
    "ApproxNDCG",
    "LambdaLoss",
]


def _prepare(y_true, scores):
    y_true = tf.cast(tf.convert_to_tensor(y_true), tf.float32)
    scores = tf.cast(tf.convert_to_tensor(scores), tf.float32)
    if scores.shape.rank == 3 and scores.shape[-1] == 1:
        scores = scores[..., 0]
    return y_true, scores, y_true >= 0.0


def _pairs(y_true, valid):
    """``[B, L, L]`` float: 1 where item ``i`` is more relevant than item ``j``, both real."""
    both = valid[:, :, None] & valid[:, None, :]
    return tf.cast(both & (y_true[:, :, None] > y_true[:, None, :]), tf.float32)


def _gains(y_true):
    """``2^y - 1`` per item, 0 at padding ([`rlmetric.ranking.DCG`][rlmetric.ranking.DCG]'s
    gains)."""
    return DCG().item_gains(y_true)


def _ideal_dcg(y_true, k=None):
    return NDCG(k=k).ideal_dcg(y_true)


def listnet(y_true: tf.Tensor, scores: tf.Tensor) -> tf.Tensor:
    r"""ListNet's top-one softmax cross-entropy per list: ``[B, L], [B, L] -> [B]``.

    .. math:: \ell = -\sum_i \frac{y_i}{\sum_j y_j} \log \operatorname{softmax}(s)_i

    References:
        Cao, Qin, Liu, Tsai & Li (2007), Learning to rank: from pairwise approach to listwise
        approach.

    Examples:
        >>> import tensorflow as tf
        >>> from rlmetric.ranking_losses import listnet
        >>> [round(v, 4) for v in listnet([[1.0, 0.0, -1.0]], [[0.0, 0.0, 5.0]]).numpy().tolist()]
        [0.6931]
    """
    y_true, scores, valid = _prepare(y_true, scores)
    scores = tf.where(valid, scores, PADDING_LOGIT)
    target = tf.maximum(y_true, 0.0)
    target /= tf.maximum(tf.reduce_sum(target, axis=-1, keepdims=True), 1e-12)
    return -tf.reduce_sum(target * tf.nn.log_softmax(scores, axis=-1), axis=-1)


def pairwise_logistic(y_true: tf.Tensor, scores: tf.Tensor) -> tf.Tensor:
    r"""RankNet's pairwise logistic loss, the mean over a list's ordered pairs ``y_i > y_j`` of
    ``log(1 + exp(-(s_i - s_j)))``: ``[B, L], [B, L] -> [B]`` (0 for a list without pairs).

    References:
        Burges et al. (2005), Learning to rank using gradient descent.

    Examples:
        >>> from rlmetric.ranking_losses import pairwise_logistic
        >>> labels = [[2.0, 0.0, 1.0]]
        >>> float(pairwise_logistic(labels, [[3.0, 0.0, 1.0]])[0]) < float(
        ...     pairwise_logistic(labels, [[0.0, 3.0, 1.0]])[0])  # the right order costs less
        True
    """
    y_true, scores, valid = _prepare(y_true, scores)
    pairs = _pairs(y_true, valid)
    losses = tf.nn.softplus(-(scores[:, :, None] - scores[:, None, :]))
    count = tf.reduce_sum(pairs, axis=[1, 2])
    return tf.reduce_sum(pairs * losses, axis=[1, 2]) / tf.maximum(count, 1.0)


def approx_ndcg(y_true: tf.Tensor, scores: tf.Tensor, alpha: float = 10.0) -> tf.Tensor:
    r"""Minus ApproxNDCG per list, ``[B, L], [B, L] -> [B]``: NDCG with each item's rank replaced
    by the smooth ``1 + sum_{j != i} sigmoid(alpha (s_j - s_i))`` (gains ``2^y - 1``).

    References:
        Qin, Liu & Li (2010), A general approximation framework for direct optimization of
        information retrieval measures.

    Examples:
        >>> from rlmetric.ranking_losses import approx_ndcg
        >>> scores = [[9.0, 0.0, 4.0]]  # the ideal order, well separated: -NDCG = -1
        >>> round(float(approx_ndcg([[2.0, 0.0, 1.0]], scores)[0]), 4)
        -1.0
    """
    y_true, scores, valid = _prepare(y_true, scores)
    others = tf.cast(valid[:, None, :], tf.float32) * (1.0 - tf.eye(tf.shape(scores)[-1]))
    ranks = 1.0 + tf.reduce_sum(
        others * tf.sigmoid(alpha * (scores[:, None, :] - scores[:, :, None])), axis=-1
    )
    dcg = tf.reduce_sum(
        tf.cast(valid, tf.float32) * _gains(y_true) * discount(ranks),
        axis=-1,
    )
    ideal = _ideal_dcg(y_true)
    return -tf.where(ideal > 0.0, dcg / tf.where(ideal > 0.0, ideal, 1.0), 0.0)


def lambda_loss(y_true: tf.Tensor, scores: tf.Tensor, k: int | None = None) -> tf.Tensor:
    r"""LambdaRank as a LambdaLoss: the pairwise logistic loss of every pair ``y_i > y_j``
    weighted by ``|Delta NDCG_ij|``, the change of NDCG@k if ``i`` and ``j`` swapped places in
    the ranking by the current scores; summed per list, ``[B, L], [B, L] -> [B]``.

    .. math:: \ell = \sum_{y_i > y_j} \frac{|g_i - g_j| \, |D(r_i) - D(r_j)|}{\mathrm{IDCG@k}}
       \log(1 + e^{-(s_i - s_j)}), \qquad D(r) = \frac{1[r \le k]}{\log_2(1 + r)}

    References:
        Burges, Ragno & Le (2006), Learning to rank with nonsmooth cost functions (LambdaRank).
        Wang, Li, Golbandi, Bendersky & Najork (2018), The LambdaLoss framework for ranking
        metric optimization.

    Examples:
        >>> from rlmetric.ranking_losses import lambda_loss
        >>> float(lambda_loss([[2.0, 0.0, 1.0]], [[0.0, 3.0, 1.0]])[0]) > 0.0  # misordered pairs
        True
    """
    y_true, scores, valid = _prepare(y_true, scores)
    masked = tf.where(valid, tf.stop_gradient(scores), PADDING_LOGIT)
    order = tf.math.top_k(masked, k=tf.shape(scores)[-1]).indices
    ranks = tf.cast(tf.argsort(order, axis=-1) + 1, tf.float32)  # rank of each item, 1-based
    discounts = discount(ranks)
    if k is not None:
        discounts *= tf.cast(ranks <= k, tf.float32)
    gains = _gains(y_true)
    ideal = _ideal_dcg(y_true, k)
    weights = tf.abs(gains[:, :, None] - gains[:, None, :]) * tf.abs(
        discounts[:, :, None] - discounts[:, None, :]
    )
    weights /= tf.where(ideal > 0.0, ideal, 1.0)[:, None, None]
    losses = tf.nn.softplus(-(scores[:, :, None] - scores[:, None, :]))
    return tf.reduce_sum(_pairs(y_true, valid) * weights * losses, axis=[1, 2])


class _ListLoss(keras.losses.Loss):
    def __init__(self, name: str, **kwargs):
        super().__init__(name=name, **kwargs)

    def get_config(self) -> dict:
        config = super().get_config()
        return {"name": config["name"], "reduction": config["reduction"]}


@keras.saving.register_keras_serializable(package="rlmetric")
class ListNet(_ListLoss):
    """Keras loss of [`listnet`][rlmetric.ranking_losses.listnet] (labels ``[B, L]``, ``-1``
    padding; scores ``[B, L]``).

    Examples:
        >>> from rlmetric.ranking_losses import ListNet
        >>> loss = ListNet()
        >>> labels = [[2.0, 0.0, -1.0]]  # the third item is padding
        >>> float(loss(labels, [[5.0, 0.0, 0.0]])) < float(loss(labels, [[0.0, 5.0, 0.0]]))
        True
    """

    def __init__(self, name: str = "listnet", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return listnet(y_true, y_pred)


@keras.saving.register_keras_serializable(package="rlmetric")
class PairwiseLogistic(_ListLoss):
    """Keras loss of [`pairwise_logistic`][rlmetric.ranking_losses.pairwise_logistic] (RankNet).

    Examples:
        >>> from rlmetric.ranking_losses import PairwiseLogistic
        >>> round(float(PairwiseLogistic()([[1.0, 0.0]], [[0.0, 0.0]])), 4)  # log 2 for a tie
        0.6931
    """

    def __init__(self, name: str = "pairwise_logistic", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return pairwise_logistic(y_true, y_pred)


@keras.saving.register_keras_serializable(package="rlmetric")
class ApproxNDCG(_ListLoss):
    """Keras loss of [`approx_ndcg`][rlmetric.ranking_losses.approx_ndcg]; ``alpha`` sets how sharp
    the smooth ranks are.

    Examples:
        >>> from rlmetric.ranking_losses import ApproxNDCG
        >>> round(float(ApproxNDCG()([[2.0, 0.0, 1.0]], [[9.0, 0.0, 4.0]])), 4)  # minus NDCG, ideal
        -1.0
    """

    def __init__(self, alpha: float = 10.0, name: str = "approx_ndcg", **kwargs):
        super().__init__(name=name, **kwargs)
        self.alpha = float(alpha)

    def call(self, y_true, y_pred):
        return approx_ndcg(y_true, y_pred, self.alpha)

    def get_config(self) -> dict:
        return {**super().get_config(), "alpha": self.alpha}


@keras.saving.register_keras_serializable(package="rlmetric")
class LambdaLoss(_ListLoss):
    """Keras loss of [`lambda_loss`][rlmetric.ranking_losses.lambda_loss] (LambdaRank's NDCG@k
    weights; ``k=None``: all ranks).

    Examples:
        >>> from rlmetric.ranking_losses import LambdaLoss
        >>> loss, labels = LambdaLoss(k=2), [[2.0, 0.0, 1.0]]
        >>> float(loss(labels, [[3.0, 0.0, 1.0]])) < float(loss(labels, [[0.0, 3.0, 1.0]]))
        True
    """

    def __init__(self, k: int | None = None, name: str = "lambda_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.k = None if k is None else int(k)

    def call(self, y_true, y_pred):
        return lambda_loss(y_true, y_pred, self.k)

    def get_config(self) -> dict:
        return {**super().get_config(), "k": self.k}
