"""PolicyGradientTrainer end to end: fit/evaluate/callbacks/saving/errors on small data."""

import json
import os
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.metrics import f1_score, jaccard_score

import rlmetric
from rlmetric import (
    PolicyGradientTrainer,
    baselines,
    diagnostics,
    estimators,
    policies,
    rewards,
)


def mlp(inputs=30, outputs=1, bias=0.0):
    return keras.Sequential(
        [
            keras.Input((inputs,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(outputs, bias_initializer=keras.initializers.Constant(bias)),
        ]
    )


def make_trainer(**kwargs):
    kwargs.setdefault("seed", 0)
    model = kwargs.pop("model", None) or mlp()
    trainer = PolicyGradientTrainer(model, **kwargs)
    trainer.compile(optimizer=keras.optimizers.Adam(3e-3))
    return trainer


def test_fit_raises_test_f1_on_breast_cancer(cancer):
    x_train, x_test, y_train, y_test = cancer
    # a negative output bias makes the untrained model predict (almost) no positives
    trainer = make_trainer(model=mlp(bias=-3.0), reward="f1", num_samples=8)
    before = trainer.evaluate(x_test, y_test, return_dict=True, verbose=0)["f1"]
    history = trainer.fit(x_train, y_train, batch_size=64, epochs=12, verbose=0)
    after = trainer.evaluate(x_test, y_test, return_dict=True, verbose=0)["f1"]
    assert after > before + 0.3 and after > 0.85, (before, after)
    for key in ("loss", "reward", "f1", "entropy", "advantage_std"):
        assert key in history.history and np.all(np.isfinite(history.history[key]))
    assert history.history["reward"][-1] > history.history["reward"][0]


def test_evaluate_is_the_metric_of_the_whole_set_not_a_batch_mean(cancer):
    x_train, x_test, y_train, y_test = cancer
    trainer = make_trainer(reward="f1")
    trainer.compile(
        optimizer="adam", metrics=["precision", rewards.IoU(average="macro", name="miou")]
    )
    logs = trainer.evaluate(x_test, y_test, batch_size=16, return_dict=True, verbose=0)
    predicted = trainer.predict_actions(x_test).ravel()
    assert set(predicted) <= {0, 1}
    np.testing.assert_allclose(logs["f1"], f1_score(y_test, predicted), atol=1e-6)
    np.testing.assert_allclose(
        logs["miou"], jaccard_score(y_test, predicted, average="macro"), atol=1e-6
    )


def test_categorical_policy_on_three_classes():
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    x = ((x - x.mean(0)) / x.std(0)).astype("float32")
    trainer = make_trainer(
        model=mlp(inputs=4, outputs=3), reward="macro_f1", policy="categorical", baseline="greedy"
    )
    assert trainer.reward.num_classes == 3  # filled in from the logits
    before = trainer.evaluate(x, y, return_dict=True, verbose=0)["macro_f1"]
    trainer.fit(x, y, batch_size=50, epochs=30, verbose=0)
    after = trainer.evaluate(x, y, return_dict=True, verbose=0)["macro_f1"]
    predicted = trainer.predict_actions(x)
    assert predicted.shape == (150,) and after > max(before + 0.2, 0.8), (before, after)
    np.testing.assert_allclose(after, f1_score(y, predicted, average="macro"), atol=1e-6)


def test_segmentation_with_tf_data_and_xla():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(32, 8, 8, 1)).astype("float32")
    masks = (images > 0.5).astype("int32")  # the object is where the pixel is bright
    net = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(1, 3, padding="same")])
    trainer = PolicyGradientTrainer(net, reward="iou", seed=0)
    trainer.compile(optimizer=keras.optimizers.Adam(0.05), jit_compile=True)
    data = tf.data.Dataset.from_tensor_slices((images, masks)).batch(8)
    before = trainer.evaluate(data, return_dict=True, verbose=0)["iou"]
    trainer.fit(data, epochs=8, verbose=0)
    after = trainer.evaluate(data, return_dict=True, verbose=0)["iou"]
    assert after > before + 0.2, (before, after)
    predicted = trainer.predict_actions(images)
    assert predicted.shape == (32, 8, 8, 1)
    np.testing.assert_allclose(after, jaccard_score(masks.ravel(), predicted.ravel()), atol=1e-6)


