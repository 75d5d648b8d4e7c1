"""Surrogate losses against slow references written plainly in NumPy (tolerance 1e-5), and the
Lovasz losses against the Lovasz extension of the Jaccard loss evaluated set by set."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from _surrogate_cases import ALL_LOSSES, segmentation_data  # noqa: E402
from sklearn.metrics import jaccard_score

from rlmetric import surrogates

RNG = np.random.default_rng(0)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _value(loss, y_true, y_pred, sample_weight=None):
    return float(loss(tf.constant(y_true), tf.constant(y_pred), sample_weight=sample_weight))


# --- NumPy references ------------------------------------------------------------------------


def ref_weighted_bce(y, logits, pos_weight):
    p = _sigmoid(logits.astype("float64"))
    per = -(pos_weight * y * np.log(p) + (1 - y) * np.log(1 - p))
    return per.reshape(len(y), -1).mean(1).mean()


def ref_focal(y, logits, gamma, alpha):
    p = _sigmoid(logits.astype("float64"))
    p_true = np.where(y == 1, p, 1 - p)
    per = -((1 - p_true) ** gamma) * np.log(p_true)
    if alpha is not None:
        per *= np.where(y == 1, alpha, 1 - alpha)
    return per.reshape(len(y), -1).mean(1).mean()


def ref_soft_f1(y, logits, average, weights=None, eps=1e-7):
    p = _sigmoid(logits.astype("float64"))
    w = np.ones(len(y)) if weights is None else weights
    w = w.reshape([-1] + [1] * (p.ndim - 1))
    if average == "binary":
        p, y, w = p.reshape(-1, 1), y.reshape(-1, 1), np.broadcast_to(w, y.shape).reshape(-1, 1)
    else:
        labels = p.shape[-1]
        w = np.broadcast_to(w, p.shape).reshape(-1, labels)
        p, y = p.reshape(-1, labels), y.reshape(-1, labels)
    scores = []
    for j in range(p.shape[1]):
        tp = sum(w[i, j] * p[i, j] * y[i, j] for i in range(len(p)))
        fp = sum(w[i, j] * p[i, j] * (1 - y[i, j]) for i in range(len(p)))
        fn = sum(w[i, j] * (1 - p[i, j]) * y[i, j] for i in range(len(p)))
        scores.append(2 * tp / (2 * tp + fp + fn + eps))
    return 1 - np.mean(scores)


def ref_dice(target, prob, *, jaccard, batch, squared, nr, dr):
    """MONAI's DiceLoss on channels-last one-hot/binary ``target`` and probabilities."""
    axes = tuple(range(1, target.ndim - 1))
    if batch:
        axes = (0,) + axes
    intersection = np.sum(target * prob, axis=axes)
    ground = np.sum(target, axis=axes)
    pred = np.sum(prob**2 if squared else prob, axis=axes)
    denominator = ground + pred
    if jaccard:
        denominator = 2.0 * (denominator - intersection)
    return np.mean(1.0 - (2.0 * intersection + nr) / (denominator + dr))


def jaccard_set_loss(mistakes: frozenset, positives: frozenset) -> float:
    """1 - IoU of the prediction that is wrong exactly on ``mistakes``."""
    predicted = (positives - mistakes) | (mistakes - positives)
    union = positives | predicted
    return 0.0 if not union else 1.0 - len(positives & predicted) / len(union)


def ref_lovasz_extension(errors, positives) -> float:
    """The Lovasz extension of the Jaccard set loss at ``errors``, by its definition:
    ``sum_i e_(i) (Delta({1..i}) - Delta({1..i-1}))`` over elements in decreasing error."""
    order = sorted(range(len(errors)), key=lambda i: -errors[i])
    total, previous, chosen = 0.0, 0.0, set()
    for i in order:
        chosen.add(i)
        current = jaccard_set_loss(frozenset(chosen), frozenset(positives))
        total += errors[i] * (current - previous)
        previous = current
    return total


