"""Ranking rewards against scikit-learn and KerasRS on randomized lists, padding and edge cases
included."""

import itertools

import numpy as np
import pytest
import tensorflow as tf
from sklearn.metrics import average_precision_score, dcg_score, ndcg_score

from rlmetric import ranking, rewards

K, B, L = 3, 5, 7


def _case(seed, padded=True, max_label=4):
    """Labels [B, L] (some lists padded with -1, one all-zero list) and K rankings [K, B, L]."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, max_label + 1, size=(B, L)).astype("float32")
    y[1] = 0.0  # a list without any relevant item
    if padded:
        y[2, 4:] = -1.0  # a list of 4 items
        y[3, 6:] = -1.0
    actions = np.stack([[rng.permutation(L) for _ in range(B)] for _ in range(K)]).astype("int32")
    return y, actions


def _scores_of(permutation):
    """Scores that sort to ``permutation`` (the item at rank 0 gets the highest)."""
    scores = np.empty(len(permutation))
    scores[permutation] = len(permutation) - np.arange(len(permutation))
    return scores


def _real(y_row, permutation):
    """The list's real items and the scores of the permutation restricted to them."""
    keep = y_row >= 0
    return y_row[keep], _scores_of(permutation)[keep]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("k", [None, 1, 3, 20])
@pytest.mark.parametrize("gain", ["exponential", "linear"])
def test_ndcg_and_dcg_equal_scikit_learn(seed, k, gain):
    y, actions = _case(seed)
    to_gain = (lambda r: 2.0**r - 1.0) if gain == "exponential" else (lambda r: r)
    for cls, reference in ((ranking.NDCG, ndcg_score), (ranking.DCG, dcg_score)):
        got = cls(k=k, gain=gain)(y, actions).numpy()
        expected = [
            np.mean(
                [
                    reference([to_gain(t)], [s], k=k)
                    for t, s in (_real(y[b], actions[i, b]) for b in range(B))
                ]
            )
            for i in range(K)
        ]
        np.testing.assert_allclose(got, expected, atol=1e-5, err_msg=cls.__name__)


def _numpy_metrics(y_row, permutation, k):
    """MRR, AP, precision, recall and hit rate at k of one list, by their definitions."""
    labels, scores = _real(y_row, permutation)
    order = np.argsort(-scores)
    relevant = labels[order] >= 1
    cut = relevant[: k or len(relevant)]
    ranks = np.arange(1, len(cut) + 1)
    total = relevant.sum()
    return {
        "mrr": (1.0 / ranks[cut][0]) if cut.any() else 0.0,
        "map": (np.cumsum(cut) / ranks)[cut].sum() / total if total else 0.0,
        "precision": cut.sum() / len(cut),
        "recall": cut.sum() / total if total else 0.0,
        "hit_rate": float(cut.any()),
    }


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("k", [None, 1, 3, 20])
def test_binary_relevance_metrics_equal_their_definitions(seed, k):
    y, actions = _case(seed)
    classes = {
        "mrr": ranking.MRR,
        "map": ranking.AveragePrecision,
        "precision": ranking.PrecisionAtK,
        "recall": ranking.RecallAtK,
        "hit_rate": ranking.HitRate,
    }
    for name, cls in classes.items():
        got = cls(k=k)(y, actions).numpy()
        expected = [
            np.mean([_numpy_metrics(y[b], actions[i, b], k)[name] for b in range(B)])
            for i in range(K)
        ]
        np.testing.assert_allclose(got, expected, atol=1e-6, err_msg=name)


def test_average_precision_without_cutoff_equals_scikit_learn():
    y, actions = _case(7, padded=False, max_label=1)
    y[1, 0] = 1.0  # scikit-learn's AP is undefined without a positive
    got = ranking.AveragePrecision()(y, actions).numpy()
    expected = [
        np.mean([average_precision_score(y[b], _scores_of(actions[i, b])) for b in range(B)])
        for i in range(K)
    ]
    np.testing.assert_allclose(got, expected, atol=1e-6)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("k", [None, 3, 20])
def test_rewards_equal_keras_rs(seed, k):
    keras_rs = pytest.importorskip("keras_rs", reason="KerasRS needs Python >= 3.11")
    y, actions = _case(seed)
    pairs = {
        ranking.NDCG: keras_rs.metrics.NDCG,
        ranking.DCG: keras_rs.metrics.DCG,
        ranking.MRR: keras_rs.metrics.MeanReciprocalRank,
        ranking.AveragePrecision: keras_rs.metrics.MeanAveragePrecision,
        ranking.PrecisionAtK: keras_rs.metrics.PrecisionAtK,
        ranking.RecallAtK: keras_rs.metrics.RecallAtK,
    }
    for ours, theirs in pairs.items():
        for i in range(K):
            scores = np.stack([_scores_of(actions[i, b]) for b in range(B)]).astype("float32")
            expected = float(theirs(k=k)(y, scores))
            got = float(ours(k=k)(y, actions[i : i + 1])[0])
            assert abs(got - expected) < 1e-6, (ours.__name__, k, got, expected)