def test_estimate_gradient_is_unbiased_through_the_model():
    """Mean of trainer.estimate_gradient vs the exact gradient of E[F1] w.r.t. the weights."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 3)).astype("float32")
    y = np.array([1, 0, 1, 1, 0, 0], "int32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    trainer = PolicyGradientTrainer(
        model, reward="f1", estimator="reinforce", num_samples=4, seed=3
    )
    with tf.GradientTape() as tape:
        logits = model(x)
        value = diagnostics.expected_reward(policies.Bernoulli(), rewards.F1(), logits, y[:, None])
    exact = [g.numpy() for g in tape.gradient(value, model.trainable_variables)]
    draws = [trainer.estimate_gradient(x, y) for _ in range(1000)]
    for i, exact_part in enumerate(exact):
        parts = np.stack([d[i] for d in draws])
        standard_error = parts.std(0) / np.sqrt(len(parts)) + 1e-7
        assert np.all(np.abs(parts.mean(0) - exact_part) < 4.5 * standard_error)
        assert parts.shape[1:] == model.trainable_variables[i].shape


def test_callbacks_early_stopping_and_checkpoint(cancer, tmp_path):
    x_train, x_test, y_train, y_test = cancer
    trainer = make_trainer()
    path = str(tmp_path / "best.keras")
    history = trainer.fit(
        x_train,
        y_train,
        batch_size=128,
        epochs=50,
        verbose=0,
        validation_data=(x_test, y_test),
        callbacks=[
            keras.callbacks.EarlyStopping("val_f1", mode="max", patience=2),
            keras.callbacks.ModelCheckpoint(
                path, monitor="val_f1", mode="max", save_best_only=True
            ),
        ],
    )
    assert "val_f1" in history.history and "val_entropy" in history.history
    epochs = len(history.history["val_f1"])
    best = int(np.argmax(history.history["val_f1"]))
    assert epochs < 50 and epochs - 1 - best >= 2  # stopped by patience, not by the epoch limit
    restored = keras.models.load_model(path)
    assert isinstance(restored, PolicyGradientTrainer)
    np.testing.assert_allclose(
        restored.evaluate(x_test, y_test, return_dict=True, verbose=0)["f1"],
        max(history.history["val_f1"]),
        atol=1e-6,
    )


def test_save_and_load_round_trips(cancer, tmp_path):
    x_train, x_test, y_train, _ = cancer
    trainer = make_trainer(
        reward=rewards.FBeta(beta=2.0, name="f2"),
        estimator="reinforce",  # (the default best response does not use a baseline)
        baseline=baselines.MovingAverage(decay=0.8),
        entropy_weight=0.01,
        crossentropy_weight=0.1,
        num_samples=4,
    )
    trainer.fit(x_train, y_train, batch_size=64, epochs=1, verbose=0)
    logits = trainer.predict(x_test, verbose=0)

    # the wrapped model is a plain Keras model
    trainer.model.save(tmp_path / "m.keras")
    plain = keras.models.load_model(tmp_path / "m.keras")
    assert type(plain) is keras.Sequential
    np.testing.assert_allclose(plain.predict(x_test, verbose=0), logits, atol=1e-6)

    # the whole trainer, config and weights
    trainer.save(tmp_path / "t.keras")
    restored = keras.models.load_model(tmp_path / "t.keras")
    assert json.dumps(restored.get_config()) == json.dumps(trainer.get_config())
    assert (
        restored.compiled
        and restored.optimizer.iterations.numpy() == trainer.optimizer.iterations.numpy()
    )
    assert isinstance(restored.baseline, baselines.MovingAverage) and restored.baseline.decay == 0.8
    np.testing.assert_allclose(restored.predict(x_test, verbose=0), logits, atol=1e-6)
    np.testing.assert_allclose(restored._baseline_state.numpy(), trainer._baseline_state.numpy())
    assert trainer._baseline_state.numpy()[1] < 1.0  # a state that fit wrote, not the initial

    # weights-only checkpoints into a trainer rebuilt from the config
    trainer.save_weights(tmp_path / "t.weights.h5")
    rebuilt = PolicyGradientTrainer.from_config(trainer.get_config())
    rebuilt.load_weights(tmp_path / "t.weights.h5")
    np.testing.assert_allclose(rebuilt.predict(x_test, verbose=0), logits, atol=1e-6)
    rebuilt.compile(optimizer="adam")
    rebuilt.fit(x_train, y_train, batch_size=64, epochs=1, verbose=0)  # still trains


def test_nonfinite_reward_stops_before_the_weights_change(cancer):
    x_train, _, y_train, _ = cancer
    # a batch with positives, then an all-negative batch
    x = np.concatenate([x_train[:64], x_train[y_train == 0][:64]])
    y = np.concatenate([y_train[:64], y_train[y_train == 0][:64]])
    assert y[:64].sum() > 0 and y[64:].sum() == 0

    def unguarded_recall(y_true, actions):
        tp = tf.reduce_sum(
            tf.cast(actions, tf.float32) * tf.cast(y_true, tf.float32)[None], axis=[1, 2]
        )
        return tp / tf.reduce_sum(tf.cast(y_true, tf.float32))  # 0 / 0 = NaN without positives

    trainer = make_trainer(reward=rewards.CallableReward(unguarded_recall, name="recall"))
    initial = [w.numpy().copy() for w in trainer.model.weights]
    seen = []
    record = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: seen.append(
            [w.numpy().copy() for w in trainer.model.weights]
        )
    )
    with pytest.raises(rlmetric.NonFiniteError, match=r"Non-finite reward at training step 1 "):
        trainer.fit(x, y, batch_size=64, epochs=2, shuffle=False, verbose=0, callbacks=[record])
    assert len(seen) == 2  # stopped right after the bad step
    assert any(
        not np.array_equal(a, b) for a, b in zip(initial, seen[0], strict=True)
    )  # step 0 trained
    for after_good, after_bad in zip(seen[0], seen[1], strict=True):
        np.testing.assert_array_equal(after_good, after_bad)  # step 1 changed nothing


def test_from_numpy_reward_trains_and_refuses_xla(cancer):
    from sklearn.metrics import f1_score as sk_f1

    x_train, _, y_train, _ = cancer
    trainer = PolicyGradientTrainer(mlp(), reward=rewards.from_numpy(sk_f1, name="f1"), seed=0)
    with pytest.raises(ValueError, match=r"jit_compile=True cannot run the reward\(s\) \['f1'\]"):
        trainer.compile(optimizer="adam", jit_compile=True)
    trainer.compile(optimizer="adam")
    history = trainer.fit(x_train[:128], y_train[:128], batch_size=64, epochs=2, verbose=0)
    # the same seed as the built-in F1 and the same default (the best response, its
    # per-element credit exact by probing): the same rewards and the same weights
    keras.utils.set_random_seed(1234)
    builtin = PolicyGradientTrainer(mlp(), reward="f1", seed=0)
    builtin.compile(optimizer="adam")
    expected = builtin.fit(x_train[:128], y_train[:128], batch_size=64, epochs=2, verbose=0)
    np.testing.assert_allclose(history.history["reward"], expected.history["reward"], atol=1e-6)
    for a, b in zip(trainer.model.get_weights(), builtin.model.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


# -- errors, all raised before any weight update ---------------------------------------------


def test_label_shape_mismatch_is_named(cancer):
    x_train, _, y_train, _ = cancer
    trainer = make_trainer()
    with pytest.raises(ValueError, match=r"Labels of shape \(\d+, 2\).*logits of shape \(\d+, 1\)"):
        trainer.fit(x_train, np.stack([y_train, y_train], 1), epochs=1, verbose=0)


def test_non_binary_labels_are_named(cancer):
    x_train, _, y_train, _ = cancer
    trainer = make_trainer()
    y_bad = y_train.copy()
    y_bad[-1] = 2  # beyond the first rows: the whole array is checked
    with pytest.raises(ValueError, match=r"y must hold binary labels.*\[0, 1, 2\]"):
        trainer.fit(x_train, y_bad, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"validation y must hold binary labels"):
        trainer.fit(x_train, y_train, validation_data=(x_train, y_bad), epochs=1, verbose=0)


def test_too_few_samples_for_leave_one_out():
    with pytest.raises(ValueError, match=r"needs num_samples >= 2; received num_samples=1"):
        PolicyGradientTrainer(mlp(), estimator="reinforce", baseline="leave_one_out", num_samples=1)
    PolicyGradientTrainer(mlp(), estimator="reinforce", baseline="greedy", num_samples=1)
    # the default estimator for F1 (the best response to the mode) samples nothing
    PolicyGradientTrainer(mlp(), num_samples=1)


def test_logits_that_do_not_fit_the_policy():
    with pytest.raises(ValueError, match=r"at least 2 classes.*\(None, 1\)"):
        PolicyGradientTrainer(mlp(outputs=1), policy="categorical")
    with pytest.raises(
        ValueError, match=r"num_classes=4, but the model returns logits of shape \(None, 3\)"
    ):
        PolicyGradientTrainer(
            mlp(outputs=3), policy="categorical", reward=rewards.F1(num_classes=4, average="macro")
        )
    with pytest.raises(ValueError, match=r"sets num_classes, which is for policy='categorical'"):
        PolicyGradientTrainer(mlp(outputs=1), reward=rewards.F1(num_classes=2))


def test_reward_of_wrong_shape_fails_before_training(cancer):
    x_train, _, y_train, _ = cancer
    trainer = make_trainer(
        reward=lambda y_true, actions: tf.reduce_mean(tf.cast(actions, tf.float32))
    )
    with pytest.raises(ValueError, match=r"returned shape \(\).*\[K\]"):
        trainer.fit(x_train, y_train, epochs=1, verbose=0)


def test_unknown_aliases_list_the_known_ones():
    with pytest.raises(ValueError, match=r"Unknown reward 'f-1'.*'f1'"):
        PolicyGradientTrainer(mlp(), reward="f-1")
    with pytest.raises(ValueError, match=r"Unknown baseline 'avg'.*'moving_average'"):
        PolicyGradientTrainer(mlp(), baseline="avg")
    with pytest.raises(ValueError, match=r"Unknown policy 'normal'.*'bernoulli'"):
        PolicyGradientTrainer(mlp(), policy="normal")


def test_bad_arguments():
    with pytest.raises(TypeError, match=r"model must be a keras.Model"):
        PolicyGradientTrainer(lambda x: x)
    with pytest.raises(ValueError, match=r"entropy_weight must be a finite number >= 0.*-1"):
        PolicyGradientTrainer(mlp(), entropy_weight=-1)
    with pytest.raises(ValueError, match=r"does not take a loss"):
        PolicyGradientTrainer(mlp()).compile(optimizer="adam", loss="binary_crossentropy")
    with pytest.raises(ValueError, match=r"does not support sample_weight"):
        make_trainer().fit(
            np.zeros((4, 30), "float32"), np.zeros(4), sample_weight=np.ones(4), verbose=0
        )


def zero_reward(y_true, actions):
    return tf.zeros(tf.shape(actions)[:1])


def test_crossentropy_weight_adds_the_supervised_loss(cancer):
    """With a constant reward the policy-gradient term vanishes, so a step with
    crossentropy_weight=1 must equal a plain Keras BCE step from the same weights."""
    x_train, _, y_train, _ = cancer
    x, y = x_train[:64], y_train[:64]
    reference = mlp()
    trainer = PolicyGradientTrainer(
        mlp(), reward=zero_reward, baseline="none", crossentropy_weight=1.0, seed=0
    )
    trainer.model.set_weights(reference.get_weights())
    reference.compile(keras.optimizers.SGD(0.1), keras.losses.BinaryCrossentropy(from_logits=True))
    trainer.compile(keras.optimizers.SGD(0.1))
    reference.fit(x, y, batch_size=64, epochs=1, shuffle=False, verbose=0)
    trainer.fit(x, y, batch_size=64, epochs=1, shuffle=False, verbose=0)
    for expected, got in zip(reference.get_weights(), trainer.model.get_weights(), strict=True):
        np.testing.assert_allclose(got, expected, atol=1e-6)


def test_entropy_weight_raises_the_policy_entropy(cancer):
    x_train, _, y_train, _ = cancer
    trainer = PolicyGradientTrainer(
        mlp(bias=-3.0), reward=zero_reward, baseline="none", entropy_weight=1.0, seed=0
    )
    trainer.compile(keras.optimizers.Adam(1e-2))
    before = trainer.evaluate(x_train, y_train, return_dict=True, verbose=0)["entropy"]
    trainer.fit(x_train, y_train, batch_size=64, epochs=3, verbose=0)
    after = trainer.evaluate(x_train, y_train, return_dict=True, verbose=0)["entropy"]
    assert after > before + 0.2 and after <= np.log(2) + 1e-6, (before, after)


@pytest.mark.parametrize("estimator", ["local_expectation", "disarm"])
def test_lower_variance_estimators_train_through_fit(cancer, estimator):
    x_train, x_test, y_train, y_test = cancer
    trainer = make_trainer(model=mlp(bias=-3.0), reward="f1", estimator=estimator, num_samples=4)
    before = trainer.evaluate(x_test, y_test, return_dict=True, verbose=0)["f1"]
    trainer.fit(x_train, y_train, batch_size=64, epochs=6, verbose=0)
    after = trainer.evaluate(x_test, y_test, return_dict=True, verbose=0)["f1"]
    assert after > before + 0.3 and after > 0.85, (before, after)


def test_local_estimator_on_per_pixel_classes_with_xla():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(16, 6, 6, 1)).astype("float32")
    masks = np.digitize(images[..., 0], [-0.5, 0.5]).astype("int32")  # 3 classes by brightness
    net = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Conv2D(3, 1)])
    trainer = PolicyGradientTrainer(
        net,
        reward="miou",
        policy="categorical",
        estimator="local_expectation",
        num_samples=4,
        seed=0,
    )
    trainer.compile(optimizer=keras.optimizers.Adam(0.1), jit_compile=True)
    before = trainer.evaluate(images, masks, return_dict=True, verbose=0)["miou"]
    trainer.fit(images, masks, batch_size=8, epochs=10, verbose=0)
    after = trainer.evaluate(images, masks, return_dict=True, verbose=0)["miou"]
    assert after > before + 0.2, (before, after)


def test_local_estimator_refuses_a_probed_reward_of_a_gaussian_policy():
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match=r"'local_expectation' probes the reward 'zero_reward'"):
        PolicyGradientTrainer(
            model, reward=zero_reward, policy="gaussian", estimator="local_expectation"
        )


XLA_CASES = [
    ("reinforce", "none", "bernoulli", "f1"),
    ("reinforce", "moving_average", "bernoulli", "f1"),
    ("reinforce", "leave_one_out", "categorical", "miou"),
    ("reinforce", "greedy", "bernoulli", "mcc"),
    ("reinforce", "group_norm", "categorical", "accuracy"),
    ("local_expectation", "none", "categorical", "macro_f1"),
    ("disarm", "none", "bernoulli", "iou"),
    ("best_response", "none", "categorical", "miou"),
    ("best_response", "leave_one_out", "bernoulli", "f1"),
    (estimators.LocalBestResponse(context="coupled"), "none", "categorical", "miou"),
    (estimators.LocalBestResponse(context="coupled"), "none", "bernoulli", "iou"),
]


def test_training_step_t_draws_from_seed_and_iteration():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(32, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    keras.utils.set_random_seed(0)
    trainer = PolicyGradientTrainer(
        mlp(inputs=4), reward="f1", estimator="reinforce", num_samples=4, seed=11
    )
    trainer.compile(optimizer=keras.optimizers.SGD(0.0))  # the logits stay as they are
    logits = trainer.model(x)
    labels = tf.constant(y[:, None])
    expected = [
        float(tf.reduce_mean(trainer.reward(labels, trainer.policy.sample(logits, 4, [11, t]))))
        for t in range(3)
    ]
    history = trainer.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0)
    np.testing.assert_allclose(history.history["reward"], expected, atol=1e-6)
    assert len(set(expected)) > 1  # the steps drew different actions


@pytest.mark.parametrize("estimator,baseline,policy,reward", XLA_CASES)
def test_every_estimator_and_baseline_trains_under_xla(estimator, baseline, policy, reward):
    """Training steps compile under jit_compile=True for every estimator and baseline, and the
    compiled steps learn. (Compiled steps draw with Threefry, uncompiled ones with Philox, so
    compiled and eager runs take different, equally valid, samples.)"""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(256, 5)).astype("float32")
    if policy == "bernoulli":
        y, outputs = (x[:, 0] > 0.2).astype("int32"), 1
    else:
        y, outputs = np.digitize(x[:, 0], [-0.4, 0.4]).astype("int32"), 3
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(outputs)])
    trainer = PolicyGradientTrainer(
        model,
        reward=reward,
        policy=policy,
        baseline=baseline,
        estimator=estimator,
        num_samples=4,
        seed=3,
    )
    trainer.compile(optimizer=keras.optimizers.Adam(0.05), jit_compile=True)
    assert trainer.jit_compile is True
    name = trainer.reward.name
    before = trainer.evaluate(x, y, batch_size=256, return_dict=True, verbose=0)[name]
    history = trainer.fit(x, y, batch_size=32, epochs=6, verbose=0)
    after = trainer.evaluate(x, y, batch_size=256, return_dict=True, verbose=0)[name]
    assert all(np.all(np.isfinite(v)) for v in history.history.values())
    assert after > before + 0.1, (before, after)


def test_defaults_pick_the_best_response_and_do_not_collapse_to_background():
    """With reward='miou' and nothing else set, REINFORCE + leave-one-out used to predict every
    pixel as background on small segmentation problems; the default now is the best response."""
    rng = np.random.default_rng(0)
    images = rng.normal(size=(32, 8, 8, 1)).astype("float32")
    # a rare bright class and a rare dark one on a background that covers ~75% of the pixels
    masks = np.digitize(images[..., 0], [-1.1, 1.1]).astype("int32")
    masks = np.select([masks == 1, masks == 0], [0, 1], 2).astype("int32")
    keras.utils.set_random_seed(0)
    net = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(8, 1, activation="relu"),
            keras.layers.Conv2D(3, 1),
        ]
    )
    trainer = PolicyGradientTrainer(net, reward="miou", policy="categorical", seed=0)
    assert isinstance(trainer.estimator, estimators.LocalBestResponse)
    trainer.compile(optimizer=keras.optimizers.Adam(0.03))
    trainer.fit(images, masks, batch_size=8, epochs=15, verbose=0)
    predicted = keras.ops.convert_to_numpy(trainer.predict_actions(images))
    assert set(np.unique(predicted)) == {0, 1, 2}
    after = trainer.evaluate(images, masks, return_dict=True, verbose=0)["miou"]
    assert after > 0.8, after


def test_defaults_pick_the_best_response_for_a_users_function_of_decisions():
    trainer = PolicyGradientTrainer(mlp(), reward=zero_reward)
    assert isinstance(trainer.estimator, estimators.LocalBestResponse)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(2)])
    gaussian = PolicyGradientTrainer(model, reward=zero_reward, policy="gaussian")
    assert isinstance(gaussian.estimator, estimators.Reinforce)


@pytest.mark.parametrize(
    "layers, policy, activation",
    [
        ([keras.layers.Dense(1, activation="sigmoid")], "bernoulli", "sigmoid"),
        ([keras.layers.Dense(3), keras.layers.Activation("softmax")], "categorical", "softmax"),
        ([keras.layers.Dense(4, activation="sigmoid")], "bernoulli", "sigmoid"),
    ],
)
def test_a_probability_output_layer_is_refused_with_the_fix(layers, policy, activation):
    model = keras.Sequential([keras.Input((5,)), *layers])
    with pytest.raises(ValueError, match=rf"applies '{activation}'.*Remove the activation"):
        PolicyGradientTrainer(model, policy=policy)
    inputs = keras.Input((5,))  # nested in a functional model: still seen
    with pytest.raises(ValueError, match=rf"applies '{activation}'"):
        PolicyGradientTrainer(keras.Model(inputs, model(inputs)), policy=policy)


def test_keras_metrics_sklearn_functions_and_clashing_names_are_refused():
    trainer = make_trainer(reward="f1")
    with pytest.raises(TypeError, match=r"AUC is a Keras metric, not a reward.*trainer.model"):
        trainer.compile(optimizer="adam", metrics=[keras.metrics.AUC()])
    with pytest.raises(TypeError, match=r"'f1_score' is a scikit-learn function.*from_numpy"):
        PolicyGradientTrainer(mlp(), reward=f1_score)
    for name in ("loss", "reward", "entropy", "advantage_std"):
        with pytest.raises(ValueError, match=rf"\['{name}'\] would overwrite the trainer's own"):
            trainer.compile(optimizer="adam", metrics=[rewards.Precision(name=name)])


def test_import_leaves_the_environment_alone():
    """A library must not change TensorFlow's log level for the user's whole process."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    script = "import os, rlmetric; print(os.environ.get('TF_CPP_MIN_LOG_LEVEL'))"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "None"


