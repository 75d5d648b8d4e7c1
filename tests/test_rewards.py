"""Reward values against scikit-learn on randomized inputs and edge cases (tolerance 1e-6)."""

import numpy as np
import pytest
import tensorflow as tf
from sklearn import metrics as skm

from rlmetric import rewards

TOL = 1e-6
K = 5

SKLEARN = {
    "f1": (lambda **kw: rewards.F1(**kw), skm.f1_score),
    "f2": (
        lambda **kw: rewards.FBeta(beta=2.0, **kw),
        lambda *a, **kw: skm.fbeta_score(*a, beta=2.0, **kw),
    ),
    "f0.5": (
        lambda **kw: rewards.FBeta(beta=0.5, **kw),
        lambda *a, **kw: skm.fbeta_score(*a, beta=0.5, **kw),
    ),
    "iou": (lambda **kw: rewards.IoU(**kw), skm.jaccard_score),
    "dice": (lambda **kw: rewards.Dice(**kw), skm.f1_score),
    "precision": (lambda **kw: rewards.Precision(**kw), skm.precision_score),
    "recall": (lambda **kw: rewards.Recall(**kw), skm.recall_score),
}


def _random_binary_cases(rng, shape):
    """(y_true [B, ...], actions [K, B, ...]) pairs: random rates plus the edge cases."""
    cases = []
    for rate in (0.0, 0.03, 0.3, 0.7, 1.0):
        y = (rng.random(shape) < rate).astype(np.int32)
        random_actions = (rng.random((K, *shape)) < rng.random((K,) + (1,) * len(shape))).astype(
            np.int32
        )
        edge = np.stack([np.zeros(shape), np.ones(shape), y, 1 - y], 0).astype(np.int32)
        cases.append((y, random_actions))
        cases.append((y, edge))
    return cases


def _check(reward, y, actions, reference):
    got = reward(tf.constant(y), tf.constant(actions)).numpy()
    assert got.shape == (actions.shape[0],)
    want = np.array([reference(y, a) for a in actions])
    np.testing.assert_allclose(got, want, atol=TOL, rtol=0)


@pytest.mark.parametrize("metric", sorted(SKLEARN))
@pytest.mark.parametrize("average", ["binary", "micro", "macro"])
@pytest.mark.parametrize("zero_division", [0.0, 1.0])
@pytest.mark.parametrize("shape", [(40,), (40, 1), (3, 5, 4, 1)])
def test_binary_target_matches_sklearn(metric, average, zero_division, shape):
    make, reference = SKLEARN[metric]
    reward = make(average=average, zero_division=zero_division)
    rng = np.random.default_rng(hash((metric, average, shape)) % 2**32)

    def ref(y, a):
        return reference(y.ravel(), a.ravel(), average=average, zero_division=zero_division)

    for y, actions in _random_binary_cases(rng, shape):
        _check(reward, y, actions, ref)


@pytest.mark.parametrize("metric", sorted(SKLEARN))
@pytest.mark.parametrize("average", ["micro", "macro", "samples"])
@pytest.mark.parametrize("zero_division", [0.0, 1.0])
def test_multilabel_matches_sklearn(metric, average, zero_division):
    make, reference = SKLEARN[metric]
    reward = make(average=average, zero_division=zero_division)
    rng = np.random.default_rng(7)

    def ref(y, a):
        return reference(y, a, average=average, zero_division=zero_division)

    for y, actions in _random_binary_cases(rng, (30, 4)):
        _check(reward, y, actions, ref)


def test_multilabel_binary_average_pools_every_element():
    rng = np.random.default_rng(3)
    y = (rng.random((20, 3)) < 0.4).astype(np.int32)
    actions = (rng.random((K, 20, 3)) < 0.5).astype(np.int32)
    _check(rewards.F1(), y, actions, lambda t, a: skm.f1_score(t.ravel(), a.ravel()))
    _check(
        rewards.F1(average="micro"), y, actions, lambda t, a: skm.f1_score(t, a, average="micro")
    )


