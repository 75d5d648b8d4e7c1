"""StepNetworkTrainer: unbiased estimators (checked against the exact gradient by enumerating
every pattern of the step units of a tiny network), the hard network at inference, XLA, saving,
and the errors raised before training."""

from __future__ import annotations

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from rlmetric import rewards, step_networks
from rlmetric.layers import StochasticStep
from rlmetric.step_networks import (
    StepNetworkTrainer,
    chain_segments,
    disarm_logit_gradient,
    local_expectation_loss,
    score_function_loss,
)
from rlmetric.step_surrogates import dense_outputs_of_moves

DRAWS = 3000  # Monte Carlo draws of each estimator; tolerance 4.5 standard errors + 2e-3


def _tiny(step_layers=(StochasticStep,), units=(3,), outputs=2, seed=0, levels_layer=None):
    keras.utils.set_random_seed(seed)
    stack = [keras.Input((2,))]
    for make, width in zip(step_layers, units, strict=True):
        stack += [
            keras.layers.Dense(width, kernel_initializer=keras.initializers.RandomNormal(0, 1.5)),
            make(),
        ]
    stack.append(keras.layers.Dense(outputs))
    if levels_layer is not None:
        stack.append(levels_layer)
    return keras.Sequential(stack)


def _expected_objective(segments, index, h, y, objective):
    """Exact expectation over every level pattern of the step layers from ``index`` on, for
    one example ``h`` ``[1, ...]``; ``objective(y, output, levels)`` at the leaves."""
    segment = segments[index]
    a = segment.apply(h, training=False)
    if segment.step is None:
        return objective(y, a, None)
    log_p = tf.nn.log_softmax(segment.step.level_logits(a), axis=-1)[0]  # [U, V]
    units, levels = log_p.shape
    total = 0.0
    for pattern in itertools.product(range(levels), repeat=units):
        weight = tf.exp(tf.reduce_sum(tf.gather(log_p, pattern, batch_dims=1)))
        chosen = tf.constant([pattern], tf.int32)
        if index + 1 == len(segments) - 1 and not segments[-1].layers:  # output step layer
            value = objective(y, None, chosen)
        else:
            value = _expected_objective(
                segments, index + 1, segment.step.level_values(chosen), y, objective
            )
        total += weight * value
    return total


def _exact_loss_gradient(model, x, y):
    segments = chain_segments(model)
    crossentropy = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    with tf.GradientTape() as tape:
        per_example = [
            _expected_objective(
                segments, 0, x[b : b + 1], y[b : b + 1], lambda t, o, _: crossentropy(t, o)
            )
            for b in range(len(x))
        ]
        expected = tf.add_n(per_example) / len(x)
    return [g.numpy() for g in tape.gradient(expected, model.trainable_variables)]


def _monte_carlo(trainer, x, y, draws=DRAWS):
    samples = [trainer.estimate_gradient(x, y, seed=(i, 7)) for i in range(draws)]
    stacked = [np.stack(parts) for parts in zip(*samples, strict=True)]
    return [s.mean(0) for s in stacked], [s.std(0) / np.sqrt(draws) for s in stacked]


def _assert_unbiased(estimate, errors, exact):
    for mean, error, truth in zip(estimate, errors, exact, strict=True):
        np.testing.assert_array_less(np.abs(mean - truth), 4.5 * error + 2e-3)


X = np.array([[0.5, -1.0], [-0.3, 0.8]], "float32")
Y = np.array([1, 0], "int32")


@pytest.mark.parametrize("estimator", ["reinforce", "disarm", "local_expectation"])
def test_estimators_are_unbiased_on_three_binary_units(estimator):
    model = _tiny()
    trainer = StepNetworkTrainer(model, estimator=estimator, num_samples=4, seed=0)
    exact = _exact_loss_gradient(model, X, Y)
    estimate, errors = _monte_carlo(trainer, X, Y)
    _assert_unbiased(estimate, errors, exact)
    # the layer below the step units does get a gradient (not only the backprop top)
    assert np.abs(exact[0]).max() > 0.01


@pytest.mark.parametrize("estimator", ["reinforce", "disarm", "local_expectation"])
def test_estimators_are_unbiased_through_two_step_layers(estimator):
    model = _tiny(step_layers=(StochasticStep, StochasticStep), units=(2, 2))
    trainer = StepNetworkTrainer(model, estimator=estimator, num_samples=4, seed=0)
    exact = _exact_loss_gradient(model, X, Y)
    estimate, errors = _monte_carlo(trainer, X, Y)
    _assert_unbiased(estimate, errors, exact)
    assert np.abs(exact[0]).max() > 0.005  # credit reaches the first layer