def _train_under_dtype_policy(dtype_policy, estimator, optimizer):
    """F1 before and after fitting a seeded MLP (L2 regulariser, entropy and cross-entropy
    terms) under the Keras dtype policy ``dtype_policy``; the global policy is restored."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 8)).astype("float32")
    y = (x[:, 0] + 0.5 * x[:, 1] > 0.8).astype("int32")
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(dtype_policy)
    try:
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [
                keras.Input((8,)),
                keras.layers.Dense(
                    8, activation="tanh", kernel_regularizer=keras.regularizers.L2(1e-3)
                ),
                keras.layers.Dense(1),
            ]
        )
        trainer = PolicyGradientTrainer(
            model,
            reward="f1",
            estimator=estimator,
            seed=0,
            entropy_weight=1e-3,
            crossentropy_weight=1e-3,
        )
        trainer.compile(optimizer=optimizer)
        before = f1_score(y, trainer.predict_actions(x).ravel())
        trainer.fit(x, y, batch_size=128, epochs=10, verbose=0)
        after = f1_score(y, trainer.predict_actions(x).ravel())
        return before, after, trainer
    finally:
        keras.mixed_precision.set_global_policy(previous)


@pytest.mark.parametrize("estimator", ["reinforce", "best_response", "local_expectation", "disarm"])
def test_mixed_precision_trains_like_float32(estimator):
    """Under mixed_float16 Keras wraps the optimizer in a LossScaleOptimizer (scale 2^15) that
    divides the gradients by its scale: a step that does not scale the loss makes every update
    32768 times too small (F1 stays at its initial 0.25). The policy math runs in float32 under
    both mixed policies. Tolerance: 0.1 F1 between float16/bfloat16 and float32 rounding."""
    _, reference, _ = _train_under_dtype_policy("float32", estimator, keras.optimizers.SGD(0.5))
    for dtype_policy in ("mixed_float16", "mixed_bfloat16"):
        before, after, trainer = _train_under_dtype_policy(
            dtype_policy, estimator, keras.optimizers.SGD(0.5)
        )
        assert after > before + 0.3, (dtype_policy, before, after)
        assert abs(after - reference) <= 0.1, (dtype_policy, after, reference)
    assert isinstance(trainer.optimizer, keras.optimizers.SGD)  # bfloat16: no loss scaling


def test_loss_scale_factor_gives_the_weights_of_no_scaling():
    _, _, plain = _train_under_dtype_policy("float32", "reinforce", keras.optimizers.SGD(0.5))
    _, _, scaled = _train_under_dtype_policy(
        "float32", "reinforce", keras.optimizers.SGD(0.5, loss_scale_factor=128.0)
    )
    for a, b in zip(plain.model.get_weights(), scaled.model.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    "policy,outputs,bad_value,jit_compile",
    [
        ("bernoulli", 1, 0.5, False),
        ("bernoulli", 1, 2, True),
        ("categorical", 3, 3, False),  # an out-of-range id would also crash a gather
    ],
)
def test_invalid_labels_after_the_first_batch_stop_fit_and_evaluate(
    policy, outputs, bad_value, jit_compile
):
    """Only the first batch of a dataset is checked before training; a bad label in batch 3
    must stop fit at that step, before it updates the weights, and stop evaluate."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 8)).astype("float32")
    y = np.digitize(x[:, 0], [0.0] if outputs == 1 else [-0.5, 0.5]).astype("float32")
    bad = y.copy()
    bad[200] = bad_value  # row 200: batch 3 of 64-row batches

    def dataset(labels, rows=256):
        return tf.data.Dataset.from_tensor_slices((x[:rows], labels[:rows])).batch(64)

    def trainer():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(outputs)])
        t = PolicyGradientTrainer(model, reward="accuracy", policy=policy, seed=0)
        t.compile(optimizer=keras.optimizers.Adam(0.05), jit_compile=jit_compile)
        return t

    clean = trainer()
    clean.fit(dataset(y, rows=192), epochs=1, verbose=0)  # batches 0-2 only
    stopped = trainer()
    with pytest.raises(ValueError, match=r"training step 3 \(batch 3 of epoch 0\).*" + policy):
        stopped.fit(dataset(bad), epochs=1, verbose=0)
    for a, b in zip(clean.model.get_weights(), stopped.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="batch 3 of the evaluation"):
        stopped.evaluate(dataset(bad), verbose=0)
    with pytest.raises(ValueError, match="batch 3 of the evaluation"):
        stopped.fit(dataset(y), validation_data=dataset(bad), epochs=1, verbose=0)
    # the check leaves clean data alone once it has fired
    assert np.isfinite(stopped.evaluate(dataset(y), verbose=0, return_dict=True)["accuracy"])


