"""Threshold tuning against brute force with scikit-learn."""

import itertools

import keras
import numpy as np
import pytest
from sklearn.metrics import f1_score

from rlmetric import rewards, surrogates, thresholds

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


class CountingF1(rewards.F1):
    """F1 that records how many candidate thresholds (sample sets ``K``) it scored."""

    def __call__(self, y_true, actions):
        self.scored = actions.shape[0]
        return super().__call__(y_true, actions)


def test_the_default_metric_is_f1():
    rng = np.random.default_rng(3)
    outputs = rng.normal(size=300)
    y = (outputs + rng.normal(scale=0.8, size=300) > 0.7).astype(int)
    assert thresholds.threshold_tuned(outputs, None, y) == thresholds.threshold_tuned(
        outputs, None, y, "f1"
    )


def test_candidates_are_capped_at_quantiles_and_keep_the_best_threshold():
    rng = np.random.default_rng(4)
    outputs = rng.normal(size=3000)  # 3000 distinct values
    y = (outputs > 0.25).astype(int)  # the best threshold is near 0.25
    counting = CountingF1()
    threshold = thresholds.threshold_tuned(outputs, None, y, counting)
    assert counting.scored == 1024  # the documented default cap
    assert abs(threshold - 0.25) < 0.02
    few = CountingF1()
    coarse = thresholds.threshold_tuned(outputs, None, y, few, max_candidates=50)
    assert few.scored == 50 and abs(coarse - 0.25) < 0.15
    quantiles = np.quantile(outputs, np.linspace(0.0, 1.0, 50))
    assert np.min(np.abs((quantiles[:-1] + quantiles[1:]) / 2 - coarse)) < 1e-12


def test_all_positive_is_a_candidate_one_below_every_output():
    outputs = np.array([0.3, 1.0, 2.5])
    threshold = thresholds.threshold_tuned(outputs, None, np.ones(3, int), "f1")
    assert threshold == outputs.min() - 1.0  # every output above it: all positive
