"""rlmetric.callbacks.SwitchEstimator: when it switches, what carries on, and its errors."""

import gymnasium as gym
import keras
import numpy as np
import pytest
import tensorflow as tf

from rlmetric import PolicyGradientTrainer, estimators
from rlmetric.callbacks import SwitchEstimator


def small_data(rows=96, features=6):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, features)).astype("float32")
    y = (x[:, 0] + 0.5 * rng.normal(size=rows) > 0.6).astype("int32")[:, None]
    return x, y


def trainer_for(x, reward="f1", jit_compile="auto", **kwargs):
    keras.utils.set_random_seed(7)  # the same initial weights for every trainer of a test
    model = keras.Sequential(
        [
            keras.Input((x.shape[1],)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(1),
        ]
    )
    trainer = PolicyGradientTrainer(model, reward=reward, num_samples=4, seed=3, **kwargs)
    trainer.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=jit_compile)
    return trainer


def fit(trainer, x, y, epochs, callbacks=(), initial_epoch=0):
    trainer.fit(
        x,
        y,
        batch_size=32,
        epochs=epochs,
        initial_epoch=initial_epoch,
        shuffle=False,
        verbose=0,
        callbacks=list(callbacks),
    )


def weights(trainer):
    return [w.numpy() for w in trainer.model.weights]


class RecordEstimator(keras.callbacks.Callback):
    """The estimator's name at the start of each epoch (after SwitchEstimator's turn)."""

    def __init__(self):
        super().__init__()
        self.names = []

    def on_epoch_begin(self, epoch, logs=None):
        self.names.append(self.model.estimator.name)


@pytest.mark.parametrize(
    ("at", "epochs", "switch_epoch"), [(0.5, 5, 2), (0.25, 4, 1), (0.1, 3, 1), (3, 5, 3)]
)
def test_switches_at_the_epoch_named_and_restores_the_estimator_after_fit(at, epochs, switch_epoch):
    x, y = small_data()
    trainer = trainer_for(x)
    recorder = RecordEstimator()
    fit(trainer, x, y, epochs, [SwitchEstimator("local_expectation", at=at), recorder])
    first = trainer.estimator.name
    assert recorder.names == [first] * switch_epoch + ["local_expectation"] * (
        epochs - switch_epoch
    )
    assert first == "best_response"  # the trainer's own (estimator="auto") is back after fit