def _random_class_cases(rng, shape, num_classes):
    cases = []
    for concentration in (0.2, 1.0, 5.0):
        probs = rng.dirichlet([concentration] * num_classes)
        y = rng.choice(num_classes, size=shape, p=probs).astype(np.int32)
        actions = rng.integers(0, num_classes, size=(K, *shape)).astype(np.int32)
        cases.append((y, actions))
    y = np.zeros(shape, np.int32)  # only class 0 in the labels
    edge = np.stack([np.zeros(shape), np.full(shape, num_classes - 1), y, (y + 1) % num_classes])
    cases.append((y, edge.astype(np.int32)))
    return cases


@pytest.mark.parametrize("metric", sorted(SKLEARN))
@pytest.mark.parametrize("average", ["micro", "macro"])
@pytest.mark.parametrize("zero_division", [0.0, 1.0])
@pytest.mark.parametrize("shape", [(50,), (2, 6, 5)])
def test_categorical_matches_sklearn(metric, average, zero_division, shape):
    make, reference = SKLEARN[metric]
    reward = make(average=average, num_classes=4, zero_division=zero_division)
    rng = np.random.default_rng(11)

    def ref(y, a):
        return reference(y.ravel(), a.ravel(), average=average, zero_division=zero_division)

    for y, actions in _random_class_cases(rng, shape, 4):
        _check(reward, y, actions, ref)


@pytest.mark.parametrize("metric", sorted(SKLEARN))
def test_two_class_categorical_binary_is_positive_class(metric):
    make, reference = SKLEARN[metric]
    reward = make(average="binary", num_classes=2)
    rng = np.random.default_rng(5)
    for y, actions in _random_class_cases(rng, (40,), 2):
        _check(reward, y, actions, lambda t, a: reference(t, a, average="binary"))


@pytest.mark.parametrize("shape", [(60,), (60, 1), (2, 4, 4, 1), (20, 3)])
def test_mcc_bernoulli_matches_sklearn_on_raveled(shape):
    rng = np.random.default_rng(2)
    for y, actions in _random_binary_cases(rng, shape):
        _check(
            rewards.MatthewsCorrCoef(),
            y,
            actions,
            lambda t, a: skm.matthews_corrcoef(t.ravel(), a.ravel()),
        )


@pytest.mark.parametrize("shape", [(60,), (2, 5, 5)])
def test_mcc_categorical_matches_sklearn(shape):
    rng = np.random.default_rng(4)
    reward = rewards.MatthewsCorrCoef(num_classes=4)
    for y, actions in _random_class_cases(rng, shape, 4):
        _check(reward, y, actions, lambda t, a: skm.matthews_corrcoef(t.ravel(), a.ravel()))


def test_mcc_is_exact_on_large_counts():
    # float32 products of counts of ~1e6 elements lose the numerator; the float64 path must not.
    rng = np.random.default_rng(0)
    y = (rng.random(2_000_000) < 0.5).astype(np.int32)
    actions = np.where(rng.random((2, y.size)) < 0.9, y, 1 - y).astype(np.int32)
    _check(rewards.MatthewsCorrCoef(), y, actions, skm.matthews_corrcoef)


@pytest.mark.parametrize("shape", [(50,), (50, 1), (3, 4, 4, 1), (30, 4)])
def test_accuracy_elementwise_matches_sklearn_on_raveled(shape):
    rng = np.random.default_rng(8)
    for y, actions in _random_binary_cases(rng, shape):
        _check(
            rewards.Accuracy(), y, actions, lambda t, a: skm.accuracy_score(t.ravel(), a.ravel())
        )


def test_accuracy_subset_matches_sklearn_multilabel():
    rng = np.random.default_rng(9)
    for y, actions in _random_binary_cases(rng, (30, 3)):
        _check(rewards.Accuracy(subset=True), y, actions, skm.accuracy_score)


@pytest.mark.parametrize("shape", [(50,), (2, 5, 5)])
def test_accuracy_categorical_matches_sklearn(shape):
    rng = np.random.default_rng(10)
    for y, actions in _random_class_cases(rng, shape, 4):
        _check(
            rewards.Accuracy(num_classes=4),
            y,
            actions,
            lambda t, a: skm.accuracy_score(t.ravel(), a.ravel()),
        )