def ref_lovasz_hinge(labels, logits, per_image, ignore=None):
    rows = [(labels[b], logits[b]) for b in range(len(labels))] if per_image else [(labels, logits)]
    losses = []
    for lab, log in rows:
        lab, log = lab.ravel(), log.ravel().astype("float64")
        keep = np.ones(lab.size, bool) if ignore is None else lab != ignore
        lab, log = lab[keep], log[keep]
        errors = np.maximum(0.0, 1.0 - log * (2 * lab - 1))
        losses.append(ref_lovasz_extension(list(errors), {i for i in range(lab.size) if lab[i]}))
    return float(np.mean(losses))


def ref_lovasz_softmax(labels, logits, per_image, classes="present", ignore=None):
    probs = _softmax(logits.astype("float64"))
    rows = [(labels[b], probs[b]) for b in range(len(labels))] if per_image else [(labels, probs)]
    losses = []
    for lab, prob in rows:
        lab, prob = lab.ravel(), prob.reshape(-1, prob.shape[-1])
        keep = np.ones(lab.size, bool) if ignore is None else lab != ignore
        lab, prob = lab[keep], prob[keep]
        per_class = []
        for c in range(prob.shape[-1]):
            fg = (lab == c).astype(float)
            if classes == "present" and fg.sum() == 0:
                continue
            positives = {i for i in range(lab.size) if fg[i]}
            per_class.append(ref_lovasz_extension(list(np.abs(fg - prob[:, c])), positives))
        losses.append(np.mean(per_class) if per_class else 0.0)
    return float(np.mean(losses))


# --- value tests ------------------------------------------------------------------------------

