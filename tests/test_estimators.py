"""The REINFORCE estimator against the exact gradient of E[reward], computed by enumeration."""

import numpy as np
import pytest
import tensorflow as tf

from rlmetric import baselines, diagnostics, estimators, policies, rewards

DRAWS = 3000
SIGMAS = 4.5  # per-coordinate tolerance in standard errors of the mean of DRAWS draws

rng = np.random.default_rng(0)
BERNOULLI = (
    policies.Bernoulli(),
    tf.constant(rng.normal(size=6).astype(np.float32)),
    tf.constant([1, 0, 1, 1, 0, 0], tf.int32),
)
CATEGORICAL = (
    policies.Categorical(),
    tf.constant(rng.normal(size=(3, 3)).astype(np.float32)),
    tf.constant([0, 2, 2], tf.int32),
)
CASES = {
    "bernoulli-f1": (*BERNOULLI, rewards.F1()),
    "bernoulli-iou-macro": (*BERNOULLI, rewards.IoU(average="macro")),
    "bernoulli-mcc": (*BERNOULLI, rewards.MatthewsCorrCoef()),
    "categorical-f1-macro": (*CATEGORICAL, rewards.F1(average="macro", num_classes=3)),
    "categorical-iou-macro": (*CATEGORICAL, rewards.IoU(average="macro", num_classes=3)),
    "categorical-mcc": (*CATEGORICAL, rewards.MatthewsCorrCoef(num_classes=3)),
}
UNBIASED = {
    "none": (baselines.NoBaseline(), tf.zeros([0])),
    # a state with history, so the subtracted value is non-zero (0.25 / (1 - 0.5) = 0.5)
    "moving_average": (baselines.MovingAverage(decay=0.5), tf.constant([0.25, 0.5])),
    "leave_one_out": (baselines.LeaveOneOut(), tf.zeros([0])),
    "greedy": (baselines.Greedy(), tf.zeros([0])),
}


def exact_gradient(policy, logits, y, reward):
    with tf.GradientTape() as tape:
        tape.watch(logits)
        value = diagnostics.expected_reward(policy, reward, logits, y)
    return tape.gradient(value, logits).numpy()


def gradient_draws(
    policy, logits, y, reward, baseline, state, num_samples=4, draws=DRAWS, estimator=None
):
    """[draws, *logits.shape] independent estimates of grad E[R] (ascent direction)."""
    estimator = estimator or estimators.Reinforce()

    def one(seed):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            out = estimator(
                logits,
                y,
                policy=policy,
                reward=reward,
                baseline=baseline,
                baseline_state=state,
                num_samples=num_samples,
                seed=seed,
            )
        return -tape.gradient(out.loss, logits)

    seeds = tf.stack([tf.range(draws), tf.fill([draws], 17)], axis=1)
    return tf.function(lambda s: tf.map_fn(one, s, fn_output_signature=tf.float32))(seeds).numpy()


def z_scores(draws, exact):
    standard_error = draws.std(0) / np.sqrt(len(draws)) + 1e-7
    return np.abs(draws.mean(0) - exact) / standard_error


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("baseline_name", sorted(UNBIASED))
def test_reinforce_is_unbiased(case, baseline_name):
    policy, logits, y, reward = CASES[case]
    baseline, state = UNBIASED[baseline_name]
    exact = exact_gradient(policy, logits, y, reward)
    draws = gradient_draws(policy, logits, y, reward, baseline, state)
    assert np.abs(exact).max() > 1e-3  # a problem with a real gradient to find
    z = z_scores(draws, exact)
    assert z.max() < SIGMAS, f"mean {draws.mean(0)} vs exact {exact}: z = {z}"


def test_the_unbiasedness_check_detects_group_norm_bias():
    """group_norm is documented as biased; the same check must see it (the test has power)."""
    policy, logits, y, reward = CASES["bernoulli-f1"]
    exact = exact_gradient(policy, logits, y, reward)
    draws = gradient_draws(policy, logits, y, reward, baselines.GroupNorm(), tf.zeros([0]))
    assert z_scores(draws, exact).max() > 2 * SIGMAS


@pytest.mark.parametrize("case", ["bernoulli-f1", "categorical-f1-macro"])
def test_leave_one_out_and_greedy_reduce_variance(case):
    policy, logits, y, reward = CASES[case]
    variance = {}
    for name in ("none", "leave_one_out", "greedy"):
        baseline, state = UNBIASED[name]
        draws = gradient_draws(policy, logits, y, reward, baseline, state, draws=1000)
        variance[name] = draws.var(0).sum()
    assert variance["leave_one_out"] < 0.5 * variance["none"], variance
    assert variance["greedy"] < 0.8 * variance["none"], variance


