import keras
import numpy as np
import pytest
import tensorflow as tf

from rlmetric import layers

THRESHOLDS = [0.125, 0.375, 0.625, 0.875]
RNG = np.random.default_rng(0)


def test_staircase_gives_the_quantized_levels():
    x = tf.constant([-1.0, 0.2, 0.4, 0.7, 0.9, 2.0])
    np.testing.assert_allclose(
        layers.staircase(x, THRESHOLDS, [0.25] * 4), [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    )
    assert layers.SmoothStep(THRESHOLDS).levels == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_smooth_step_value_and_analytic_gradient():
    layer = layers.SmoothStep(
        THRESHOLDS, sharpness=7.0, heights=[0.1, 0.2, 0.3, 0.4], low=-1.0, dtype="float64"
    )
    x = tf.constant(RNG.uniform(-0.5, 1.5, size=(6, 3)), tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
    grad = tape.gradient(y, x)
    s = 1.0 / (1.0 + np.exp(-7.0 * (x.numpy()[..., None] - np.array(THRESHOLDS))))
    h = np.array([0.1, 0.2, 0.3, 0.4])
    np.testing.assert_allclose(y, -1.0 + (h * s).sum(-1), rtol=1e-12)
    eps = 1e-6
    numeric = (layer(x + eps) - layer(x - eps)) / (2 * eps)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)


def test_smooth_step_approaches_the_staircase_as_it_sharpens():
    x = tf.constant(RNG.uniform(-0.5, 1.5, size=200), tf.float32)
    hard = layers.staircase(x, THRESHOLDS, [0.25] * 4)
    errors = [
        float(tf.reduce_mean(tf.abs(layers.SmoothStep(THRESHOLDS, sharpness=s)(x) - hard)))
        for s in (5.0, 50.0, 500.0)
    ]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 0.01


def test_straight_through_step_is_hard_forward_identity_backward():
    layer = layers.StraightThroughStep(THRESHOLDS)
    x = tf.constant(RNG.uniform(-0.5, 1.5, size=(5, 2)), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        total = tf.reduce_sum(3.0 * y)
    np.testing.assert_allclose(y, layers.staircase(x, THRESHOLDS, [0.25] * 4), atol=1e-7)
    np.testing.assert_allclose(tape.gradient(total, x), 3.0)


@pytest.mark.parametrize("cls", [layers.SmoothStep, layers.StraightThroughStep])
def test_step_layers_save_and_train_in_a_model(cls, tmp_path):
    keras.utils.set_random_seed(0)
    x = RNG.uniform(size=(64, 2)).astype("float32")
    y = layers.staircase(x.mean(1), THRESHOLDS, [0.25] * 4).numpy()
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1), cls(THRESHOLDS)])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse", jit_compile=True)
    history = model.fit(x, y[:, None], epochs=15, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    path = tmp_path / "step.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    np.testing.assert_allclose(restored.predict(x, verbose=0), model.predict(x, verbose=0))
    assert restored.layers[-1].get_config() == model.layers[-1].get_config()


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"thresholds": []}, "thresholds"),
        ({"thresholds": [0.5, 0.2]}, "increasing"),
        ({"thresholds": [0.1, 0.2], "heights": [1.0, 2.0, 3.0]}, "heights"),
        ({"thresholds": [0.1], "sharpness": 0.0}, "sharpness"),
        ({"thresholds": [0.1], "low": float("inf")}, "low"),
    ],
)
def test_bad_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        layers.SmoothStep(**kwargs)