def test_estimate_gradient_checks_the_labels_of_every_call(cancer):
    x_train, _, y_train, _ = cancer
    trainer = make_trainer(reward="f1")
    trainer.estimate_gradient(x_train[:64], y_train[:64])
    bad = y_train[:64].astype("float32")
    bad[5] = 0.5
    with pytest.raises(ValueError, match=r"y must hold binary labels .*0\.5"):
        trainer.estimate_gradient(x_train[:64], bad)


def test_string_labels_are_refused_with_the_fix(cancer):
    x_train, _, y_train, _ = cancer
    trainer = make_trainer(reward="f1")
    with pytest.raises(TypeError, match="numeric labels.*dtype string.*StringLookup"):
        trainer.fit(x_train, np.where(y_train == 1, "malignant", "benign"), verbose=0)


def test_a_nonfinite_gradient_with_a_finite_loss_stops_fit_before_the_weights_change():
    """sqrt(|z|) after a zero-initialised layer: the loss is finite, but d sqrt(|z|)/dz is
    infinite at 0, so the first layer's kernel gradient is NaN. Guarding rewards and the loss
    alone would write NaN into the weights."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(3, kernel_initializer="zeros"),
            keras.layers.Lambda(lambda z: keras.ops.sqrt(keras.ops.abs(z))),
            keras.layers.Dense(1, kernel_initializer="ones"),
        ]
    )
    trainer = make_trainer(model=model, reward="f1", estimator="reinforce")
    initial = [w.copy() for w in model.get_weights()]
    with pytest.raises(rlmetric.NonFiniteError, match="Non-finite gradient at training step 0"):
        trainer.fit(x, y, batch_size=64, epochs=1, verbose=0)
    for before, after in zip(initial, model.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)


def test_fit_writes_the_baseline_state_back():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(128, 30)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    trainer = make_trainer(reward="f1", estimator="reinforce", baseline="moving_average")
    initial = trainer._baseline_state.numpy().copy()
    trainer.fit(x, y, batch_size=32, epochs=1, verbose=0)
    average, decay_power = trainer._baseline_state.numpy()
    assert decay_power == pytest.approx(0.9**4)  # four updates were written
    assert 0.0 < average <= 1.0 and not np.array_equal(initial, [average, decay_power])


@pytest.mark.parametrize(
    "reward, reference",
    [
        (rewards.F1(average="samples"), lambda y, p: f1_score(y, p, average="samples")),
        (rewards.Accuracy(subset=True), lambda y, p: float(np.mean(np.all(y == p, axis=1)))),
    ],
)
def test_evaluate_weights_per_row_rewards_by_batch_size(reward, reference):
    """Row-averaged rewards over batches of 64 and a short last batch of 8: the whole-set value
    is the row mean, not the mean of the batch means."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 6)).astype("float32")
    y = (x[:, :3] + rng.normal(scale=0.5, size=(200, 3)) > 0).astype("int32")
    trainer = make_trainer(model=mlp(inputs=6, outputs=3), reward=reward)
    logs = trainer.evaluate(x, y, batch_size=64, return_dict=True, verbose=0)
    want = reference(y, trainer.predict_actions(x))
    assert logs[reward.name] == pytest.approx(want, abs=1e-6)


