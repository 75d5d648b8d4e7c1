"""MetricClassifier: scikit-learn's estimator contract, Pipeline, GridSearchCV and
TunedThresholdClassifierCV."""

import numpy as np
import pytest
from sklearn.metrics import f1_score
from sklearn.model_selection import GridSearchCV, TunedThresholdClassifierCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

from rlmetric.scikit_learn import MetricClassifier

rng = np.random.default_rng(0)
X = rng.normal(size=(240, 5))
Y = np.where(X[:, 0] + 0.5 * X[:, 1] > 0.9, "yes", "no")  # about 20% "yes"

#: the checks of check_estimator that cannot hold for this estimator, and why
EXPECTED_FAILED_CHECKS = {
    "check_sample_weight_equivalence_on_dense_data": "fit takes no sample_weight",
    "check_classifiers_one_label_sample_weights": "fit takes no sample_weight",
    # a float32 network: a row's output can change in the last bits with the rows batched
    # beside it (measured 3e-7 relative); the check asks rtol 1e-7. Checked below at 1e-5.
    "check_methods_sample_order_invariance": "float32 outputs: order-invariant to 1e-5",
}


def test_passes_scikit_learn_s_estimator_checks():
    # small networks and few epochs: the checks fit dozens of times
    failed = check_estimator(
        MetricClassifier(epochs=10, learning_rate=1e-2, hidden_units=(16,)),
        expected_failed_checks=EXPECTED_FAILED_CHECKS,
        on_fail=None,
    )
    unexpected = [
        (row["check_name"], str(row["exception"])[:300])
        for row in failed
        if row["status"] == "failed" and row["check_name"] not in EXPECTED_FAILED_CHECKS
    ]
    assert not unexpected


def test_outputs_do_not_depend_on_the_order_of_the_rows():
    clf = MetricClassifier(epochs=3, learning_rate=1e-2, hidden_units=(16,), random_state=0)
    clf.fit(X, Y)
    order = np.random.default_rng(1).permutation(len(X))
    np.testing.assert_array_equal(clf.predict(X[order]), clf.predict(X)[order])
    for method in (clf.decision_function, clf.predict_proba):
        np.testing.assert_allclose(method(X[order]), method(X)[order], rtol=1e-5, atol=1e-7)


def test_labels_come_back_and_score_is_the_trained_metric():
    clf = MetricClassifier(epochs=30, learning_rate=1e-2, random_state=0).fit(X, Y)
    assert list(clf.classes_) == ["no", "yes"]
    predicted = clf.predict(X)
    assert set(predicted) <= {"no", "yes"}
    assert clf.score(X, Y) == pytest.approx(f1_score(Y, predicted, pos_label="yes"), abs=1e-6)
    probabilities = clf.predict_proba(X)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
    assert np.array_equal(predicted == "yes", probabilities[:, 1] > 0.5)
    assert clf.score(X, Y) > 0.6


def test_more_classes_train_on_macro_f1_and_a_binary_reward_is_refused():
    labels = np.digitize(X[:, 0], [-0.5, 0.5])  # 3 classes
    clf = MetricClassifier(epochs=20, learning_rate=1e-2).fit(X, labels)
    assert clf.trainer_.reward.name == "macro_f1" and clf.predict_proba(X).shape == (240, 3)
    assert clf.score(X, labels) == pytest.approx(
        f1_score(labels, clf.predict(X), average="macro"), abs=1e-6
    )
    with pytest.raises(ValueError, match="average='binary' needs 2 classes"):
        MetricClassifier(reward="f1", epochs=1).fit(X, labels)


def test_grid_search_over_the_learning_rate_in_a_pipeline():
    pipeline = make_pipeline(StandardScaler(), MetricClassifier(epochs=8, random_state=0))
    search = GridSearchCV(
        pipeline, {"metricclassifier__learning_rate": [1e-3, 3e-2]}, cv=2, error_score="raise"
    )
    search.fit(X, Y)
    scores = search.cv_results_["mean_test_score"]
    assert scores.shape == (2,) and np.all((scores >= 0) & (scores <= 1))
    assert search.best_params_["metricclassifier__learning_rate"] in (1e-3, 3e-2)
    assert search.score(X, Y) == pytest.approx(
        f1_score(Y, search.predict(X), pos_label="yes"), abs=1e-6
    )


def test_a_threshold_tuned_on_its_probabilities():
    tuned = TunedThresholdClassifierCV(
        MetricClassifier(epochs=10, learning_rate=1e-2), scoring="f1", cv=2
    )
    tuned.fit(X, (Y == "yes").astype(int))
    assert 0.0 < tuned.best_threshold_ < 1.0


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"epochs": 0}, "epochs must be an int >= 1"),
        ({"learning_rate": 2.0}, r"learning_rate must be in \(0, 1\)"),
        ({"model": "mlp"}, "model must be None or a callable"),
    ],
)
def test_bad_parameters_are_named_at_fit(params, match):
    with pytest.raises((ValueError, TypeError), match=match):
        MetricClassifier(**params).fit(X, Y)