def test_counts_add_up_across_batches():
    """Counts of two halves summed give the metric of the whole (what evaluate relies on)."""
    rng = np.random.default_rng(12)
    y = (rng.random(100) < 0.2).astype(np.int32)
    actions = (rng.random((K, 100)) < 0.3).astype(np.int32)
    for reward in (rewards.F1(), rewards.IoU(average="macro"), rewards.MatthewsCorrCoef()):
        layout = reward.layout(actions.shape)
        halves = reward.counts(y[:37], actions[:, :37]) + reward.counts(y[37:], actions[:, 37:])
        np.testing.assert_allclose(
            reward.from_counts(halves, layout).numpy(), reward(y, actions).numpy(), atol=TOL
        )


def test_from_numpy_wraps_sklearn():
    rng = np.random.default_rng(13)
    y = (rng.random(64) < 0.3).astype(np.int32)
    actions = (rng.random((K, 64)) < 0.4).astype(np.int32)
    wrapped = rewards.from_numpy(skm.f1_score)
    assert wrapped.name == "f1_score" and not wrapped.xla_compatible
    np.testing.assert_allclose(
        wrapped(y, actions).numpy(), rewards.F1()(y, actions).numpy(), atol=TOL
    )
    multilabel = (rng.random((K, 16, 3)) < 0.5).astype(np.int32)
    y_multi = (rng.random((16, 3)) < 0.5).astype(np.int32)
    macro = rewards.from_numpy(lambda t, p: skm.f1_score(t, p, average="macro"))
    np.testing.assert_allclose(
        macro(y_multi, multilabel).numpy(),
        rewards.F1(average="macro")(y_multi, multilabel).numpy(),
        atol=TOL,
    )


def test_aliases_and_names():
    assert rewards.get("f1").name == "f1"
    assert isinstance(rewards.get("iou"), rewards.IoU)
    assert rewards.get("miou").average == "macro"
    assert isinstance(rewards.get("mcc"), rewards.MatthewsCorrCoef)
    with pytest.raises(ValueError, match=r"Unknown reward 'f_one'.*'dice'.*'f1'"):
        rewards.get("f_one")


def test_config_round_trip():
    import keras

    for reward in (
        rewards.FBeta(beta=2.0, average="macro", zero_division=1.0),
        rewards.F1(num_classes=3, average="micro", name="micro_f1"),
        rewards.Accuracy(subset=True),
        rewards.MatthewsCorrCoef(num_classes=4),
    ):
        restored = keras.saving.deserialize_keras_object(
            keras.saving.serialize_keras_object(reward)
        )
        assert type(restored) is type(reward) and restored.get_config() == reward.get_config()


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: rewards.F1(average="weighted"), r"average='weighted' is not supported.*'binary'"),
        (lambda: rewards.F1(zero_division=0.5), r"zero_division must be 0.0 or 1.0.*0.5"),
        (lambda: rewards.F1(num_classes=1), r"num_classes must be an integer >= 2.*1"),
        (lambda: rewards.FBeta(beta=-1.0), r"beta must be a positive finite number.*-1.0"),
    ],
)
def test_bad_arguments_are_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_bad_inputs_are_named():
    y = np.zeros(10, np.int32)
    with pytest.raises(ValueError, match=r"y_true of shape \(9,\) does not match actions of shape"):
        rewards.F1()(np.zeros(9, np.int32), np.zeros((2, 10), np.int32))
    with pytest.raises(ValueError, match=r"average='samples' is only defined for multi-label"):
        rewards.F1(average="samples")(y, np.zeros((2, 10), np.int32))
    with pytest.raises(ValueError, match=r"average='binary' needs 2 classes but num_classes=3"):
        rewards.F1(num_classes=3)(y, np.zeros((2, 10), np.int32))
    with pytest.raises(ValueError, match=r"actions of shape \[K, B, \.\.\.\]"):
        rewards.F1()(y, np.zeros(10, np.int32))


