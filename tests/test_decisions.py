"""Predict, then optimize (rlmetric.decisions): the enumerated solver against dynamic
programming, the regret reward and the SPO+ loss against their definitions, and per-example
REINFORCE against the exact gradient."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from rlmetric import PolicyGradientTrainer, decisions, estimators, policies, rewards
from tests.test_estimators import SIGMAS, exact_gradient, gradient_draws, z_scores

rng = np.random.default_rng(0)


def shortest_by_dynamic_programming(costs, rows, cols):
    right = rows * (cols - 1)
    best = np.full((rows, cols), np.inf)
    best[0, 0] = 0.0
    for r in range(rows):
        for c in range(cols):
            if c > 0:
                best[r, c] = min(best[r, c], best[r, c - 1] + costs[r * (cols - 1) + c - 1])
            if r > 0:
                best[r, c] = min(best[r, c], best[r - 1, c] + costs[right + (r - 1) * cols + c])
    return best[-1, -1]


@pytest.mark.parametrize("rows, cols", [(5, 5), (3, 4), (2, 2)])
def test_grid_paths_are_every_monotone_path_and_the_optimizer_finds_the_shortest(rows, cols):
    paths = decisions.grid_paths(rows, cols)
    from math import comb

    assert paths.shape == (comb(rows + cols - 2, rows - 1), rows * (cols - 1) + (rows - 1) * cols)
    assert len({p.tobytes() for p in paths}) == len(paths)  # all distinct
    np.testing.assert_array_equal(paths.sum(1), rows + cols - 2)
    optimizer = decisions.LinearOptimizer(paths)
    costs = rng.random((20, paths.shape[1])).astype("float32")
    expected = [shortest_by_dynamic_programming(c, rows, cols) for c in costs]
    np.testing.assert_allclose(optimizer.optimal_value(costs), expected, rtol=1e-5)
    chosen = optimizer(costs).numpy()
    np.testing.assert_allclose((chosen * costs).sum(1), expected, rtol=1e-5)


def test_regret_is_zero_at_the_truth_and_the_cost_gap_otherwise():
    optimizer = decisions.LinearOptimizer(decisions.grid_paths(3, 3))
    reward = decisions.Regret(optimizer)
    costs = rng.random((6, 12)).astype("float32")
    wrong = rng.random((2, 6, 12)).astype("float32")
    sets = np.concatenate([costs[None], wrong])  # [3, 6, 12]
    terms = reward.per_example_terms(tf.constant(costs), tf.constant(sets)).numpy()
    np.testing.assert_allclose(terms[0], 0.0, atol=1e-6)
    gap = (optimizer(wrong).numpy() * costs[None]).sum(-1) - optimizer.optimal_value(costs).numpy()
    np.testing.assert_allclose(terms[1:], -gap, atol=1e-5)
    np.testing.assert_allclose(reward(costs, sets).numpy(), terms.mean(1), atol=1e-6)
    assert np.all(gap >= -1e-6)


def test_spo_plus_is_nonnegative_zero_at_the_truth_and_its_gradient_is_2_w_star_minus_w_tilde():
    optimizer = decisions.LinearOptimizer(decisions.grid_paths(3, 3))
    loss = decisions.SPOPlus(optimizer, reduction=None)
    costs = tf.constant(rng.random((8, 12)), tf.float32)
    predicted = tf.Variable(rng.random((8, 12)), dtype=tf.float32)
    np.testing.assert_allclose(loss(costs, costs), 0.0, atol=1e-5)
    with tf.GradientTape() as tape:
        values = loss(costs, predicted)
        total = tf.reduce_sum(values)
    assert np.all(values.numpy() >= -1e-5)
    gradient = tape.gradient(total, predicted).numpy()
    expected = 2 * (optimizer(costs) - optimizer(2.0 * predicted - costs)).numpy()
    np.testing.assert_allclose(gradient, expected, atol=1e-5)
    # SPO+ bounds the regret from above
    regret = (optimizer(predicted).numpy() * costs.numpy()).sum(1) - optimizer.optimal_value(costs)
    assert np.all(values.numpy() >= regret.numpy() - 1e-5)


def test_per_example_reinforce_is_unbiased():
    """A mean over examples of per-example terms, Bernoulli decisions: REINFORCE with a
    leave-one-out baseline per example against the exact gradient by enumeration."""
    policy = policies.Bernoulli()
    logits = tf.constant(rng.normal(size=(5, 1)).astype(np.float32))
    y = tf.constant([[1], [0], [1], [0], [1]])

    def asymmetric(y_true, sets):  # [B, 1], [M, B, 1] -> [M, B]
        y_f, a = tf.cast(y_true[None, :, 0], tf.float32), tf.cast(sets[..., 0], tf.float32)
        return 3.0 * a * y_f - a * (1 - y_f) + 0.5 * (1 - a)

    reward = rewards.CallableReward(asymmetric, per_example=True)
    exact = exact_gradient(policy, logits, y, reward)
    from rlmetric import baselines

    draws = gradient_draws(policy, logits, y, reward, baselines.LeaveOneOut(), tf.zeros([0]))
    assert np.abs(exact).max() > 1e-2
    assert z_scores(draws, exact).max() < SIGMAS


def test_per_example_reinforce_refuses_a_batch_baseline():
    reward = rewards.CallableReward(lambda y, a: tf.cast(a[..., 0], tf.float32), per_example=True)
    with pytest.raises(ValueError, match=r"one term per example .*received baseline='greedy'"):
        PolicyGradientTrainer(
            keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)]),
            reward=reward,
            estimator="reinforce",
            baseline="greedy",
        )


def test_a_gaussian_policy_over_costs_lowers_the_regret_on_a_small_problem():
    """Features decide which of two routes is cheaper; the model starts indifferent."""
    optimizer = decisions.LinearOptimizer([[1.0, 0.0], [0.0, 1.0]])
    x = rng.normal(size=(256, 2)).astype("float32")
    costs = np.stack([1.0 + x[:, 0], 1.0 - x[:, 0]], axis=1).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, kernel_initializer="zeros")])
    trainer = PolicyGradientTrainer(
        model, reward=decisions.Regret(optimizer), policy=policies.Gaussian(std=0.5), seed=0
    )
    assert isinstance(trainer.estimator, estimators.Reinforce)
    trainer.compile(optimizer=keras.optimizers.Adam(0.05))
    before = trainer.evaluate(x, costs, return_dict=True, verbose=0)["regret"]
    trainer.fit(x, costs, batch_size=32, epochs=10, verbose=0)
    after = trainer.evaluate(x, costs, return_dict=True, verbose=0)["regret"]
    assert after > -0.05 > before  # minus the mean regret: from ~ -0.8 to near 0


def test_gaussian_labels_must_be_finite_and_std_positive():
    with pytest.raises(ValueError, match=r"std must be a number > 0 or None; received std=0"):
        policies.Gaussian(std=0)
    trainer = PolicyGradientTrainer(
        keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)]),
        reward=decisions.Regret(decisions.LinearOptimizer([[1.0, 0.0], [0.0, 1.0]])),
        policy=policies.Gaussian(std=0.5),
    )
    trainer.compile()
    y = np.ones((8, 2), "float32")
    y[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"y must be finite for policy='gaussian'.*1 non-finite"):
        trainer.fit(np.ones((8, 2), "float32"), y, verbose=0)


def test_regret_and_spo_plus_survive_saving(tmp_path):
    optimizer = decisions.LinearOptimizer(decisions.grid_paths(2, 3))
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(optimizer.size)])
    trainer = PolicyGradientTrainer(
        model, reward=decisions.Regret(optimizer), policy=policies.Gaussian(std=0.3), seed=0
    )
    trainer.compile()
    x = rng.normal(size=(16, 3)).astype("float32")
    y = rng.random((16, optimizer.size)).astype("float32")
    trainer.fit(x, y, epochs=1, verbose=0)
    trainer.save(tmp_path / "t.keras")
    loaded = keras.saving.load_model(tmp_path / "t.keras")
    np.testing.assert_array_equal(loaded.reward.optimizer.decisions, optimizer.decisions)
    assert loaded.policy.std == 0.3
    spo = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(decisions.SPOPlus(optimizer))
    )
    np.testing.assert_allclose(spo(y, y), 0.0, atol=1e-5)


@pytest.mark.parametrize("baseline_name", ["none", "leave_one_out"])
def test_per_example_reinforce_uses_the_baseline_asked_for(baseline_name):
    """baseline='none' credits each example's raw term; leave-one-out its term minus the mean
    of its other samples' terms."""
    from rlmetric import baselines

    policy = policies.Bernoulli()
    logits = tf.constant(rng.normal(size=(4, 1)).astype(np.float32))
    y = tf.constant([[1], [0], [1], [0]])
    reward = rewards.CallableReward(
        lambda y_true, sets: 2.0 + tf.cast(sets[..., 0], tf.float32), per_example=True
    )
    out = estimators.Reinforce()(
        logits,
        y,
        policy=policy,
        reward=reward,
        baseline=baselines.get(baseline_name),
        baseline_state=tf.zeros([0]),
        num_samples=4,
        seed=[1, 2],
    )
    terms = 2.0 + tf.cast(out.actions[..., 0], tf.float32).numpy()  # [K, B]
    if baseline_name == "none":
        expected = terms
    else:
        expected = terms - (terms.sum(0, keepdims=True) - terms) / 3
    np.testing.assert_allclose(out.advantages.numpy(), expected.mean(1), atol=1e-6)