def test_the_switched_fit_equals_two_fits_that_keep_the_optimizer_state():
    """The steps after the switch are the new estimator's, and Adam's moments and the iteration
    count (hence the action seeds) carry on: the same weights as fitting 2 epochs, swapping the
    estimator by hand and fitting 2 more on the same compiled trainer."""
    x, y = small_data()
    switched = trainer_for(x)
    fit(switched, x, y, 4, [SwitchEstimator("local_expectation", at=2)])

    by_hand = trainer_for(x)
    fit(by_hand, x, y, 2)
    by_hand.estimator = estimators.get("local_expectation")
    by_hand.make_train_function(force=True)
    fit(by_hand, x, y, 4, initial_epoch=2)

    unswitched = trainer_for(x)
    fit(unswitched, x, y, 4)

    assert int(switched.optimizer.iterations) == int(by_hand.optimizer.iterations) == 12
    for a, b in zip(weights(switched), weights(by_hand), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # and the switch changed the training (the test above would pass if it did nothing)
    gap = max(
        np.max(np.abs(a - b)) for a, b in zip(weights(switched), weights(unswitched), strict=True)
    )
    assert gap > 1e-4


@pytest.mark.parametrize("jit_compile", [False, True])
def test_at_zero_trains_as_the_new_estimator_from_the_start(jit_compile):
    x, y = small_data()
    switched = trainer_for(x, jit_compile=jit_compile)
    fit(switched, x, y, 2, [SwitchEstimator("local_expectation", at=0)])
    direct = trainer_for(x, jit_compile=jit_compile, estimator="local_expectation")
    fit(direct, x, y, 2)
    for a, b in zip(weights(switched), weights(direct), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_a_fit_resumed_past_the_switch_starts_with_the_new_estimator():
    x, y = small_data()
    trainer = trainer_for(x)
    recorder = RecordEstimator()
    fit(trainer, x, y, 4, [SwitchEstimator(at=0.5), recorder], initial_epoch=3)
    assert recorder.names == ["local_expectation"]


@pytest.mark.parametrize(
    ("at", "error", "message"),
    [
        (1.5, ValueError, r"at=1\.5: a float is the fraction .* must be in \(0, 1\)"),
        (0.0, ValueError, r"at=0\.0: a float"),
        (1.0, ValueError, r"at=1\.0: a float"),  # the whole fit: an int epoch number instead
        (-1, ValueError, r"at=-1: an epoch number must be >= 0"),
        ("half", TypeError, r"at must be a float in \(0, 1\) or an int >= 0; received 'half'"),
        (True, TypeError, r"received True"),
    ],
)
def test_bad_switch_points_are_named(at, error, message):
    with pytest.raises(error, match=message):
        SwitchEstimator(at=at)


def test_an_unknown_estimator_name_is_refused_when_built():
    with pytest.raises(ValueError, match="no_such_estimator"):
        SwitchEstimator("no_such_estimator")


def test_an_estimator_that_cannot_score_the_reward_is_refused_before_the_first_step():
    def black_box(y_true, actions):  # [B, 1], [K, B, 1] -> [K]: no confusion counts
        return tf.reduce_mean(tf.cast(actions, tf.float32), axis=[1, 2])

    x, y = small_data()
    trainer = trainer_for(x, reward=black_box)
    before = weights(trainer)
    # (local expectation probes a function of Bernoulli decisions; PL-Rank needs rankings)
    with pytest.raises(ValueError, match=r"estimator='pl_rank' needs policy='plackett_luce'"):
        fit(trainer, x, y, 2, [SwitchEstimator("pl_rank", at=1)])
    for a, b in zip(before, weights(trainer), strict=True):
        np.testing.assert_array_equal(a, b)


def test_an_estimator_that_cannot_use_the_policy_is_refused_naming_the_policy():
    x, y = small_data()
    model = keras.Sequential([keras.Input((x.shape[1],)), keras.layers.Dense(2)])
    trainer = PolicyGradientTrainer(model, reward="macro_f1", policy="categorical")
    trainer.compile("adam")
    with pytest.raises(ValueError, match=r"needs policy='bernoulli'; the policy is 'categorical'"):
        fit(trainer, x, y[:, 0], 2, [SwitchEstimator("disarm", at=1)])


def test_a_plain_keras_model_is_refused():
    x, y = small_data()
    model = keras.Sequential([keras.Input((x.shape[1],)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    with pytest.raises(TypeError, match="it was passed to the fit of a Sequential"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[SwitchEstimator()])


@pytest.mark.parametrize(("at", "epochs"), [(0.5, 1), (4, 3)])
def test_a_switch_at_or_past_the_end_of_fit_warns_and_does_not_switch(at, epochs):
    """A float rounds down but to at least epoch 1 (the trainer's estimator trains first): with
    one epoch, or an epoch number past the end, this fit does not switch, and says so."""
    x, y = small_data()
    trainer = trainer_for(x)
    recorder = RecordEstimator()
    switch_epoch = max(1, int(at * epochs)) if isinstance(at, float) else at
    last = f"ends after epoch {epochs - 1} \\(epochs={epochs}\\): it will not switch"
    with pytest.warns(UserWarning, match=rf"switches at epoch {switch_epoch}, but this fit {last}"):
        fit(trainer, x, y, epochs, [SwitchEstimator(at=at), recorder])
    assert recorder.names == ["best_response"] * epochs


class FailAfter(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise RuntimeError("stopped on purpose")


def test_a_fit_that_stops_on_an_exception_after_the_switch_puts_the_estimator_back():
    x, y = small_data()
    trainer = trainer_for(x)
    switch = SwitchEstimator("local_expectation", at=1)
    with pytest.raises(RuntimeError, match="stopped on purpose"):
        fit(trainer, x, y, 4, [switch, FailAfter(epoch=2)])
    assert trainer.estimator.name == "best_response"
    recorder = RecordEstimator()  # the same callback again: switches from the trainer's own
    fit(trainer, x, y, 3, [switch, recorder])
    assert recorder.names == ["best_response", "local_expectation", "local_expectation"]
    assert trainer.estimator.name == "best_response"


class CountingLocalExpectation(estimators.LocalExpectation):
    """Counts its traces: each compiled function that uses it calls it once while tracing."""

    traces = 0

    def __call__(self, *args, **kwargs):
        CountingLocalExpectation.traces += 1
        return super().__call__(*args, **kwargs)


def test_estimate_gradient_after_the_switch_uses_the_new_estimator():
    x, y = small_data()
    trainer = trainer_for(x)
    trainer.estimate_gradient(x[:32], y[:32])  # traced with the trainer's estimator

    class Probe(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            before = CountingLocalExpectation.traces  # the training step's traces
            self.model.estimate_gradient(x[:32], y[:32])
            self.added = CountingLocalExpectation.traces - before

    probe = Probe()
    fit(trainer, x, y, 1, [SwitchEstimator(CountingLocalExpectation(), at=0), probe])
    assert probe.added == 1  # traced anew with the new estimator, not the cached old function


def test_fit_env_refuses_it():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    trainer = PolicyGradientTrainer(model, reward=None)
    trainer.compile(optimizer="adam")
    with pytest.raises(TypeError, match="fit_env trains by episodic REINFORCE"):
        trainer.fit_env(gym.make("CartPole-v1"), episodes=1, callbacks=[SwitchEstimator()])


def test_two_switches_in_one_fit_leave_the_trainers_own_estimator_after_fit(tmp_path):
    """Issue 27, case 3: undone in list order, the second switch restored the first switch's
    estimator; the trainer must end (and be saved) on its own."""
    x, y = small_data()
    trainer = trainer_for(x)
    own = trainer.estimator
    switches = [SwitchEstimator("local_expectation", at=1), SwitchEstimator("reinforce", at=2)]
    seen = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(type(trainer.estimator).__name__)

    fit(trainer, x, y, 3, [*switches, Record()])
    assert seen == ["LocalBestResponse", "LocalExpectation", "Reinforce"]
    assert trainer.estimator is own
    trainer.save(tmp_path / "t.keras")
    loaded = keras.saving.load_model(tmp_path / "t.keras")
    assert type(loaded.estimator) is type(own)
    # a reused pair in a second fit switches and comes back again
    seen.clear()
    fit(trainer, x, y, 3, [*switches, Record()])
    assert seen == ["LocalBestResponse", "LocalExpectation", "Reinforce"]
    assert trainer.estimator is own