LOCAL_CASES = [
    ("f1-binary", lambda: rewards.F1(), (12,), None),
    ("iou-macro", lambda: rewards.IoU(average="macro"), (6, 1), None),
    (
        "precision-micro",
        lambda: rewards.Precision(average="micro", zero_division=1.0),
        (2, 3, 2, 1),
        None,
    ),
    ("f2-multilabel-macro", lambda: rewards.FBeta(beta=2.0, average="macro"), (5, 3), None),
    ("recall-multilabel-binary", lambda: rewards.Recall(), (4, 3), None),
    ("f1-samples", lambda: rewards.F1(average="samples"), (4, 3), None),
    ("accuracy", lambda: rewards.Accuracy(), (10,), None),
    ("accuracy-multilabel", lambda: rewards.Accuracy(), (4, 3), None),
    ("accuracy-subset", lambda: rewards.Accuracy(subset=True), (4, 3), None),
    ("mcc", lambda: rewards.MatthewsCorrCoef(), (10,), None),
    ("mcc-multilabel", lambda: rewards.MatthewsCorrCoef(), (4, 3), None),
    ("f1-categorical-macro", lambda: rewards.F1(average="macro", num_classes=4), (9,), 4),
    ("iou-categorical-micro", lambda: rewards.IoU(average="micro", num_classes=3), (2, 2, 3), 3),
    ("dice-categorical-binary", lambda: rewards.Dice(num_classes=2), (8,), 2),
    ("accuracy-categorical", lambda: rewards.Accuracy(num_classes=3), (9,), 3),
    ("mcc-categorical", lambda: rewards.MatthewsCorrCoef(num_classes=3), (2, 5), 3),
]


@pytest.mark.parametrize(
    "name, make, shape, num_classes", LOCAL_CASES, ids=[c[0] for c in LOCAL_CASES]
)
def test_local_rewards_equal_rescoring_with_one_decision_changed(name, make, shape, num_classes):
    reward = make()
    rng = np.random.default_rng(21)
    values = num_classes or 2
    for _ in range(3):
        y = rng.integers(0, values, size=shape).astype(np.int32)
        actions = rng.integers(0, values, size=(3, *shape)).astype(np.int32)
        got = reward.local_rewards(y, actions).numpy()
        num_elements = int(np.prod(shape))
        assert got.shape == (3, num_elements, values)
        changed = np.repeat(actions.reshape(3, 1, 1, -1), num_elements, 1).repeat(values, 2)
        element = np.arange(num_elements)
        for value in range(values):
            changed[:, element, value, element] = value
        want = reward(y, changed.reshape(-1, *shape)).numpy().reshape(3, num_elements, values)
        np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize(
    "reward, y_true, actions, expected",
    [
        (rewards.F1(), [2, 1, 0], [[1, 1, 0]], r"y_true must hold 0 or 1; .*\[0, 1, 2\]"),
        (rewards.IoU(), [1, 0, 1], [[2, 0, 1]], r"actions must hold 0 or 1; .*\[0, 1, 2\]"),
        (rewards.F1(), [0.5, 1, 0], [[1, 1, 0]], r"y_true must hold 0 or 1; .*0\.5"),
        (
            rewards.IoU(num_classes=3, average="macro"),
            [1, 0, 1.5],
            [[1, 0, 2]],
            r"y_true must hold class ids in \[0, 3\); .*1\.5",
        ),
        (
            rewards.Accuracy(num_classes=3),
            [1, 0, 2],
            [[1, 0, 3]],
            r"actions must hold class ids in \[0, 3\); .*3",
        ),
    ],
)
def test_a_direct_call_refuses_values_that_are_not_decisions(reward, y_true, actions, expected):
    # a label of 2 used to count twice: F1 1.33, IoU 2.0
    with pytest.raises(ValueError, match=expected):
        reward(tf.constant(y_true), tf.constant(actions))