@pytest.mark.parametrize("estimator", ["reinforce", "local_expectation"])
def test_estimators_are_unbiased_on_multilevel_units(estimator):
    multilevel = lambda: StochasticStep([-0.5, 0.5], temperature=0.7)  # noqa: E731
    model = _tiny(step_layers=(multilevel,), units=(2,))
    trainer = StepNetworkTrainer(model, estimator=estimator, num_samples=4, seed=0)
    exact = _exact_loss_gradient(model, X, Y)
    estimate, errors = _monte_carlo(trainer, X, Y)
    _assert_unbiased(estimate, errors, exact)


@pytest.mark.parametrize("estimator", ["reinforce", "disarm"])
def test_batch_reward_estimators_are_unbiased(estimator):
    # hidden step layer -> one output step unit per example; reward: the batch accuracy
    model = _tiny(units=(2,), outputs=1, levels_layer=StochasticStep())
    trainer = StepNetworkTrainer(model, reward="accuracy", estimator=estimator, num_samples=4)
    segments = chain_segments(model)
    accuracy = rewards.get("accuracy")
    y = np.array([[1], [0]], "int32")

    def joint(b, decided):
        """E[accuracy] over the patterns of examples b.. given the decisions of those before."""
        if b == len(X):
            levels = tf.stack(decided)[None]  # [1, B, 1]
            return accuracy(tf.constant(y), levels)[0]
        leaf = lambda t, o, levels: joint(b + 1, [*decided, levels[0]])  # noqa: E731
        return _expected_objective(segments, 0, X[b : b + 1], None, leaf)

    with tf.GradientTape() as tape:
        expected = joint(0, [])
    exact = [-g.numpy() for g in tape.gradient(expected, model.trainable_variables)]
    estimate, errors = _monte_carlo(trainer, X, y)
    _assert_unbiased(estimate, errors, exact)
    assert np.abs(exact[0]).max() > 0.005


def test_a_reward_of_several_output_units_gets_sets_of_shape_k_b_units():
    seen = []

    def hits(y_true, levels):  # [B, U], [K, B, U] -> [K]
        seen.append((tuple(y_true.shape), tuple(levels.shape)))
        same = tf.equal(levels, tf.cast(y_true, levels.dtype)[None])
        return tf.reduce_mean(tf.cast(same, tf.float32), axis=[1, 2])

    model = _tiny(units=(3,), outputs=2, levels_layer=StochasticStep())
    trainer = StepNetworkTrainer(model, reward=hits, num_samples=4, seed=0)
    y = np.array([[1, 0], [0, 1]], "int32")
    gradients = trainer.estimate_gradient(X, y)
    assert seen == [((2, 2), (4, 2, 2))]
    assert all(np.all(np.isfinite(g)) for g in gradients)
    trainer.compile()
    logged = trainer.evaluate(X, y, verbose=0, return_dict=True)["reward"]
    levels = model(X, training=False).numpy()
    assert logged == pytest.approx(np.mean(levels == y), abs=1e-6)


@pytest.mark.parametrize("estimator", ["disarm", "local_expectation"])
def test_three_step_layers_of_different_widths_rerun_with_their_own_noise(estimator):
    # the re-runs above step layer l take the noise of layers l + 1, ... (shapes differ)
    model = _tiny(step_layers=(StochasticStep,) * 3, units=(2, 3, 4))
    trainer = StepNetworkTrainer(model, estimator=estimator, num_samples=4, seed=0)
    gradients = trainer.estimate_gradient(X, Y)
    assert [g.shape for g in gradients] == [tuple(v.shape) for v in model.trainable_variables]
    assert all(np.all(np.isfinite(g)) for g in gradients)
    assert np.abs(gradients[0]).max() > 0


def test_disarm_gradient_by_hand():
    # f(b) = 0.2, f(b~) = 1.0; unit 0 differs (b~ = 1: sign -1), unit 1 agrees (no credit)
    g = disarm_logit_gradient(
        tf.constant([[0.2]]),
        tf.constant([[1.0]]),
        tf.constant([[[0, 1]]]),
        tf.constant([[[1, 1]]]),
        tf.constant([[[-1.0, 2.0]]]),
    )
    expected = 0.5 * (0.2 - 1.0) * -1.0 / (1.0 + np.exp(-1.0))
    np.testing.assert_allclose(g.numpy(), [[[expected, 0.0]]], rtol=1e-6)


def test_local_expectation_and_score_function_losses_by_hand():
    p = tf.Variable([[[[0.2, 0.8], [0.6, 0.4]]]])  # [K=1, B=1, U=2, V=2]
    losses = tf.constant([[[[1.0, 3.0], [2.0, 0.5]]]])
    with tf.GradientTape() as tape:
        value = local_expectation_loss(p, losses)
    np.testing.assert_allclose(float(value), 0.2 + 2.4 + 1.2 + 0.2, rtol=1e-6)
    np.testing.assert_allclose(tape.gradient(value, p).numpy(), losses.numpy())  # stopped
    log_probs = tf.constant([[-1.0, -3.0], [-2.0, -0.5]])
    advantages = tf.constant([[1.0, -1.0], [0.5, 2.0]])
    expected = -np.mean([(-1.0 + 3.0) / 2, (-1.0 - 1.0) / 2])
    np.testing.assert_allclose(float(score_function_loss(log_probs, advantages)), expected)
    batch = -np.mean([-1.0 + 3.0, -1.0 - 1.0])
    assert float(score_function_loss(log_probs, advantages, per_example=False)) == batch


