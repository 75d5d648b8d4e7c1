"""A user's own reward (rlmetric.custom_rewards): the per-element credit found by probing the
function is compared with brute force (every element set to every value, scored one by one),
on randomized inputs and edge cases; the estimators built on it with the exact gradient."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from rlmetric import NonFiniteError, PolicyGradientTrainer, estimators, policies, rewards
from rlmetric.bench import user_metrics
from tests.test_estimators import SIGMAS, exact_gradient, gradient_draws, z_scores


def brute_force_local_rewards(reward, y, actions, num_values):
    """[K, N, V]: every (set, element, value) scored by its own call."""
    y = np.asarray(y)
    actions = np.asarray(actions)
    k_sets, shape = actions.shape[0], actions.shape[1:]
    flat = actions.reshape(k_sets, -1)
    out = np.zeros((k_sets, flat.shape[1], num_values), np.float32)
    for k in range(k_sets):
        sets = np.repeat(flat[k][None], flat.shape[1] * num_values, axis=0)
        for n in range(flat.shape[1]):
            sets[n * num_values : (n + 1) * num_values, n] = np.arange(num_values)
        scores = reward(tf.constant(y), tf.constant(sets.reshape(-1, *shape)))
        out[k] = np.asarray(scores).reshape(flat.shape[1], num_values)
    return out


def per_image_iou(y_true, sets):  # [B, H, W], [M, B, H, W]: a mean over images
    y = tf.cast(y_true, tf.float32)[None]
    a = tf.cast(sets, tf.float32)
    intersection = tf.reduce_sum(a * y, axis=[2, 3])
    union = tf.reduce_sum(tf.maximum(a, y), axis=[2, 3])
    return tf.reduce_mean(tf.math.divide_no_nan(intersection, union), axis=1)


def first_half_hits(y_true, sets):  # not exchangeable: only the first half of the batch counts
    half = tf.shape(y_true)[0] // 2
    hits = tf.cast(tf.equal(sets, tf.cast(y_true, sets.dtype)[None]), tf.float32)
    return tf.reduce_mean(hits[:, :half], axis=[1, 2])


rng = np.random.default_rng(0)
CASES = {
    # name: (reward, y [B, ...], V, the level the probe must find)
    "f1": (user_metrics.f1_tf, rng.integers(0, 2, (12, 1)), 2, "elements"),
    "profit-tf": (user_metrics.profit_tf, rng.integers(0, 2, (10, 1)), 2, "elements"),
    "profit-numpy": (
        rewards.from_numpy(user_metrics.profit_numpy),
        rng.integers(0, 2, (10, 1)),
        2,
        "elements",
    ),
    "macro-f1": (user_metrics.macro_f1_tf, rng.integers(0, 2, (9, 3)), 2, "examples"),
    "mean-iou": (user_metrics.mean_iou_tf, rng.integers(0, 4, (3, 4)), 4, "elements"),
    "per-image-iou": (per_image_iou, rng.integers(0, 2, (3, 2, 3)), 2, "within_examples"),
    "first-half": (first_half_hits, rng.integers(0, 2, (8, 1)), 2, False),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("decisions", ["random", "all-zero"])
def test_probe_finds_the_level_and_local_rewards_match_brute_force(case, decisions):
    fn, y, num_values, level = CASES[case]
    reward = rewards.get(fn) if not isinstance(fn, rewards.Reward) else fn
    reward.structure = None  # a fresh probe for each case
    actions = rng.integers(0, num_values, (3, *y.shape))
    if decisions == "all-zero":
        actions = np.zeros_like(actions)
    reward.prepare(y, actions)
    assert reward.structure == level
    expected = brute_force_local_rewards(reward, y, actions, num_values)
    local = reward.local_rewards(tf.constant(y), tf.constant(actions), num_values).numpy()
    if level is False:  # a budget of 64 covers these few elements: exact as well
        assert reward.budget >= y.size
    np.testing.assert_allclose(local, expected, atol=1e-5)


def test_a_labels_without_positives_edge_case_matches_the_builtin():
    y = np.zeros((10, 1), np.int32)  # no positives: F1 is 0 whatever is flagged
    actions = rng.integers(0, 2, (4, 10, 1))
    user = rewards.CallableReward(user_metrics.f1_tf, exchangeable=True)
    np.testing.assert_allclose(
        user.local_rewards(tf.constant(y), tf.constant(actions)).numpy(),
        rewards.F1().local_rewards(tf.constant(y), tf.constant(actions)).numpy(),
    )


def test_the_budget_changes_budget_elements_and_leaves_the_others_without_credit():
    y = rng.integers(0, 2, (40, 1))
    actions = rng.integers(0, 2, (2, 40, 1))
    reward = rewards.CallableReward(user_metrics.f1_tf, exchangeable=False, budget=5)
    local = reward.local_rewards(tf.constant(y), tf.constant(actions)).numpy()  # [K, N, V]
    exact = rewards.F1().local_rewards(tf.constant(y), tf.constant(actions)).numpy()
    changed = np.any(local != local[:, :, :1], axis=(0, 2))
    probed = np.isclose(local, exact, atol=1e-6).all(axis=(0, 2))
    # at most 5 elements carry credit; every element either is exact or holds its set's reward
    assert changed.sum() <= 5 and probed.sum() >= 5
    base = rewards.F1()(tf.constant(y), tf.constant(actions)).numpy()
    unprobed = ~probed
    np.testing.assert_allclose(
        local[:, unprobed, :], base[:, None, None] * np.ones_like(local[:, unprobed, :]), atol=1e-6
    )


def test_per_example_terms_match_brute_force():
    def hits_per_example(y_true, sets):  # [B, L], [M, B, L] -> [M, B]
        hits = tf.cast(tf.equal(sets, tf.cast(y_true, sets.dtype)[None]), tf.float32)
        return tf.reduce_prod(hits, axis=-1) + 0.5 * tf.reduce_sum(tf.cast(sets, tf.float32), -1)

    reward = rewards.CallableReward(hits_per_example, per_example=True)
    y = rng.integers(0, 2, (6, 3))
    actions = rng.integers(0, 2, (2, 6, 3))
    expected = brute_force_local_rewards(reward, y, actions, 2)
    local = reward.local_rewards(tf.constant(y), tf.constant(actions)).numpy()
    np.testing.assert_allclose(local, expected, atol=1e-6)


def test_ordered_gains_of_a_users_iou_are_the_builtin_lovasz_gains():
    y = rng.integers(0, 2, (30, 1))
    p = rng.random((30, 1))
    value_probs = tf.constant(np.stack([1 - p, p], -1), tf.float32)
    builtin = rewards.get("iou").coupled_gains(tf.constant(y), value_probs).numpy()
    user = rewards.CallableReward(user_metrics.iou_tf, points=30)
    np.testing.assert_allclose(user.coupled_gains(tf.constant(y), value_probs), builtin, atol=1e-6)
    # fewer points: each segment's mean gain, the same total
    coarse = rewards.CallableReward(user_metrics.iou_tf, points=6)
    coarse_gains = coarse.coupled_gains(tf.constant(y), value_probs).numpy()
    np.testing.assert_allclose(coarse_gains.sum(), builtin.sum(), rtol=1e-5)


def test_ordered_gains_of_classes_follow_the_lovasz_softmax_order():
    y = rng.integers(0, 4, (40,))
    value_probs = tf.nn.softmax(tf.constant(rng.normal(size=(40, 4)), tf.float32))
    builtin = rewards.IoU(average="macro", num_classes=4).coupled_gains(tf.constant(y), value_probs)
    user = rewards.CallableReward(user_metrics.mean_iou_tf, points=40)
    gains = user.coupled_gains(tf.constant(y), value_probs).numpy()
    assert np.all(gains >= 0) and np.corrcoef(gains, builtin.numpy())[0, 1] > 0.8


@pytest.mark.parametrize("estimator", ["local_expectation", "best_response"])
def test_estimators_on_a_users_f1_equal_the_builtin(estimator):
    policy = policies.Bernoulli()
    logits = tf.constant(rng.normal(size=(12, 1)), tf.float32)
    y = tf.constant(rng.integers(0, 2, (12, 1)))
    outputs = []
    for reward in (rewards.F1(), rewards.CallableReward(user_metrics.f1_tf, exchangeable=True)):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            out = estimators.get(estimator)(
                logits,
                y,
                policy=policy,
                reward=reward,
                baseline=None,
                baseline_state=tf.zeros([0]),
                num_samples=4,
                seed=[3, 4],
            )
        outputs.append(tape.gradient(out.loss, logits).numpy())
    np.testing.assert_allclose(outputs[0], outputs[1], atol=1e-6)


def test_local_expectation_of_an_if_else_reward_is_unbiased():
    """The mean of local expectation on the campaign metric (not a count reward) against the
    exact gradient by enumerating all 2^6 decision sets."""
    policy = policies.Bernoulli()
    logits = tf.constant(rng.normal(size=(6, 1)).astype(np.float32))
    y = tf.constant([[1], [0], [1], [0], [0], [0]])

    def profit(y_true, sets):  # the budget: more than a third flagged costs 8
        y_f, a = tf.cast(y_true[None], tf.float32), tf.cast(sets, tf.float32)
        value = tf.reduce_sum(10 * a * y_f - 3 * a * (1 - y_f), axis=[1, 2])
        return tf.where(tf.reduce_mean(a, axis=[1, 2]) > 1 / 3, value - 8.0, value)

    reward = rewards.CallableReward(profit, exchangeable=True)
    exact = exact_gradient(policy, logits, y, reward)
    draws = gradient_draws(
        policy,
        logits,
        y,
        reward,
        None,
        tf.zeros([0]),
        draws=600,
        estimator=estimators.LocalExpectation(),
    )
    assert np.abs(exact).max() > 1e-2
    assert z_scores(draws, exact).max() < SIGMAS


# -- interface and bad input --------------------------------------------------------------------


def test_vectorized_numpy_and_per_set_numpy_agree_and_match_tensorflow():
    y = rng.integers(0, 2, (20, 1))
    actions = rng.integers(0, 2, (5, 20, 1))
    per_set = rewards.from_numpy(user_metrics.profit_numpy)(y, actions).numpy()
    vectorized = rewards.from_numpy(user_metrics.profit_numpy_vectorized, vectorized=True)
    np.testing.assert_allclose(vectorized(y, actions).numpy(), per_set)
    tf_reward = rewards.get(user_metrics.profit_tf)
    np.testing.assert_allclose(tf_reward(tf.constant(y), tf.constant(actions)).numpy(), per_set)


@pytest.mark.parametrize("returned", ["scalar", "per-example", "fixed"])
def test_a_reward_of_the_wrong_shape_names_it_before_training(returned):
    outputs = {
        "scalar": lambda y, a: tf.reduce_mean(tf.cast(a, tf.float32)),
        "per-example": lambda y, a: tf.cast(a[..., 0], tf.float32),  # [M, B]
        "fixed": lambda y, a: tf.zeros([8]),  # [K] whatever M is
    }
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    trainer = PolicyGradientTrainer(model, reward=outputs[returned], num_samples=8, seed=0)
    trainer.compile()
    weights = [w.copy() for w in model.get_weights()]
    x, y = rng.normal(size=(16, 3)).astype("float32"), rng.integers(0, 2, (16, 1))
    with pytest.raises(ValueError, match=r"returned shape .*expected \[M\]"):
        trainer.fit(x, y, verbose=0)
    for before, after in zip(weights, model.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)


def test_a_numpy_reward_of_the_wrong_shape_names_it():
    reward = rewards.from_numpy(lambda y, sets: sets.sum(), vectorized=True, name="total")
    with pytest.raises(
        ValueError,
        match=r"Reward 'total' returned shape \[\] for 3 decision "
        r"sets; expected \[3\]",
    ):
        reward(np.ones([4, 1], "int32"), np.ones([3, 4, 1], "int32"))


def test_a_reward_that_raises_keeps_its_exception_and_is_named():
    class BusinessRuleError(RuntimeError):
        pass

    def strict(y_true, y_pred):
        raise BusinessRuleError("no campaign on Sundays")

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    trainer = PolicyGradientTrainer(model, reward=rewards.from_numpy(strict), seed=0)
    trainer.compile()
    x, y = rng.normal(size=(16, 3)).astype("float32"), rng.integers(0, 2, (16, 1))
    with pytest.raises(BusinessRuleError, match="no campaign on Sundays") as info:
        trainer.fit(x, y, verbose=0)
    assert any("'strict'" in note for note in getattr(info.value, "__notes__", ["'strict'"]))


def test_a_reward_that_writes_into_its_input_is_refused():
    def greedy_profit(y_true, y_pred):
        y_pred[y_true == 0] = 0  # "fixes" the decisions it scores
        return float((y_pred * y_true).sum())

    reward = rewards.from_numpy(greedy_profit)
    with pytest.raises(ValueError, match=r"'greedy_profit' writes into the arrays passed to it"):
        reward(np.array([[1], [0]]), np.array([[[1], [1]]]))


def test_a_reward_that_turns_nan_stops_training_with_finite_weights():
    calls = tf.Variable(0)

    def turns_nan(y_true, sets):  # fine for the first calls, then NaN
        calls.assign_add(1)
        value = tf.reduce_mean(tf.cast(sets, tf.float32), axis=[1, 2])
        return tf.where(calls > 12, np.nan, value)

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    trainer = PolicyGradientTrainer(model, reward=turns_nan, seed=0)
    trainer.compile()
    x, y = rng.normal(size=(32, 3)).astype("float32"), rng.integers(0, 2, (32, 1))
    with pytest.raises(NonFiniteError, match="did not update the weights"):
        trainer.fit(x, y, batch_size=32, epochs=20, verbose=0)
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"exchangeable": "rows"}, r"exchangeable must be one of"),
        ({"budget": 0}, r"budget must be an int >= 1; received budget=0"),
        ({"points": 2.5}, r"points must be an int >= 1; received points=2.5"),
    ],
)
def test_bad_structure_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        rewards.CallableReward(user_metrics.f1_tf, **kwargs)


@keras.saving.register_keras_serializable(package="tests")
def saved_profit(y_true, sets):
    return user_metrics.profit_tf(y_true, sets)


def test_a_users_reward_and_its_structure_survive_saving(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    reward = rewards.CallableReward(saved_profit, exchangeable="elements", points=16)
    trainer = PolicyGradientTrainer(model, reward=reward, seed=0)
    trainer.compile()
    x, y = rng.normal(size=(32, 3)).astype("float32"), rng.integers(0, 2, (32, 1))
    trainer.fit(x, y, epochs=1, verbose=0)
    trainer.save(tmp_path / "t.keras")
    loaded = keras.saving.load_model(tmp_path / "t.keras")
    assert loaded.reward.get_config() == reward.get_config()
    np.testing.assert_allclose(loaded.predict(x, verbose=0), trainer.predict(x, verbose=0))


def test_a_constant_reward_warns_once_that_nothing_is_learned():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    trainer = PolicyGradientTrainer(model, reward=lambda y, a: tf.ones(tf.shape(a)[:1]), seed=0)
    trainer.compile()
    x, y = rng.normal(size=(64, 3)).astype("float32"), rng.integers(0, 2, (64, 1))
    with pytest.warns(UserWarning, match=r"No learning signal: the loss was exactly 0") as caught:
        trainer.fit(x, y, batch_size=16, epochs=3, verbose=0)
    assert sum("No learning signal" in str(w.message) for w in caught) == 1


def test_a_users_tf_reward_trains_under_xla_as_without():
    x, y = rng.normal(size=(64, 3)).astype("float32"), rng.integers(0, 2, (64, 1))
    weights = []
    for jit in (False, True):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        trainer = PolicyGradientTrainer(model, reward=user_metrics.f1_tf, seed=0)
        trainer.compile(optimizer=keras.optimizers.Adam(0.05), jit_compile=jit)
        trainer.fit(x, y, batch_size=32, epochs=2, verbose=0)
        weights.append(model.get_weights())
    for a, b in zip(*weights, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_a_function_of_continuous_actions_is_not_probed():
    """A Gaussian policy's labels need not have the action shape: no permutation probe."""

    def closeness(y_true, sets):  # [B, 1] targets, [M, B, 2] actions
        return -tf.reduce_mean(tf.abs(sets[..., 0] - y_true[None, :, 0]), axis=1)

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4)])
    trainer = PolicyGradientTrainer(model, reward=closeness, policy="gaussian", seed=0)
    trainer.compile()
    x, y = rng.normal(size=(32, 3)).astype("float32"), rng.normal(size=(32, 1)).astype("float32")
    trainer.fit(x, y, epochs=1, verbose=0)
    assert trainer.reward.structure is None and isinstance(trainer.estimator, estimators.Reinforce)


def test_a_converged_policy_with_a_zero_loss_does_not_warn():
    # REINFORCE on a policy that draws the same decisions every time has zero advantages: no
    # learning signal, but not a reward that ignores its decisions (the bench's cancer-f1 runs)
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(1, bias_initializer=keras.initializers.Constant(30))]
    )
    trainer = PolicyGradientTrainer(model, reward="f1", estimator="reinforce", seed=0)
    trainer.compile()
    x, y = rng.normal(size=(64, 3)).astype("float32"), rng.integers(0, 2, (64, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        history = trainer.fit(x, y, batch_size=16, epochs=2, verbose=0)
    assert history.history["loss"][-1] == 0.0 and history.history["entropy"][-1] < 1e-3