@pytest.mark.parametrize("positive_rate", [0.5, 0.001])
def test_mcc_is_exact_on_large_imbalanced_counts(positive_rate):
    # Products of counts near 1e6 * 1e6 exceed float32's 24-bit mantissa; with balanced labels
    # the rounding happens to cancel, at a 0.1% positive rate it does not.
    rng = np.random.default_rng(1)
    y = (rng.random(4_000_000) < positive_rate).astype(np.int32)
    actions = np.where(rng.random((2, y.size)) < 0.999, y, 1 - y).astype(np.int32)
    _check(rewards.MatthewsCorrCoef(), y, actions, skm.matthews_corrcoef)
    _check(
        rewards.MatthewsCorrCoef(num_classes=2),
        y,
        actions,
        skm.matthews_corrcoef,
    )


# -- coupled gains ---------------------------------------------------------------------------
def _reference_coupled_gains(labels, errors, score):
    """By brute force: the decision sets with the first j elements of the error order wrong
    (flipped), scored with scikit-learn (``score(y, decisions)`` on arrays of the labels' shape)."""
    order = np.argsort(-errors.ravel(), kind="stable")
    decisions = labels.ravel().copy()
    scores = [score(labels, decisions.reshape(labels.shape))]
    for i in order:
        decisions[i] = 1 - decisions[i]
        scores.append(score(labels, decisions.reshape(labels.shape)))
    gains = np.zeros(labels.size)
    gains[order] = np.maximum(np.array(scores[:-1]) - np.array(scores[1:]), 0.0)
    return gains


COUPLED_CASES = {
    "binary-iou": (rewards.IoU(), (30,), lambda t, p: skm.jaccard_score(t, p, zero_division=0)),
    "binary-f1-pixels": (
        rewards.F1(),
        (2, 4, 4, 1),
        lambda t, p: skm.f1_score(t.ravel(), p.ravel(), zero_division=0),
    ),
    "binary-mcc": (rewards.MatthewsCorrCoef(), (30,), skm.matthews_corrcoef),
    "multilabel-macro-f1": (
        rewards.F1(average="macro"),
        (10, 3),
        lambda t, p: skm.f1_score(t, p, average="macro", zero_division=0),
    ),
    "multilabel-micro-iou": (
        rewards.IoU(average="micro"),
        (10, 3),
        lambda t, p: skm.jaccard_score(t, p, average="micro", zero_division=0),
    ),
    "multilabel-samples-f1": (
        rewards.F1(average="samples"),
        (8, 3),
        lambda t, p: skm.f1_score(t, p, average="samples", zero_division=0),
    ),
}


@pytest.mark.parametrize("case", sorted(COUPLED_CASES))
def test_coupled_gains_of_bernoulli_decisions_match_brute_force_with_scikit_learn(case):
    """A Bernoulli element's pairs share its error |y - p(1)|, so its gain is what flipping it
    loses once every element with a larger error is flipped."""
    reward, shape, score = COUPLED_CASES[case]
    rng = np.random.default_rng(len(case))
    for trial in range(3):
        labels = rng.integers(0, 2, shape).astype(np.int32)
        if trial == 2:
            labels[:] = 0  # no positive label
        p1 = rng.random(shape).astype(np.float32)
        value_probs = np.stack([1 - p1, p1], axis=-1)
        got = reward.coupled_gains(tf.constant(labels), tf.constant(value_probs))
        want = _reference_coupled_gains(labels, np.abs(labels - p1), score)
        np.testing.assert_allclose(got.numpy(), want, atol=1e-6, err_msg=f"{case} {trial}")


def _lovasz_weights(targets, errors):
    """Per element, the Lovasz gradients of its one-vs-rest lists ``[N, L]``, summed over the
    lists and divided by their number (the lists' mean, as Lovasz-softmax)."""
    from rlmetric.surrogates import lovasz_jaccard_gradient

    weights = np.zeros(targets.shape)
    for c in range(targets.shape[1]):
        order = np.argsort(-errors[:, c], kind="stable")
        sorted_targets = tf.constant(targets[order, c][None], tf.float32)
        weights[order, c] = lovasz_jaccard_gradient(sorted_targets)[0].numpy()
    return weights.sum(1) / targets.shape[1]