def test_hard_network_at_inference_is_the_step_computation_by_hand():
    model = keras.Sequential(
        [
            keras.Input((2,)),
            keras.layers.Dense(3),
            StochasticStep(),
            keras.layers.Dense(2),
            StochasticStep([0.5, 1.5], heights=[1.0, 2.0]),
        ]
    )
    w1 = np.array([[1.0, -1.0, 0.5], [2.0, 1.0, -1.0]], "float32")
    b1 = np.array([0.0, 0.5, -0.2], "float32")
    w2 = np.array([[1.0, 0.3], [1.0, -2.0], [0.7, 2.0]], "float32")
    b2 = np.array([0.0, 0.1], "float32")
    model.set_weights([w1, b1, w2, b2])
    x = np.random.default_rng(0).normal(size=(50, 2)).astype("float32")
    hidden = (x @ w1 + b1 > 0).astype("float32")
    score = hidden @ w2 + b2
    expected = (score > 0.5) * 1.0 + (score > 1.5) * 2.0
    np.testing.assert_array_equal(model.predict(x, verbose=0), expected)
    np.testing.assert_array_equal(model(x, training=False).numpy(), expected)
    trainer = StepNetworkTrainer(model, loss="mse")
    trainer.compile()
    assert trainer.evaluate(x, expected, verbose=0) == pytest.approx(0.0)


def test_evaluate_runs_the_layers_at_inference():
    # dropout below the step layer: evaluate is the deterministic hard network, every call
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((2,)), keras.layers.Dropout(0.9), _dense(8), StochasticStep(), _dense(2)]
    )
    x, y = _xor(256)
    trainer = StepNetworkTrainer(model, seed=0)
    trainer.compile(metrics=["accuracy"])
    first = trainer.evaluate(x, y, verbose=0, return_dict=True)
    second = trainer.evaluate(x, y, verbose=0, return_dict=True)
    assert first == second
    logits = model(x, training=False).numpy()
    assert first["accuracy"] == pytest.approx(np.mean(logits.argmax(-1) == y), abs=1e-6)


class _UnusedWeight(keras.layers.Layer):
    """Passes its input through and owns a trainable weight that nothing reads."""

    def build(self, input_shape):
        self.unused = self.add_weight(shape=(3,), initializer="ones")

    def call(self, inputs):
        return inputs


def test_estimate_gradient_gives_zeros_for_variables_the_objective_does_not_read():
    model = keras.Sequential(
        [
            keras.Input((2,)),
            _dense(3),
            StochasticStep(),
            _UnusedWeight(name="passthrough"),
            _dense(2),
        ]
    )
    trainer = StepNetworkTrainer(model, seed=0)
    gradients = trainer.estimate_gradient(X, Y)
    shapes = [tuple(v.shape) for v in model.trainable_variables]
    assert [g.shape for g in gradients] == shapes
    passthrough = model.get_layer("passthrough")
    unused = [i for i, v in enumerate(model.trainable_variables) if v is passthrough.unused]
    assert len(unused) == 1
    np.testing.assert_array_equal(gradients[unused[0]], np.zeros(3))
    assert all(np.abs(g).sum() > 0 for i, g in enumerate(gradients) if i != unused[0])


