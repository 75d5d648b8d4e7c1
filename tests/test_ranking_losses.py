"""Ranking surrogates against NumPy references written from their papers' formulas."""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from rlmetric import ranking_losses, surrogates


def _case(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, size=(4, 6)).astype("float32")
    y[1] = 0.0  # no relevant item
    y[2, 4:] = -1.0  # padding
    scores = rng.normal(size=(4, 6)).astype("float32")
    return y, scores


def _real(y, s):
    keep = y >= 0
    return y[keep], s[keep].astype("float64")


def _gain(y):
    return 2.0**y - 1.0


def _ideal(y, k=None):
    g = np.sort(_gain(y))[::-1]
    d = 1 / np.log2(np.arange(2, len(g) + 2))
    if k is not None:
        d[k:] = 0
    return (g * d).sum()


def _listnet(y, s):
    y, s = _real(y, s)
    if y.sum() == 0:
        return 0.0
    log_softmax = s - np.log(np.exp(s).sum())
    return -(y / y.sum() * log_softmax).sum()


def _pairwise(y, s):
    y, s = _real(y, s)
    losses = [
        np.log1p(np.exp(-(s[i] - s[j])))
        for i, j in itertools.permutations(range(len(y)), 2)
        if y[i] > y[j]
    ]
    return np.mean(losses) if losses else 0.0


def _approx_ndcg(y, s, alpha=10.0):
    y, s = _real(y, s)
    ideal = _ideal(y)
    if ideal == 0:
        return 0.0
    ranks = [
        1 + sum(1 / (1 + np.exp(-alpha * (s[j] - s[i]))) for j in range(len(s)) if j != i)
        for i in range(len(s))
    ]
    return -sum(_gain(y[i]) / np.log2(1 + ranks[i]) for i in range(len(y))) / ideal


def _lambda(y, s, k=None):
    y, s = _real(y, s)
    ideal = _ideal(y, k)
    if ideal == 0:
        return 0.0
    rank = np.empty(len(s))
    rank[np.argsort(-s, kind="stable")] = np.arange(1, len(s) + 1)
    d = 1 / np.log2(1 + rank)
    if k is not None:
        d[rank > k] = 0
    total = 0.0
    for i, j in itertools.permutations(range(len(y)), 2):
        if y[i] > y[j]:
            weight = abs(_gain(y[i]) - _gain(y[j])) * abs(d[i] - d[j]) / ideal
            total += weight * np.log1p(np.exp(-(s[i] - s[j])))
    return total


@pytest.mark.parametrize("seed", range(3))
def test_losses_equal_numpy_references(seed):
    y, scores = _case(seed)
    cases = [
        (ranking_losses.listnet, _listnet),
        (ranking_losses.pairwise_logistic, _pairwise),
        (ranking_losses.approx_ndcg, _approx_ndcg),
        (ranking_losses.lambda_loss, _lambda),
        (lambda t, p: ranking_losses.lambda_loss(t, p, k=3), lambda t, p: _lambda(t, p, 3)),
    ]
    for ours, reference in cases:
        expected = [reference(y[b], scores[b]) for b in range(len(y))]
        np.testing.assert_allclose(ours(y, scores).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_keras_losses_reduce_to_the_mean_over_lists_and_round_trip_configs():
    y, scores = _case(0)
    for loss, function in (
        (surrogates.ListNet(), ranking_losses.listnet),
        (surrogates.PairwiseLogistic(), ranking_losses.pairwise_logistic),
        (surrogates.ApproxNDCG(alpha=5.0), lambda t, p: ranking_losses.approx_ndcg(t, p, 5.0)),
        (surrogates.LambdaLoss(k=3), lambda t, p: ranking_losses.lambda_loss(t, p, 3)),
    ):
        assert float(loss(y, scores)) == pytest.approx(
            float(tf.reduce_mean(function(y, scores))), abs=1e-6
        )
        again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
        assert type(again) is type(loss) and again.get_config() == loss.get_config()


def test_gradients_are_finite_and_padding_gets_none():
    y, scores = _case(1)
    scores = tf.constant(scores)
    for function in (
        ranking_losses.listnet,
        ranking_losses.pairwise_logistic,
        ranking_losses.approx_ndcg,
        ranking_losses.lambda_loss,
    ):
        with tf.GradientTape() as tape:
            tape.watch(scores)
            value = tf.reduce_sum(function(y, scores))
        gradient = tape.gradient(value, scores).numpy()
        assert np.isfinite(gradient).all(), function.__name__
        assert (gradient[2, 4:] == 0).all(), function.__name__