def test_padding_takes_no_rank_and_all_zero_lists_score_zero():
    y = np.array([[0.0, 2.0, -1.0, -1.0], [0.0, 0.0, 0.0, -1.0]], "float32")
    # padding first: the relevant item is still the second real item
    actions = np.array([[[2, 3, 0, 1], [3, 0, 1, 2]]], "int32")
    assert float(ranking.MRR()(y[:1], actions[:, :1])[0]) == pytest.approx(0.5)
    assert float(ranking.NDCG()(y[:1], actions[:, :1])[0]) == pytest.approx(1 / np.log2(3))
    for cls in (ranking.NDCG, ranking.MRR, ranking.AveragePrecision, ranking.RecallAtK):
        assert float(cls()(y[1:], actions[:, 1:])[0]) == 0.0, cls.__name__


def test_sums_over_ranks_agree_with_item_gains_and_rank_weights():
    """The PL-Rank contract: per_list = sum_r theta_r rho(pi_r) when padding ranks last."""
    y, _ = _case(3)
    rng = np.random.default_rng(0)

    # padding last in every ranking
    def padding_last(row):
        return np.concatenate([rng.permutation(np.flatnonzero(row >= 0)), np.flatnonzero(row < 0)])

    actions = np.stack([[padding_last(r) for r in y] for _ in range(K)]).astype("int32")
    for reward in (ranking.NDCG(5), ranking.DCG(), ranking.PrecisionAtK(3), ranking.RecallAtK(2)):
        gains = reward.item_gains(y).numpy()
        weights = reward.rank_weights(y).numpy()
        expected = (weights[None] * np.take_along_axis(gains[None], actions, axis=-1)).sum(-1)
        np.testing.assert_allclose(reward.per_list(y, actions).numpy(), expected, atol=1e-6)


def test_aliases_configs_and_bad_arguments():
    reward = rewards.get("ndcg@10")
    assert isinstance(reward, ranking.NDCG) and reward.k == 10 and reward.name == "ndcg@10"
    import keras

    again = rewards.get(keras.saving.serialize_keras_object(reward))
    assert isinstance(again, ranking.NDCG) and again.get_config() == reward.get_config()
    restored = ranking.DCG.from_config(ranking.DCG(k=3, gain="linear").get_config())
    assert (restored.k, restored.gain) == (3, "linear")
    with pytest.raises(ValueError, match="k must be a positive int"):
        ranking.NDCG(k=0)
    with pytest.raises(ValueError, match="gain must be one of"):
        ranking.NDCG(gain="log")
    with pytest.raises(ValueError, match=r"actions of shape \[K, B, L\]"):
        ranking.NDCG()(tf.zeros([2, 3]), tf.zeros([2, 3], tf.int32))
    with pytest.raises(ValueError, match="does not match actions"):
        ranking.NDCG()(tf.zeros([2, 3]), tf.zeros([1, 2, 4], tf.int32))


@pytest.mark.parametrize(
    ("labels", "actions", "match"),
    [
        ([[-2.0, 1.0, 0.0]], [[[0, 1, 2]]], r"relevance labels >= 0.*\[-2.0\]"),
        ([[np.nan, 1.0, 0.0]], [[[0, 1, 2]]], r"\[nan\]"),
        ([[np.inf, 1.0, 0.0]], [[[0, 1, 2]]], r"\[inf\]"),
        ([[1.0, 1.0, 0.0]], [[[0, 0, 1]]], r"each once; sample set 0, list 0 is \[0, 0, 1\]"),
        ([[1.0, 1.0, 0.0]], [[[0, 1, 2]], [[0, 1, 3]]], "sample set 1, list 0"),
        ([[1.0, 1.0, 0.0]], [[[0.0, 1.0, 2.0]]], "int item indices; received dtype float"),
    ],
)
def test_direct_calls_of_ranking_rewards_refuse_values_that_are_not_labels_or_rankings(
    labels, actions, match
):
    # NDCG of labels [-2, 1, 0] was 1.0, NaN gave 0, and a repeated index scored 2.13
    for reward in (ranking.NDCG(k=3), ranking.MRR(), ranking.PrecisionAtK(k=2)):
        with pytest.raises(ValueError, match=match):
            reward(np.array(labels), np.array(actions))


def test_direct_calls_accept_padding_and_every_permutation():
    labels = np.array([[2.0, -1.0, 0.0, 1.0]])
    actions = np.array([list(p) for p in itertools.permutations(range(4))])[:, None]  # [24, 1, 4]
    scores = ranking.NDCG()(labels, actions).numpy()
    assert scores.shape == (24,) and np.all((scores > 0) & (scores <= 1.0 + 1e-6))


@pytest.mark.parametrize("alias", ["ndcg@3", "mrr@5", "MAP@2", "precision@1", "hit_rate@4"])
def test_any_positive_cutoff_is_an_alias(alias):
    reward = rewards.get(alias)
    metric, k = alias.lower().split("@")
    assert isinstance(reward, ranking.AT_K[metric]) and reward.k == int(k)
    assert reward.name == alias.lower()