class _Recorder(keras.layers.Layer):
    """The identity; records the ``training`` flag and the rows of each call (at tracing)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.calls = []

    def call(self, inputs, training=None):
        self.calls.append((training, inputs.shape[0]))
        return inputs


@pytest.mark.parametrize(
    ("estimator", "rows_above"),
    [
        ("reinforce", [8]),  # K = 4 sample sets of B = 2 rows, one pass
        ("disarm", [4, 4]),  # K / 2 = 2 pairs: the drawn half and its antithetic re-run
        ("local_expectation", [8, 24]),  # and every move of U = 3 binary units: 3 x 8 rows
    ],
)
def test_each_estimator_runs_the_layers_above_on_the_rows_it_promises(estimator, rows_above):
    below, above = _Recorder(name="below"), _Recorder(name="above")
    model = keras.Sequential(
        [keras.Input((2,)), below, _dense(3), StochasticStep(), above, _dense(2)]
    )
    below.calls.clear()  # (the symbolic call that built the model)
    above.calls.clear()
    trainer = StepNetworkTrainer(model, estimator=estimator, num_samples=4, seed=0)
    trainer.estimate_gradient(X, Y)
    # the layers below the first step layer run once, for the B rows; all in training mode
    assert below.calls == [(True, 2)]
    assert above.calls == [(True, rows) for rows in rows_above]
    below.calls.clear()
    above.calls.clear()
    trainer.compile()
    trainer.evaluate(X, Y, verbose=0)
    assert {flag for flag, _ in below.calls + above.calls} == {False}


def test_the_trainer_seed_decides_the_draws():
    x, y = _xor(64)

    def trained(seed):
        trainer = StepNetworkTrainer(_tiny(seed=5), seed=seed)
        trainer.compile(keras.optimizers.SGD(0.1))
        history = trainer.fit(x, y, 64, 2, 0)  # keras.Model.fit's positional arguments
        assert history.epoch == [0, 1]
        return np.concatenate([w.ravel() for w in trainer.model.get_weights()])

    first = trained(0)
    np.testing.assert_array_equal(first, trained(0))
    assert not np.allclose(first, trained(1))


def test_training_call_draws_levels_of_the_distribution():
    step = StochasticStep(temperature=1.0, seed=3)
    x = np.full((20_000, 1), 0.8, "float32")
    drawn = step(x, training=True).numpy()
    assert set(np.unique(drawn)) == {0.0, 1.0}
    assert abs(drawn.mean() - 1 / (1 + np.exp(-0.8))) < 0.015


def _xor(n=512):
    x = np.random.default_rng(0).normal(size=(n, 2)).astype("float32")
    return x, ((x[:, 0] > 0) ^ (x[:, 1] > 0)).astype("int32")


@pytest.mark.parametrize("estimator", ["reinforce", "disarm", "local_expectation"])
@pytest.mark.parametrize("jit_compile", [False, True], ids=["graph", "xla"])
def test_fit_learns_xor_with_hard_hidden_units(estimator, jit_compile):
    x, y = _xor()
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((2,)),
            keras.layers.Dense(16),
            StochasticStep(temperature=0.3),
            keras.layers.Dense(2),
        ]
    )
    trainer = StepNetworkTrainer(model, estimator=estimator, seed=0)
    trainer.compile(keras.optimizers.Adam(0.05), metrics=["accuracy"], jit_compile=jit_compile)
    trainer.fit(x, y, batch_size=64, epochs=20, verbose=0)
    # a linear model cannot beat ~0.5 on XOR; hard hidden units can
    assert trainer.evaluate(x, y, verbose=0, return_dict=True)["accuracy"] > 0.85


def test_saving_the_model_and_the_trainer(tmp_path):
    x, y = _xor(128)
    model = _tiny(units=(4,))
    trainer = StepNetworkTrainer(model, estimator="disarm", num_samples=4, seed=1)
    trainer.compile(keras.optimizers.Adam(0.01), metrics=["accuracy"])
    trainer.fit(x, y, batch_size=32, epochs=1, verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert isinstance(loaded.layers[1], StochasticStep)
    trainer.save(tmp_path / "trainer.keras")
    again = keras.saving.load_model(tmp_path / "trainer.keras")
    assert isinstance(again, StepNetworkTrainer)
    assert (again.estimator, again.num_samples, again.seed) == ("disarm", 4, 1)
    np.testing.assert_array_equal(again.predict(x, verbose=0), trainer.predict(x, verbose=0))
    again.fit(x, y, batch_size=32, epochs=1, verbose=0)  # trains on


def test_nonfinite_loss_stops_fit_without_touching_the_weights():
    x, y = _xor(64)
    model = _tiny(units=(4,))
    before = [w.copy() for w in model.get_weights()]

    def broken(y_true, y_pred):
        return tf.reduce_mean(y_pred, axis=-1) * np.inf

    trainer = StepNetworkTrainer(model, loss=broken, seed=0)
    trainer.compile()
    with pytest.raises(FloatingPointError, match="Non-finite"):
        trainer.fit(x, y, batch_size=64, epochs=1, verbose=0)
    for old, new in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)


def test_the_regularisers_of_the_model_are_added_to_the_objective():
    # the same draws (same seed, same weights): the two updates differ by the L2 gradient alone
    x, y = _xor(32)
    penalty, learning_rate = 0.5, 0.1

    def build(regularizer):
        keras.utils.set_random_seed(4)
        return keras.Sequential(
            [
                keras.Input((2,)),
                keras.layers.Dense(3, kernel_regularizer=regularizer),
                StochasticStep(),
                _dense(2),
            ]
        )

    kernels = []
    for regularizer in (None, keras.regularizers.L2(penalty)):
        model = build(regularizer)
        start = model.layers[0].kernel.numpy()
        trainer = StepNetworkTrainer(model, seed=0)
        trainer.compile(keras.optimizers.SGD(learning_rate))
        trainer.fit(x, y, batch_size=32, epochs=1, verbose=0)
        kernels.append(model.layers[0].kernel.numpy())
    np.testing.assert_allclose(
        kernels[1] - kernels[0], -learning_rate * 2 * penalty * start, rtol=1e-4, atol=1e-6
    )


def _dense(units=2):
    return keras.layers.Dense(units)


@pytest.mark.parametrize(
    ("make", "options", "error", "match"),
    [
        (lambda: keras.Sequential([keras.Input((2,)), _dense()]), {}, ValueError, "no Stoch"),
        (
            lambda: _tiny(step_layers=(lambda: StochasticStep([0.0, 1.0]),), units=(2,)),
            {"estimator": "disarm"},
            ValueError,
            "binary units",
        ),
        (_tiny, {"estimator": "disarm", "num_samples": 3}, ValueError, "even"),
        (_tiny, {"num_samples": 1}, ValueError, "num_samples must be >= 2"),
        (_tiny, {"estimator": "stein"}, ValueError, "estimator must be one of"),
        (_tiny, {"reward": "accuracy"}, ValueError, "must end with a StochasticStep"),
        (
            lambda: _tiny(levels_layer=StochasticStep()),
            {"reward": "accuracy", "estimator": "local_expectation"},
            ValueError,
            "per-example loss",
        ),
        (_tiny, {"loss": "mse", "reward": "accuracy"}, ValueError, "not both"),
        (_tiny, {"loss": 3}, TypeError, "loss must be"),
        (_tiny, {"num_samples": 4.0}, TypeError, "num_samples must be an int"),
    ],
)
def test_bad_arguments_are_refused_before_training(make, options, error, match):
    with pytest.raises(error, match=match):
        StepNetworkTrainer(make(), **options)


def test_models_that_are_not_chains_are_refused():
    inputs = keras.Input((2,))
    hidden = StochasticStep()(keras.layers.Dense(3)(inputs))
    merged = keras.layers.Concatenate()([hidden, inputs])
    branchy = keras.Model(inputs, keras.layers.Dense(2)(merged))
    with pytest.raises(ValueError, match="chain"):
        StepNetworkTrainer(branchy)
    block = keras.Sequential([keras.Input((2,)), _dense(3), StochasticStep()])
    nested = keras.Sequential([keras.Input((2,)), block, _dense()])
    with pytest.raises(ValueError, match="inside it"):
        StepNetworkTrainer(nested)
    chain = keras.Model(inputs, keras.layers.Dense(2)(hidden))  # a functional chain is fine
    assert len(chain_segments(chain)) == 2


def test_compile_refuses_a_loss_and_temperature_is_checked():
    trainer = StepNetworkTrainer(_tiny())
    with pytest.raises(ValueError, match=r"^StepNetworkTrainer.compile does not take a loss"):
        trainer.compile(loss="mse")
    with pytest.raises(ValueError, match="temperature must be"):
        StochasticStep(temperature=0.0)


def test_several_replicas_are_refused_at_compile():
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import os
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        two = [tf.config.LogicalDeviceConfiguration()] * 2
        tf.config.set_logical_device_configuration(cpu, two)
        import keras
        from rlmetric.layers import StochasticStep
        from rlmetric.step_networks import StepNetworkTrainer
        strategy = tf.distribute.MirroredStrategy(
            [d.name for d in tf.config.list_logical_devices("CPU")]
        )
        with strategy.scope():
            model = keras.Sequential(
                [keras.Input((2,)), keras.layers.Dense(3), StochasticStep(), keras.layers.Dense(2)]
            )
            trainer = StepNetworkTrainer(model)
            try:
                trainer.compile()
                print("compiled")
            except ValueError as error:
                print(error)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert "does not support tf.distribute with several replicas" in result.stdout, result.stderr


@pytest.mark.parametrize("levels", [(0.0,), (-0.5, 0.5)], ids=["binary", "3-level"])
def test_local_expectation_dense_shortcut_equals_rerunning_every_move(levels, monkeypatch):
    # above the step layer a plain Dense takes the shortcut (its output for a one-unit move is
    # the drawn output plus a kernel row); an Identity in front forces the full re-run
    shortcuts = []

    def counted(*args):
        shortcuts.append(args[0].name)
        return dense_outputs_of_moves(*args)

    monkeypatch.setattr(step_networks, "dense_outputs_of_moves", counted)

    def build(identity):
        keras.utils.set_random_seed(3)
        stack = [keras.Input((2,)), keras.layers.Dense(4), StochasticStep(levels)]
        stack += [keras.layers.Identity()] if identity else []
        # two layers between the step layers: the shortcut replaces only the Dense
        stack += [keras.layers.Dense(3), keras.layers.Activation("tanh")]
        stack += [StochasticStep(), _dense(2)]
        return keras.Sequential(stack)

    fast, slow = build(False), build(True)
    grads, used = [], []
    for model in (fast, slow):
        shortcuts.clear()
        trainer = StepNetworkTrainer(model, estimator="local_expectation", num_samples=3)
        grads.append(trainer.estimate_gradient(X, Y, seed=(5, 1)))
        used.append(len(shortcuts))
    # both step layers of the fast model take it; of the slow one, only the second
    assert used == [2, 1]
    for a, b in zip(*grads, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert np.abs(grads[0][0]).max() > 1e-4


def test_auto_jit_compile_uses_xla_only_for_keras_and_rlmetric_pieces():
    def model(*extra):
        return keras.Sequential([keras.Input((2,)), _dense(3), StochasticStep(), *extra, _dense(2)])

    def resolved(trainer, **options):
        trainer.compile(**options)
        return trainer.jit_compile

    assert resolved(StepNetworkTrainer(model())) is True
    assert resolved(StepNetworkTrainer(model(), loss="mse")) is True
    assert resolved(StepNetworkTrainer(model(keras.layers.Lambda(lambda h: h)))) is False
    custom_loss = StepNetworkTrainer(model(), loss=lambda t, p: tf.reduce_mean(p, axis=-1))
    assert resolved(custom_loss) is False
    assert resolved(StepNetworkTrainer(model()), jit_compile=False) is False
    assert resolved(StepNetworkTrainer(model()), run_eagerly=True) is False
    # a reward of the output levels: the built-in ones compile, a NumPy function does not
    levels = keras.Sequential([keras.Input((2,)), _dense(1), StochasticStep()])
    assert resolved(StepNetworkTrainer(levels, reward="accuracy")) is True
    numpy_reward = rewards.from_numpy(lambda y_true, y_pred: float(np.mean(y_true == y_pred)))
    assert resolved(StepNetworkTrainer(levels, reward=numpy_reward)) is False


def _four_level_output():
    """A model whose output is one unit of 4 levels (thresholds -1, 0, 1)."""
    return keras.Sequential(
        [keras.Input((3,)), _dense(1), StochasticStep(thresholds=(-1.0, 0.0, 1.0))]
    )


def test_a_count_reward_reads_the_levels_of_a_multi_level_output_as_classes():
    # the accuracy reward once read levels 0..3 as 0/1 decisions and logged 2.75-3.12
    x = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
    y = np.random.default_rng(1).integers(0, 4, 64)
    trainer = StepNetworkTrainer(_four_level_output(), reward="accuracy", seed=0)
    assert trainer.reward.num_classes == 4
    trainer.compile("adam")
    logged = trainer.evaluate(x, y, verbose=0, return_dict=True)["reward"]
    step = trainer.model.layers[-1]
    levels = step.mode_levels(trainer.model.layers[0](x)).numpy().reshape(-1)
    assert logged == pytest.approx(np.mean(levels == y), abs=1e-6)
    with pytest.raises(ValueError, match="num_classes=3, but the last step layer .* 4 levels"):
        StepNetworkTrainer(_four_level_output(), reward=rewards.Accuracy(num_classes=3))


@pytest.mark.parametrize("thresholds", [(0.0,), (-1.0, 1.0), (-1.0, 0.0, 1.0)])
def test_a_count_reward_gets_the_levels_as_classes_only_beyond_two_levels(thresholds):
    # two levels are 0/1 decisions: F1 stays the binary F1, not a macro F1 over two classes
    model = keras.Sequential([keras.Input((3,)), _dense(1), StochasticStep(thresholds=thresholds)])
    levels = len(thresholds) + 1
    trainer = StepNetworkTrainer(model, reward="f1", seed=0)
    assert trainer.reward.num_classes == (None if levels == 2 else levels)


def test_evaluate_checks_labels_and_passes_keras_arguments_through():
    x, y = _xor(64)
    trainer = StepNetworkTrainer(_tiny(), seed=0)
    trainer.compile(metrics=["accuracy"])
    with pytest.raises(ValueError, match=r"^y holds label values \[5.0\]"):
        trainer.evaluate(x, np.full(64, 5), verbose=0)
    dataset = tf.data.Dataset.from_tensor_slices((x, np.full(64, 5))).batch(16)
    with pytest.raises(ValueError, match="^the labels of the dataset x holds"):
        trainer.evaluate(dataset, verbose=0)
    # keras.Model.evaluate's positional arguments: batch_size, verbose, ..., return_dict
    logged = trainer.evaluate(x, y, 16, 0, None, None, None, True)
    assert set(logged) == {"loss", "accuracy"}


def test_fit_refuses_sample_weight_and_an_unsavable_checkpoint_before_training(tmp_path):
    x, y = _xor(32)
    trainer = StepNetworkTrainer(_tiny(), seed=0)
    trainer.compile()
    with pytest.raises(ValueError, match=r"unweighted\. Received sample_weight of type ndarray"):
        trainer.fit(x, y, sample_weight=np.ones(32), verbose=0)

    def hits(y_true, y_pred):
        return float(np.mean(y_true == y_pred))

    model = _tiny(outputs=1, levels_layer=StochasticStep())
    before = [w.copy() for w in model.get_weights()]
    numpy_reward = StepNetworkTrainer(model, reward=rewards.from_numpy(hits), seed=0)
    numpy_reward.compile()
    checkpoint = keras.callbacks.ModelCheckpoint(str(tmp_path / "trainer.keras"))
    with pytest.raises(ValueError, match=r"ModelCheckpoint\(.*trainer.keras'\) saves the whole"):
        numpy_reward.fit(x, y, epochs=1, callbacks=[checkpoint], verbose=0)
    for old, new in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)


def test_a_dataset_with_sample_weights_or_without_labels_is_refused():
    x, y = _xor(32)
    trainer = StepNetworkTrainer(_tiny(), seed=0)
    trainer.compile()
    weighted = tf.data.Dataset.from_tensor_slices((x, y, np.ones(32, "float32"))).batch(8)
    with pytest.raises(ValueError, match="^StepNetworkTrainer does not support sample_weight"):
        trainer.fit(weighted, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"^StepNetworkTrainer needs labels: call fit\(x, y\)"):
        trainer.fit(tf.data.Dataset.from_tensor_slices(x).batch(8), epochs=1, verbose=0)


def test_callbacks_monitoring_the_reward_maximise_it():
    x, y = _xor(32)
    trainer = StepNetworkTrainer(
        _tiny(outputs=1, levels_layer=StochasticStep()), reward="accuracy", seed=0
    )
    trainer.compile()
    stop = keras.callbacks.EarlyStopping(monitor="reward", patience=5)
    trainer.fit(x, y, batch_size=32, epochs=1, callbacks=[stop], verbose=0)
    assert stop.mode == "max"
    assert stop.monitor_op(2.0, 1.0)  # a higher reward is an improvement


X_STEP = np.random.default_rng(2).normal(size=(32, 2)).astype("float32")
Y_STEP = np.random.default_rng(3).integers(0, 2, 32)


@pytest.mark.parametrize(
    ("make", "options", "fit_kwargs", "match"),
    [
        # levels 0..3 for a binary output step
        (
            lambda: _tiny(outputs=1, levels_layer=StochasticStep()),
            {"reward": "accuracy"},
            {"y": np.arange(32) % 4},
            r"label values \[2.0, 3.0\].*levels 0..1",
        ),
        (_tiny, {}, {"y": np.full(32, 12)}, r"\[12.0\].*class ids 0..1 \(the model has 2"),
        (_tiny, {}, {"y": np.full(32, 0.5)}, r"\[0.5\]"),
        (_tiny, {}, {"y": np.where(Y_STEP > 0, np.nan, 0.0)}, "NaN or infinite"),
        (
            _tiny,
            {},
            {"y": Y_STEP, "validation_data": (X_STEP, Y_STEP + 5)},
            r"^validation_data's labels holds label values \[5.0, 6.0\]",
        ),
        (_tiny, {}, {"y": np.eye(2)[Y_STEP] * 2}, r"of shape \(32, 2\) is read as one-hot rows"),
        (_tiny, {}, {"y": np.tile([0.3, 0.7], (32, 1))}, "is read as one-hot rows"),
        (_tiny, {}, {"y": np.ones((32, 2))}, "is read as one-hot rows"),
        # at most five of the bad values are shown
        (
            _tiny,
            {},
            {"y": np.arange(32) % 9},
            r"label values \[2.0, 3.0, 4.0, 5.0, 6.0\] \(of 24 bad entries\)",
        ),
        (_tiny, {}, {"y": Y_STEP, "class_weight": {0: 1.0, 1: 2.0}}, "support class_weight"),
        (
            _tiny,
            {},
            {"x": tf.data.Dataset.from_tensor_slices((X_STEP, np.full(32, 7))).batch(8)},
            "^the labels of the dataset x holds",
        ),
        # all of an in-memory y is checked, not only the first rows
        (
            _tiny,
            {},
            {"x": np.zeros((40, 2), "float32"), "y": np.r_[np.zeros(39), 9]},
            r"^y holds label values \[9.0\] \(of 1 bad entries\)",
        ),
        (
            _tiny,
            {},
            {
                "y": Y_STEP,
                "validation_data": tf.data.Dataset.from_tensor_slices(
                    (X_STEP, np.full(32, 7))
                ).batch(8),
            },
            r"^validation_data's labels holds label values \[7.0\]",
        ),
    ],
)
def test_labels_the_objective_cannot_read_are_refused_before_training(
    make, options, fit_kwargs, match
):
    trainer = StepNetworkTrainer(make(), seed=0, **options)
    trainer.compile("adam")
    before = [w.copy() for w in trainer.model.get_weights()]
    fit_kwargs = {"x": X_STEP, **fit_kwargs}
    with pytest.raises(ValueError, match=match):
        trainer.fit(**fit_kwargs, epochs=1, verbose=0)
    after = trainer.model.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))


def test_string_labels_are_refused_naming_the_argument():
    trainer = StepNetworkTrainer(_tiny(), seed=0)
    trainer.compile()
    with pytest.raises(TypeError, match="^y must hold numeric labels"):
        trainer.fit(X_STEP, np.array(["cat", "dog"] * 16), epochs=1, verbose=0)


def test_labels_that_are_class_ids_are_not_mistaken_for_one_hot_rows():
    # two examples of a two-class model: [1, 1] is two class ids, not a one-hot row
    trainer = StepNetworkTrainer(_tiny(), seed=0)
    trainer.compile()
    logits = trainer.model(X, training=False)
    crossentropy = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    expected = float(crossentropy(np.ones(2), logits))
    assert trainer.evaluate(X, np.ones(2, "int32"), verbose=0) == pytest.approx(expected, 1e-5)
    # a single output: labels [N, 1] of class 0 are class ids
    single = StepNetworkTrainer(_tiny(outputs=1), seed=0)
    single.compile()
    single.fit(X_STEP, np.zeros((32, 1)), epochs=1, verbose=0)


def test_one_hot_labels_of_positions_train_as_their_class_ids():
    # outputs [N, T, C] with T != C: one-hot labels [N, T, C] are read along their last axis
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4, 2)), _dense(3), StochasticStep(), _dense(2)])
    x = np.random.default_rng(0).normal(size=(16, 4, 2)).astype("float32")
    ids = np.random.default_rng(1).integers(0, 2, (16, 4))
    trainer = StepNetworkTrainer(model, seed=0)
    trainer.compile()
    by_ids = trainer.evaluate(x, ids, verbose=0)
    assert trainer.evaluate(x, np.eye(2)[ids], verbose=0) == pytest.approx(by_ids, 1e-6)


class _Batches(keras.utils.PyDataset):
    def __init__(self, labels=Y_STEP):
        super().__init__()
        self.labels = labels

    def __len__(self):
        return 2

    def __getitem__(self, index):
        return X_STEP[index * 16 : (index + 1) * 16], self.labels[index * 16 : (index + 1) * 16]


def test_a_py_dataset_trains():
    trainer = StepNetworkTrainer(_tiny(), seed=0)
    trainer.compile()
    history = trainer.fit(_Batches(), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.parametrize(
    ("make", "options", "labels", "step"),
    [
        # class 12 of 2 was a "non-finite reward" error; 0.5 and NaN trained silently
        (_tiny, {}, np.full(32, 12), 0),
        (_tiny, {}, np.full(32, 0.5), 0),
        (_tiny, {}, np.full(32, np.nan), 0),
        (_tiny, {}, np.eye(2)[Y_STEP] * 2, 0),
        # a bad label in the second batch: the first step trains, the second is refused
        (_tiny, {}, np.r_[Y_STEP[:16], np.full(16, -1)], 1),
        # levels 0..1 of a binary output step; a loss of any label only refuses NaN
        (
            lambda: _tiny(outputs=1, levels_layer=StochasticStep()),
            {"reward": "accuracy"},
            np.full(32, 3),
            0,
        ),
        (lambda: _tiny(outputs=1), {"loss": "mse"}, np.r_[np.zeros(16), np.full(16, np.inf)], 1),
    ],
)
def test_bad_labels_of_a_py_dataset_stop_training_at_their_step_with_the_weights_of_the_step_before(
    make, options, labels, step
):
    trainer = StepNetworkTrainer(make(), seed=0, **options)
    trainer.compile(keras.optimizers.SGD(0.1))
    if step:  # the weights after the good first batch
        reference = StepNetworkTrainer(make(), seed=0, **options)
        reference.compile(keras.optimizers.SGD(0.1))
        reference.fit(X_STEP[:16], labels[:16], batch_size=16, shuffle=False, verbose=0)
        expected = reference.model.get_weights()
    else:
        expected = [w.copy() for w in trainer.model.get_weights()]
    with pytest.raises(ValueError, match=rf"^The labels of training step {step} \(batch {step} "):
        trainer.fit(_Batches(labels), epochs=1, verbose=0)
    for got, want in zip(trainer.model.get_weights(), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_bad_labels_of_a_py_dataset_in_evaluate_name_what_the_objective_expects():
    trainer = StepNetworkTrainer(_tiny(), seed=0)
    trainer.compile()
    with pytest.raises(ValueError, match=r"^The labels of batch 0 .* not class ids 0..1 \(the"):
        trainer.evaluate(_Batches(np.full(32, 12)), verbose=0)
    # a failed evaluation leaves no flag behind: the next one with good labels reports
    assert np.isfinite(trainer.evaluate(_Batches(), verbose=0))


def test_one_hot_labels_train_as_their_class_ids():
    results = []
    for labels in (Y_STEP, np.eye(2)[Y_STEP]):
        keras.utils.set_random_seed(0)
        trainer = StepNetworkTrainer(_tiny(), seed=0)
        trainer.compile(keras.optimizers.SGD(0.1))
        history = trainer.fit(X_STEP, labels, batch_size=16, epochs=2, verbose=0)
        results.append((history.history["loss"], trainer.model.get_weights()))
    assert results[0][0] == pytest.approx(results[1][0])
    for a, b in zip(results[0][1], results[1][1], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