def test_a_baseline_the_estimator_ignores_is_named_in_a_warning():
    with pytest.warns(UserWarning, match="baseline='moving_average' is ignored.*'best_response'"):
        PolicyGradientTrainer(mlp(), reward="f1", baseline="moving_average")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the defaults and REINFORCE with a baseline: silent
        PolicyGradientTrainer(mlp(), reward="f1")
        PolicyGradientTrainer(mlp(), reward="f1", estimator="reinforce", baseline="greedy")


def test_a_model_with_step_units_inside_is_refused_with_the_trainer_to_use():
    from rlmetric.layers import StochasticStep

    block = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), StochasticStep()])
    model = keras.Sequential([keras.Input((4,)), block, keras.layers.Dense(1)])  # nested too
    with pytest.raises(ValueError, match=r"StochasticStep layer.*StepNetworkTrainer"):
        PolicyGradientTrainer(model)


def test_a_whole_trainer_checkpoint_of_a_numpy_reward_is_refused_before_training(tmp_path):
    x = np.random.default_rng(0).normal(size=(32, 30)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    trainer = PolicyGradientTrainer(mlp(), reward=rewards.from_numpy(f1_score, name="f1"), seed=0)
    trainer.compile("adam")
    before = [w.copy() for w in trainer.get_weights()]
    whole = keras.callbacks.ModelCheckpoint(str(tmp_path / "t.keras"))
    with pytest.raises(ValueError, match=r"ModelCheckpoint.*save_weights_only=True"):
        trainer.fit(x, y, epochs=1, verbose=0, callbacks=[whole])
    assert all(np.array_equal(a, b) for a, b in zip(before, trainer.get_weights(), strict=True))
    weights = keras.callbacks.ModelCheckpoint(
        str(tmp_path / "t.weights.h5"), save_weights_only=True
    )
    trainer.fit(x, y, epochs=1, verbose=0, callbacks=[weights])  # the weights can be saved
    assert (tmp_path / "t.weights.h5").exists()


def test_loading_a_trainer_with_an_unknown_reward_class_names_it_first(tmp_path):
    class Hits(rewards.Reward):  # not registered with Keras
        name = "hits"

        def __call__(self, y_true, actions):
            hits = tf.cast(actions == 1, tf.float32) * tf.cast(y_true[None] == 1, tf.float32)
            return tf.reduce_mean(hits, axis=[1, 2])

        def get_config(self):
            return {}

    trainer = PolicyGradientTrainer(mlp(inputs=3), reward=Hits(), estimator="reinforce")
    trainer.compile("adam")
    trainer.fit(np.zeros((8, 3), "float32"), np.ones((8, 1)), verbose=0)
    trainer.save(tmp_path / "t.keras")
    with pytest.raises(ValueError, match=r"^Cannot load the reward .* 'Hits' is not known"):
        keras.saving.load_model(tmp_path / "t.keras")
    loaded = keras.saving.load_model(tmp_path / "t.keras", custom_objects={"Hits": Hits})
    assert isinstance(loaded.reward, Hits)


def test_keras_callbacks_on_a_reward_need_no_mode(tmp_path):
    # Keras raised "cannot determine whether that metric should be maximized" for val_f1
    x = np.random.default_rng(0).normal(size=(64, 30)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    trainer = make_trainer()
    callbacks = [
        keras.callbacks.EarlyStopping(monitor="val_f1", patience=50),
        keras.callbacks.ReduceLROnPlateau(monitor="f1", patience=50),
        keras.callbacks.ModelCheckpoint(
            str(tmp_path / "best.weights.h5"),
            monitor="val_f1",
            save_best_only=True,
            save_weights_only=True,
        ),
        keras.callbacks.EarlyStopping(monitor="loss"),  # not a reward: left to Keras
    ]
    history = trainer.fit(x, y, epochs=3, validation_data=(x, y), callbacks=callbacks, verbose=0)
    assert [c.mode for c in callbacks] == ["max", "max", "max", "auto"]
    assert callbacks[2].best == pytest.approx(max(history.history["val_f1"]))


def test_num_samples_that_the_default_estimator_ignores_warns():
    with pytest.warns(UserWarning, match="num_samples=32 is ignored"):
        PolicyGradientTrainer(mlp(), num_samples=32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        PolicyGradientTrainer(mlp())  # the default K
        PolicyGradientTrainer(mlp(), num_samples=32, estimator="reinforce")  # it samples


def test_evaluate_warns_once_when_its_batches_change_a_batch_reward():
    x = np.random.default_rng(0).normal(size=(64, 30)).astype("float32")
    y = (x[:, :1] > 0).astype("int32")

    def flagged_share(y_true, sets):  # a metric of the whole batch: its share of positives
        return tf.reduce_mean(tf.cast(sets, tf.float32), axis=[1, 2])

    trainer = make_trainer(reward=flagged_share)
    trainer.fit(x, y, batch_size=16, epochs=1, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trainer.evaluate(x, y, batch_size=16, verbose=0)
    with pytest.warns(UserWarning, match="batches of 32, but fit trained on batches of 16"):
        trainer.evaluate(x, y, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trainer.evaluate(x, y, batch_size=64, verbose=0)  # once
    f1_trainer = make_trainer()  # summed counts: any batch size gives the same F1
    f1_trainer.fit(x, y, batch_size=16, epochs=1, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f1_trainer.evaluate(x, y, verbose=0)