def test_coupled_gains_of_the_jaccard_index_are_the_lovasz_gradient():
    """For the Jaccard index the gains are the gradient of the Lovasz extension of the Jaccard
    loss (Berman et al. 2018): the weights of the Lovasz hinge for binary IoU, and of
    Lovasz-softmax for the mean IoU over classes (all present). Checked by hand on one case."""
    labels = np.array([1, 0, 1], np.int32)
    p1 = np.array([0.1, 0.5, 0.9], np.float32)  # errors 0.9, 0.5, 0.1
    gains = rewards.IoU().coupled_gains(labels, np.stack([1 - p1, p1], -1)).numpy()
    # IoU 1 -> 1/2 (first positive missed) -> 1/3 (a false positive) -> 0
    np.testing.assert_allclose(gains, [0.5, 1 / 6, 1 / 3], atol=1e-6)
    rng = np.random.default_rng(0)
    labels = (rng.random(50) < 0.4).astype(np.int32)
    p1 = rng.random(50).astype(np.float32)
    got = rewards.IoU().coupled_gains(labels, np.stack([1 - p1, p1], -1)).numpy()
    want = _lovasz_weights(labels[:, None].astype(float), np.abs(labels - p1)[:, None])
    np.testing.assert_allclose(got, want, atol=1e-6)
    for _ in range(3):
        labels = rng.permutation(np.arange(24) % 4).astype(np.int32)  # every class present
        logits = rng.normal(size=(24, 4)) * 2
        probs = (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).astype(np.float32)
        miou = rewards.IoU(average="macro", num_classes=4)
        got = miou.coupled_gains(labels, probs).numpy()
        targets = np.eye(4)[labels]
        np.testing.assert_allclose(
            got, _lovasz_weights(targets, np.abs(targets - probs)), atol=1e-6
        )


def _reference_class_pair_gains(labels, probs):
    """Mean IoU over classes by brute force: the (element, class) pairs turn wrong one by one
    in the order of decreasing error ``|[label = c] - p(c)|`` (ties by pair index); a class
    weighs once it has a true positive, a false positive or a false negative."""
    num, classes = probs.shape
    targets = np.eye(classes)[labels]
    order = np.argsort(-np.abs(targets - probs).ravel(), kind="stable")
    tp, fp, fn = targets.sum(0), np.zeros(classes), np.zeros(classes)

    def score():
        present = tp + fp + fn > 0
        return (tp / np.maximum(tp + fp + fn, 1))[present].mean() if present.any() else 0.0

    gains, previous = np.zeros(num), score()
    for pair in order:
        element, c = divmod(pair, classes)
        if targets[element, c]:
            tp[c], fn[c] = tp[c] - 1, fn[c] + 1
        else:
            fp[c] += 1
        current = score()
        gains[element] += previous - current
        previous = current
    return np.maximum(gains, 0.0)


@pytest.mark.parametrize("absent_class", [False, True])
def test_coupled_gains_of_classes_match_brute_force(absent_class):
    """Categorical decisions, mean IoU: with every class in the labels (each class's gains
    depend on its own order only: one sort per class) and with a class absent (it starts to
    weigh at its first false positive: the order of all pairs)."""
    rng = np.random.default_rng(int(absent_class))
    miou = rewards.IoU(average="macro", num_classes=4)
    for _ in range(3):
        labels = rng.permutation(np.arange(30) % (3 if absent_class else 4)).astype(np.int32)
        if absent_class:
            labels[labels == 2] = 3  # classes 0, 1 and 3 only
        logits = rng.normal(size=(30, 4)) * 2
        probs = (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).astype(np.float32)
        got = miou.coupled_gains(labels, probs).numpy()
        np.testing.assert_allclose(got, _reference_class_pair_gains(labels, probs), atol=1e-6)


def test_coupled_gains_refuse_rewards_they_cannot_count():
    assert not rewards.Accuracy().supports_coupled_gains
    with pytest.raises(ValueError, match="context='mode'"):
        rewards.Accuracy().coupled_gains(tf.constant([1, 0]), tf.fill([2, 2], 0.5))