SHAPES = [(16,), (16, 1), (8, 5), (4, 6, 6, 1)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("pos_weight", [1.0, 3.5])
def test_weighted_bce_matches_numpy(shape, pos_weight):
    y = (RNG.random(shape) < 0.3).astype("float32")
    logits = RNG.normal(scale=2.0, size=shape).astype("float32")
    value = _value(surrogates.WeightedBCE(pos_weight), y, logits)
    assert value == pytest.approx(ref_weighted_bce(y, logits, pos_weight), rel=1e-5)


def test_weighted_bce_of_one_is_keras_bce_and_probabilities_agree():
    y = (RNG.random((32, 3)) < 0.4).astype("float32")
    logits = RNG.normal(size=(32, 3)).astype("float32")
    bce = keras.losses.BinaryCrossentropy(from_logits=True)
    assert _value(surrogates.WeightedBCE(1.0), y, logits) == pytest.approx(
        float(bce(y, logits)), rel=1e-5
    )
    from_probs = surrogates.WeightedBCE(2.0, from_logits=False)
    assert _value(from_probs, y, _sigmoid(logits).astype("float32")) == pytest.approx(
        _value(surrogates.WeightedBCE(2.0), y, logits), rel=1e-4
    )


def test_weighted_bce_per_label_weights():
    y = (RNG.random((20, 3)) < 0.4).astype("float32")
    logits = RNG.normal(size=(20, 3)).astype("float32")
    weights = np.array([1.0, 2.0, 5.0])
    expected = ref_weighted_bce(y, logits, weights)
    assert _value(surrogates.WeightedBCE([1.0, 2.0, 5.0]), y, logits) == pytest.approx(
        expected, rel=1e-5
    )


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("gamma,alpha", [(0.0, None), (2.0, 0.25), (1.5, 0.7)])
def test_focal_matches_numpy(shape, gamma, alpha):
    y = (RNG.random(shape) < 0.3).astype("float32")
    logits = RNG.normal(scale=2.0, size=shape).astype("float32")
    value = _value(surrogates.Focal(gamma, alpha), y, logits)
    assert value == pytest.approx(ref_focal(y, logits, gamma, alpha), rel=1e-5)


@pytest.mark.parametrize(
    "shape,average",
    [
        ((32,), "binary"),
        ((32, 1), "binary"),
        ((16, 4), "macro"),
        ((16, 4), "binary"),
        ((3, 5, 5, 2), "macro"),
    ],
)
@pytest.mark.parametrize("weighted", [False, True])
def test_soft_f1_matches_numpy(shape, average, weighted):
    y = (RNG.random(shape) < 0.3).astype("float32")
    logits = RNG.normal(scale=2.0, size=shape).astype("float32")
    weights = RNG.random(shape[0]).astype("float32") if weighted else None
    value = _value(surrogates.SoftF1(average), y, logits, weights)
    assert value == pytest.approx(ref_soft_f1(y, logits, average, weights), rel=1e-5, abs=1e-6)


def test_soft_f1_without_positives_is_one_minus_zero():
    y = np.zeros((8, 1), "float32")
    assert _value(surrogates.SoftF1(), y, RNG.normal(size=(8, 1)).astype("float32")) == 1.0


@pytest.mark.parametrize("jaccard", [False, True])
@pytest.mark.parametrize("batch", [False, True])
@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("smooth", [(1e-5, 1e-5), (0.0, 1e-6), (1.0, 1.0)])
def test_soft_dice_and_jaccard_sigmoid_match_monai_reference(jaccard, batch, squared, smooth):
    y = (RNG.random((4, 6, 6, 2)) < 0.3).astype("float32")
    y[0, ..., 1] = 0  # an empty channel in one image
    logits = RNG.normal(scale=2.0, size=y.shape).astype("float32")
    cls = surrogates.SoftJaccard if jaccard else surrogates.SoftDice
    loss = cls(smooth_nr=smooth[0], smooth_dr=smooth[1], squared_pred=squared, batch=batch)
    expected = ref_dice(
        y,
        _sigmoid(logits.astype("float64")),
        jaccard=jaccard,
        batch=batch,
        squared=squared,
        nr=smooth[0],
        dr=smooth[1],
    )
    assert _value(loss, y, logits) == pytest.approx(expected, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("jaccard", [False, True])
@pytest.mark.parametrize("include_background", [True, False])
@pytest.mark.parametrize("one_hot", [False, True])
def test_soft_dice_softmax_matches_monai_reference(jaccard, include_background, one_hot):
    labels = RNG.integers(0, 4, size=(3, 5, 5))
    logits = RNG.normal(scale=2.0, size=(3, 5, 5, 4)).astype("float32")
    target = np.eye(4)[labels]
    prob = _softmax(logits.astype("float64"))
    if not include_background:
        target, prob = target[..., 1:], prob[..., 1:]
    cls = surrogates.SoftJaccard if jaccard else surrogates.SoftDice
    loss = cls("softmax", include_background=include_background)
    y = np.eye(4, dtype="float32")[labels] if one_hot else labels.astype("int32")
    expected = ref_dice(target, prob, jaccard=jaccard, batch=False, squared=False, nr=1e-5, dr=1e-5)
    assert _value(loss, y, logits) == pytest.approx(expected, rel=1e-5)


def test_soft_dice_batch_level_sample_weight_weights_the_sums():
    y = (RNG.random((4, 5, 5, 1)) < 0.4).astype("float32")
    logits = RNG.normal(size=y.shape).astype("float32")
    loss = surrogates.SoftDice(batch=True)
    # an integer weight is the same as repeating the example
    doubled = _value(loss, y, logits, np.array([2.0, 1.0, 1.0, 1.0], "float32"))
    repeated = _value(loss, np.concatenate([y, y[:1]]), np.concatenate([logits, logits[:1]]))
    assert doubled == pytest.approx(repeated, rel=1e-6)


@pytest.mark.parametrize("per_image", [True, False])
@pytest.mark.parametrize("seed", range(4))
def test_lovasz_hinge_is_the_lovasz_extension(per_image, seed):
    rng = np.random.default_rng(seed)
    labels = (rng.random((3, 3, 3, 1)) < 0.4).astype("int32")
    labels[0] = 0  # an image without positives
    logits = rng.normal(scale=1.5, size=labels.shape).astype("float32")
    value = _value(surrogates.LovaszHinge(per_image=per_image), labels, logits)
    assert value == pytest.approx(ref_lovasz_hinge(labels, logits, per_image), abs=1e-5)


def test_lovasz_hinge_at_a_vertex_is_one_minus_iou():
    """Margins of 1 on right outputs and 0 on wrong ones put the hinge errors at a vertex of
    the cube, where the Lovasz extension equals the Jaccard loss of the hard decisions."""
    y = (RNG.random(40) < 0.3).astype("int32")
    predicted = y.copy()
    flip = RNG.choice(40, 7, replace=False)
    predicted[flip] = 1 - predicted[flip]
    logits = np.where(predicted == y, 2.0 * y - 1.0, 0.0).astype("float32")
    value = _value(surrogates.LovaszHinge(per_image=False), y, logits)
    assert value == pytest.approx(1.0 - jaccard_score(y, predicted), abs=1e-6)


@pytest.mark.parametrize("per_image", [True, False])
@pytest.mark.parametrize("classes", ["present", "all"])
@pytest.mark.parametrize("seed", range(3))
def test_lovasz_softmax_is_the_lovasz_extension(per_image, classes, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, size=(2, 3, 3)).astype("int32")
    labels[0][labels[0] == 2] = 0  # a class absent from one image
    logits = rng.normal(scale=1.5, size=(2, 3, 3, 4)).astype("float32")  # class 3 never present
    loss = surrogates.LovaszSoftmax(per_image=per_image, classes=classes)
    expected = ref_lovasz_softmax(labels, logits, per_image, classes)
    assert _value(loss, labels, logits) == pytest.approx(expected, abs=1e-5)


def test_lovasz_ignore_index_equals_dropping_the_pixels():
    labels = RNG.integers(0, 3, size=(2, 4, 4)).astype("int32")
    labels[RNG.random(labels.shape) < 0.3] = 255
    logits = RNG.normal(size=(2, 4, 4, 3)).astype("float32")
    for per_image in (True, False):
        loss = surrogates.LovaszSoftmax(per_image=per_image, ignore_index=255)
        expected = ref_lovasz_softmax(labels, logits, per_image, ignore=255)
        assert _value(loss, labels, logits) == pytest.approx(expected, abs=1e-5)
    binary = np.where(labels == 255, 255, labels % 2).astype("int32")
    hinge = surrogates.LovaszHinge(per_image=True, ignore_index=255)
    expected = ref_lovasz_hinge(binary, logits[..., 0], True, ignore=255)
    assert _value(hinge, binary, logits[..., 0]) == pytest.approx(expected, abs=1e-5)


def test_lovasz_jaccard_gradient_sums_to_the_loss_of_flipping_everything():
    targets = tf.constant((RNG.random((5, 12)) < 0.4).astype("float32"))
    gradient = surrogates.lovasz_jaccard_gradient(targets)
    # sum over all steps = J(all elements flipped) - J(nothing) = 1 where positives exist
    has_positive = tf.reduce_any(targets > 0, axis=-1)
    np.testing.assert_allclose(tf.reduce_sum(gradient, -1)[has_positive], 1.0, atol=1e-6)
    assert np.all(gradient.numpy() >= -1e-7)  # the Jaccard loss is monotone in the mistakes


# --- Keras integration --------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(ALL_LOSSES))
def test_loss_trains_under_jit_and_round_trips_its_config(name):
    make, kind = ALL_LOSSES[name]
    loss = make()
    x, y, channels = segmentation_data(kind, RNG)
    eager = _value(loss, y, RNG.normal(size=y.shape[:3] + (channels,)).astype("float32"))
    assert np.isfinite(eager)
    # (the same value in tf.function and under XLA: tests/test_execution_modes.py)
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(restored) is type(loss) and restored.get_config() == loss.get_config()
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((8, 8, 2)), keras.layers.Conv2D(channels, 3, padding="same")]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=loss, jit_compile=True)
    history = model.fit(x, y, batch_size=4, epochs=8, verbose=0)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: surrogates.WeightedBCE(0.0), "pos_weight"),
        (lambda: surrogates.WeightedBCE([1.0, float("nan")]), "pos_weight"),
        (lambda: surrogates.Focal(gamma=-1.0), "gamma"),
        (lambda: surrogates.Focal(alpha=1.5), "alpha"),
        (lambda: surrogates.SoftF1(average="micro"), "average"),
        (lambda: surrogates.SoftDice(activation="relu"), "activation"),
        (lambda: surrogates.SoftDice(include_background=False), "include_background"),
        (lambda: surrogates.SoftJaccard(smooth_dr=-1.0), "smooth_dr"),
        (lambda: surrogates.LovaszSoftmax(classes="some"), "classes"),
    ],
)
def test_bad_arguments_name_the_argument(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_shape_mismatch_and_batch_level_lovasz_weights_are_refused():
    with pytest.raises(ValueError, match=r"y_true of shape \(8, 2\)"):
        surrogates.Focal()(tf.zeros([8, 2]), tf.zeros([8, 3]))
    with pytest.raises(ValueError, match="class ids of shape"):
        surrogates.LovaszSoftmax()(tf.zeros([2, 4, 4, 4, 4], tf.int32), tf.zeros([2, 4, 4, 3]))
    with pytest.raises(ValueError, match="per_image=True"):
        surrogates.LovaszHinge(per_image=False)(
            tf.zeros([4, 1]), tf.zeros([4, 1]), sample_weight=tf.ones([4])
        )
    with pytest.raises(TypeError, match="ignore_index"):
        surrogates.LovaszSoftmax(ignore_index=2.5)


def test_the_pure_functions_on_hand_computed_values():
    one = np.array([[1.0]])
    # 3 log 2: the positive term weighted 3 at p = 1/2
    assert float(surrogates.weighted_bce(one, [[0.0]], pos_weight=3.0)[0]) == pytest.approx(
        3 * np.log(2), abs=1e-6
    )
    # log 2 * (1 - 1/2)^2 * alpha
    assert float(surrogates.focal(one, [[0.0]], gamma=2.0, alpha=0.25)[0]) == pytest.approx(
        np.log(2) * 0.25 * 0.25, abs=1e-6
    )
    y, p = np.array([[1.0], [0.0]]), np.array([[0.8], [0.4]])
    # tp 0.8, fp 0.4, fn 0.2: F1 = 1.6 / 2.2
    assert float(surrogates.soft_f1(y, p, from_logits=False)) == pytest.approx(
        1 - 1.6 / 2.2, abs=1e-6
    )
    # one example of two pixels: Dice (2 * 0.8 + s) / (1 + 1.2 + s)
    dice = float(surrogates.soft_dice(y[None], p[None], from_logits=False)[0])
    assert dice == pytest.approx(1 - (1.6 + 1e-5) / (2.2 + 1e-5), abs=1e-6)
    # hinge errors 0.5 (the negative) then -1: Lovasz weights 1/2, 1/2 -> 0.5 * 0.5
    hinge = surrogates.lovasz_hinge(y, np.array([[2.0], [-0.5]]), per_image=False)
    assert float(hinge) == pytest.approx(0.25, abs=1e-6)
    # a confident right softmax costs (almost) nothing
    labels = np.array([[0, 2, 1]])
    assert float(surrogates.lovasz_softmax(labels, 20.0 * np.eye(3)[labels])) < 1e-6


def test_the_classes_call_the_functions_with_their_options():
    y = (RNG.random((6, 3)) < 0.4).astype("float32")
    logits = RNG.normal(size=(6, 3)).astype("float32")
    pairs = [
        (surrogates.SoftF1("macro"), surrogates.soft_f1(y, logits, average="macro")),
        (
            surrogates.Focal(1.0, None),
            tf.reduce_mean(surrogates.focal(y, logits, gamma=1.0, alpha=None)),
        ),
        (
            surrogates.LovaszHinge(per_image=False),
            surrogates.lovasz_hinge(y, logits, per_image=False),
        ),
    ]
    for loss, value in pairs:
        assert float(loss(y, logits)) == pytest.approx(float(value), abs=1e-6), loss.name