LOW_VARIANCE = [("local", case) for case in sorted(CASES)] + [
    ("disarm", case) for case in sorted(CASES) if case.startswith("bernoulli")
]


@pytest.mark.parametrize("estimator, case", LOW_VARIANCE)
def test_local_and_disarm_are_unbiased(estimator, case):
    policy, logits, y, reward = CASES[case]
    exact = exact_gradient(policy, logits, y, reward)
    draws = gradient_draws(
        policy,
        logits,
        y,
        reward,
        baselines.NoBaseline(),
        tf.zeros([0]),
        estimator=estimators.get(estimator),
    )
    z = z_scores(draws, exact)
    assert z.max() < SIGMAS, f"mean {draws.mean(0)} vs exact {exact}: z = {z}"


@pytest.mark.parametrize("case", ["bernoulli-f1", "bernoulli-mcc", "categorical-iou-macro"])
def test_local_and_disarm_have_lower_variance_than_leave_one_out(case):
    policy, logits, y, reward = CASES[case]

    def total_variance(estimator, baseline):
        draws = gradient_draws(
            policy,
            logits,
            y,
            reward,
            baseline,
            tf.zeros([0]),
            draws=1000,
            estimator=estimators.get(estimator),
        )
        return draws.var(0).sum()

    leave_one_out = total_variance("reinforce", baselines.LeaveOneOut())
    assert total_variance("local", baselines.NoBaseline()) < 0.5 * leave_one_out
    if isinstance(policy, policies.Bernoulli):
        assert total_variance("disarm", baselines.NoBaseline()) < 0.8 * leave_one_out


def test_local_refuses_rewards_without_counts():
    with pytest.raises(
        ValueError,
        match=r"estimator='local' needs a reward computed from confusion counts.*'disarm'",
    ):
        estimators.LocalExpectation().check(
            policy=policies.Bernoulli(),
            reward=rewards.CallableReward(lambda y, a: a, name="custom"),
            baseline=baselines.NoBaseline(),
            num_samples=4,
        )


def test_disarm_refuses_categorical_policies():
    with pytest.raises(ValueError, match=r"estimator='disarm' needs policy='bernoulli'"):
        estimators.DisARM().check(
            policy=policies.Categorical(),
            reward=rewards.F1(),
            baseline=baselines.NoBaseline(),
            num_samples=4,
        )


def test_score_function_surrogate_gradient():
    log_probs = tf.Variable([[0.0, -1.0], [-2.0, -0.5]])  # [K=2, B=2]
    with tf.GradientTape() as tape:
        loss = estimators.score_function_surrogate(log_probs, tf.constant([1.0, -3.0]))
    # d/dlogp of -(1/K) sum_k A_k sum_i logp_ki = -A_k / K
    np.testing.assert_allclose(tape.gradient(loss, log_probs).numpy(), [[-0.5, -0.5], [1.5, 1.5]])


def test_reward_of_wrong_shape_is_named():
    policy, logits, y, _ = CASES["bernoulli-f1"]
    with pytest.raises(ValueError, match=r"Reward 'per_element' returned shape \(4, 6\).*\[K\]"):
        estimators.Reinforce()(
            logits,
            y,
            policy=policy,
            reward=rewards.CallableReward(lambda t, a: tf.cast(a, tf.float32), name="per_element"),
            baseline=baselines.NoBaseline(),
            baseline_state=tf.zeros([0]),
            num_samples=4,
            seed=[0, 0],
        )


def test_check_refuses_too_few_samples_for_leave_one_out():
    with pytest.raises(
        ValueError, match=r"baseline='leave_one_out' needs num_samples >= 2; received num_samples=1"
    ):
        estimators.Reinforce().check(
            policy=policies.Bernoulli(),
            reward=rewards.F1(),
            baseline=baselines.LeaveOneOut(),
            num_samples=1,
        )


def test_get_aliases_and_errors():
    assert isinstance(estimators.get("reinforce"), estimators.Reinforce)
    assert isinstance(estimators.get("local"), estimators.LocalExpectation)
    assert isinstance(estimators.get("disarm"), estimators.DisARM)
    with pytest.raises(ValueError, match=r"Unknown estimator 'rebar'.*'reinforce'"):
        estimators.get("rebar")
