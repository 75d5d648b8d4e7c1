"""Threshold tuning against brute force with scikit-learn."""

import itertools

import keras
import numpy as np
import pytest
from sklearn.metrics import f1_score

from rlmetric import surrogates, thresholds

RNG = np.random.default_rng(0)


def test_threshold_tuned_finds_the_best_f1_threshold():
    y = (RNG.random(300) < 0.2).astype("int32")
    scores = RNG.normal(size=300) + 1.2 * y
    threshold = thresholds.threshold_tuned(scores, None, y, "f1")
    best = f1_score(y, scores > threshold)
    brute = max(f1_score(y, scores > t, zero_division=0.0) for t in np.concatenate([scores, [-99]]))
    assert best == pytest.approx(brute, abs=1e-12)
    assert best >= f1_score(y, scores > 0)


def test_threshold_tuned_per_label_and_through_a_model():
    x = RNG.normal(size=(200, 3)).astype("float32")
    y = (x + 0.5 * RNG.normal(size=x.shape) > np.array([0.5, 1.0, 1.5])).astype("int32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Identity()])
    tuned = thresholds.threshold_tuned(model, x, y, "f1", per_label=True)
    assert tuned.shape == (3,)
    for j, t in enumerate(tuned):
        brute = max(
            f1_score(y[:, j], x[:, j] > c, zero_division=0.0)
            for c in itertools.chain(x[:, j], [-99.0])
        )
        assert f1_score(y[:, j], x[:, j] > t) == pytest.approx(brute, abs=1e-12)
    with pytest.raises(ValueError, match="y_val of shape"):
        thresholds.threshold_tuned(model, x, y[:10])


def test_the_old_name_in_surrogates_warns_and_gives_the_same_threshold():
    y = (RNG.random(100) < 0.3).astype("int32")
    scores = RNG.normal(size=100) + y
    with pytest.warns(DeprecationWarning, match="rlmetric.thresholds.threshold_tuned"):
        old = surrogates.threshold_tuned(scores, None, y, "f1")
    assert old == thresholds.threshold_tuned(scores, None, y, "f1")


@pytest.mark.parametrize(
    "outputs, y_val, metric, message",
    [
        # issue 27, case 4: each of these was a silent wrong threshold or a raw IndexError
        (
            np.array([0.1, 0.9, 0.4]),
            np.array([0.3, 0.7, 0.0]),
            "f1",
            r"binary targets 0 or 1.*0\.3",
        ),
        (np.zeros((5, 2)), np.zeros((2, 5), "int32"), "f1", r"same layout \(a transposed"),
        (np.array([0.1, np.nan, 0.4]), np.array([0, 1, 1]), "f1", r"1 non-finite values"),
        (np.zeros(0), np.zeros(0, "int32"), "f1", r"needs validation data"),
        (np.array([0.1, 0.9, 0.4]), np.array([0, 1, 1]), "ndcg@5", r"'ndcg@5' does not score 0/1"),
    ],
)
def test_bad_validation_data_or_metric_is_refused(outputs, y_val, metric, message):
    with pytest.raises(ValueError, match=message):
        thresholds.threshold_tuned(outputs, None, y_val, metric)
