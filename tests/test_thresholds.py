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
        (
            np.zeros((5, 2)),
            np.zeros((2, 5), "int32"),
            "f1",
            r"same layout \(a transposed \[L, N\] is not read as \[N, L\]\)",
        ),
        (
            np.array([0.1, np.nan, 0.4]),
            np.array([0, 1, 1]),
            "f1",
            r"1 non-finite values \(NaN or inf\): a threshold cannot order them",
        ),
        (np.zeros(0), np.zeros(0, "int32"), "f1", r"needs validation data"),
        (np.zeros(0), np.zeros(3, "int32"), "f1", r"needs validation data"),  # outputs empty
        (np.zeros(3), np.zeros(0, "int32"), "f1", r"needs validation data"),  # labels empty
        (np.array([0.1, 0.9, 0.4]), np.array([0, 1, 1]), "ndcg@5", r"'ndcg@5' does not score 0/1"),
        (
            np.arange(10.0),
            np.arange(10) + 2,  # ten values that are not 0/1: the message lists the first 8
            "f1",
            r"received values \[2, 3, 4, 5, 6, 7, 8, 9\] \(soft targets would be truncated\)",
        ),
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


@pytest.mark.parametrize("max_candidates", [1, 2.5, True, "8"])
def test_max_candidates_must_be_an_int_of_at_least_2(max_candidates):
    outputs, y = np.array([0.1, 0.9, 0.4]), np.array([0, 1, 1])
    with pytest.raises(
        ValueError, match=f"max_candidates must be an int >= 2; received {max_candidates!r}"
    ):
        thresholds.threshold_tuned(outputs, None, y, max_candidates=max_candidates)
    # 2 candidates, the fewest: the one below all and the midpoint of the quantiles 0 and 1
    assert thresholds.threshold_tuned(outputs, None, y, max_candidates=2) == pytest.approx(-0.9)


def test_outputs_are_read_in_float64_from_arrays_and_models():
    outputs = np.array([0.1, 0.7], np.float32)
    midpoint = (np.float64(outputs[0]) + np.float64(outputs[1])) / 2.0
    assert thresholds.threshold_tuned(outputs, None, np.array([0, 1])) == midpoint
    identity = keras.Sequential([keras.Input((1,)), keras.layers.Identity()])
    through = thresholds.threshold_tuned(identity, outputs[:, None], np.array([[0], [1]]))
    assert through == midpoint


class PredictOnly:
    """A model object with ``predict`` (used, batched) and a ``__call__`` that must not be."""

    def __init__(self, outputs):
        self.outputs, self.batch_sizes = outputs, []

    def predict(self, x, batch_size=None, verbose="auto"):
        self.batch_sizes.append((batch_size, verbose))
        return self.outputs

    def __call__(self, x):
        raise AssertionError("threshold_tuned must call predict on a model that has it")


def test_a_model_is_run_with_predict_quietly_and_a_function_is_called(capsys):
    outputs, y = np.array([[0.1], [0.9], [0.4]]), np.array([0, 1, 1])  # [N, 1] outputs, [N] y
    model = PredictOnly(outputs)
    assert thresholds.threshold_tuned(model, np.zeros((3, 2)), y) == 0.25
    thresholds.threshold_tuned(model, np.zeros((3, 2)), y, batch_size=7)
    assert model.batch_sizes == [(1024, 0), (7, 0)]
    assert thresholds.threshold_tuned(lambda x: x[:, :1], outputs, y) == 0.25  # no predict
    keras_model = keras.Sequential([keras.Input((1,)), keras.layers.Identity()])
    thresholds.threshold_tuned(keras_model, outputs, y)
    assert capsys.readouterr().out == ""  # no progress bar


def test_a_single_example_and_two_labels_per_label():
    assert thresholds.threshold_tuned(np.array([0.3]), None, np.array([1])) == pytest.approx(-0.7)
    outputs = np.array([[0.1, 2.0], [0.9, -1.0], [0.4, 0.5]])
    y = np.array([[0, 1], [1, 0], [1, 1]])
    np.testing.assert_allclose(
        thresholds.threshold_tuned(outputs, None, y, per_label=True), [0.25, -0.25]
    )


def test_a_metric_that_is_not_of_decisions_is_named_with_the_alternatives():
    from rlmetric import ranking

    outputs, y = np.array([0.1, 0.9, 0.4]), np.array([0, 1, 1])
    with pytest.raises(
        ValueError,
        match=r"metric 'my_ndcg' does not score 0/1 decisions \(it is NDCG\); threshold_tuned "
        r"needs a metric of binary decisions such as 'f1', 'macro_f1', 'iou', or your own",
    ):
        thresholds.threshold_tuned(outputs, None, y, ranking.NDCG(k=2, name="my_ndcg"))
    with pytest.raises(ValueError, match=r"per_label=True needs outputs of shape \[N, L\]; the "):
        thresholds.threshold_tuned(outputs, None, y, per_label=True)


def test_decisions_are_outputs_strictly_above_the_threshold():
    # capped at 3 candidates, the midpoints of the quantiles (0, 2, 4) are outputs themselves:
    # at 1.0, output 1.0 is a negative decision, so all-positive (-1.0) scores best
    outputs, y = np.arange(5.0), np.array([0, 1, 1, 1, 1])
    assert thresholds.threshold_tuned(outputs, None, y, max_candidates=3) == -1.0
