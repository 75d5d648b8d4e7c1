"""The REINFORCE estimator against the exact gradient of E[reward], computed by enumeration."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.metrics import accuracy_score, f1_score, jaccard_score, matthews_corrcoef

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


LOW_VARIANCE = [("local_expectation", case) for case in sorted(CASES)] + [
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
    assert total_variance("local_expectation", baselines.NoBaseline()) < 0.5 * leave_one_out
    if isinstance(policy, policies.Bernoulli):
        assert total_variance("disarm", baselines.NoBaseline()) < 0.8 * leave_one_out


def test_local_refuses_rewards_without_per_element_credit():
    with pytest.raises(
        ValueError,
        match=r"estimator='local_expectation' needs per-element decisions scored by a reward "
        r"computed from confusion counts .* reward 'ndcg@10' is NDCG.*'reinforce'",
    ):
        estimators.LocalExpectation().check(
            policy=policies.Bernoulli(),
            reward=rewards.get("ndcg@10"),
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
    assert isinstance(estimators.get("local_expectation"), estimators.LocalExpectation)
    assert isinstance(estimators.get("disarm"), estimators.DisARM)
    with pytest.raises(ValueError, match=r"Unknown estimator 'rebar'.*'reinforce'"):
        estimators.get("rebar")


# --- the local best response -----------------------------------------------------------------


def best_response_output(logits, y, reward, policy, context="mode", normalize=True, seed=(3, 4)):
    logits = tf.convert_to_tensor(logits)
    with tf.GradientTape() as tape:
        tape.watch(logits)
        out = estimators.LocalBestResponse(context, normalize)(
            logits,
            y,
            policy=policy,
            reward=reward,
            baseline=baselines.NoBaseline(),
            baseline_state=tf.zeros([0]),
            num_samples=4,
            seed=list(seed),
        )
    return out, tape.gradient(out.loss, logits).numpy()


def test_best_response_matches_a_hand_computed_f1_case():
    # mode [1, 0, 1, 0] against labels [1, 1, 0, 0]: tp 1, fp 1, fn 1, F1 = 2/4.
    # Each element's best response is its label; its gain is F1(label) - F1(other value):
    # element 0 (tp -> fn): 1/2 - 0; element 1 (fn -> tp): 4/5 - 1/2;
    # element 2 (fp -> tn): 2/3 - 1/2; element 3 (tn, vs fp): 1/2 - 2/5.
    logits = np.array([2.0, -1.0, 0.5, -3.0], np.float32)
    labels = tf.constant([1, 1, 0, 0])
    out, gradient = best_response_output(logits, labels, rewards.F1(), policies.Bernoulli())
    weights = np.array([0.5, 0.3, 1 / 6, 0.1])
    probability = 1 / (1 + np.exp(-logits))
    crossentropy = -np.log(np.where(labels.numpy() == 1, probability, 1 - probability))
    np.testing.assert_allclose(out.loss, (weights * crossentropy).sum() / weights.sum(), rtol=1e-5)
    # d/dl of a weighted BCE: w (p - y) / sum w
    expected = weights * (probability - labels.numpy()) / weights.sum()
    np.testing.assert_allclose(gradient, expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(out.rewards, [0.5])


def reference_best_response(logits, labels, decisions, metric, num_values):
    """The loss by brute force: every element set to every value, scored with scikit-learn."""
    logits, labels = np.asarray(logits, np.float64), np.asarray(labels).ravel()
    decisions = np.asarray(decisions).reshape(len(decisions), -1)  # [K, N]
    if num_values == 2:
        p1 = 1 / (1 + np.exp(-logits.ravel()))
        probs = np.stack([1 - p1, p1], -1)
    else:
        z = logits.reshape(-1, num_values)
        probs = np.exp(z - z.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
    local = np.zeros((len(labels), num_values))
    for k in range(len(decisions)):
        for i in range(len(labels)):
            for v in range(num_values):
                changed = decisions[k].copy()
                changed[i] = v
                local[i, v] += metric(labels, changed) / len(decisions)
    best = local.argmax(-1)
    gains = local[np.arange(len(labels)), best][:, None] - local
    others = probs.copy()
    others[np.arange(len(labels)), best] = 0
    weights = (others * gains).sum(-1) / np.maximum(others.sum(-1), 1e-300)
    crossentropy = -np.log(probs[np.arange(len(labels)), best])
    total = weights.sum()
    return ((weights * crossentropy).sum() / total if total > 0 else 0.0), best


BEST_RESPONSE_CASES = {
    "bernoulli-f1": (
        policies.Bernoulli(),
        (12,),
        rewards.F1(),
        lambda t, p: f1_score(t, p, zero_division=0.0),
        2,
    ),
    "bernoulli-mcc": (
        policies.Bernoulli(),
        (12,),
        rewards.MatthewsCorrCoef(),
        lambda t, p: matthews_corrcoef(t, p),
        2,
    ),
    "categorical-miou": (
        policies.Categorical(),
        (10, 3),
        rewards.IoU(average="macro", num_classes=3),
        lambda t, p: jaccard_score(t, p, average="macro", zero_division=0.0),
        3,
    ),
    "categorical-accuracy": (
        policies.Categorical(),
        (10, 3),
        rewards.Accuracy(num_classes=3),
        accuracy_score,
        3,
    ),
}


@pytest.mark.parametrize("context", ["mode", "samples"])
@pytest.mark.parametrize("case", sorted(BEST_RESPONSE_CASES))
def test_best_response_matches_brute_force_with_scikit_learn(case, context):
    policy, shape, reward, metric, num_values = BEST_RESPONSE_CASES[case]
    case_rng = np.random.default_rng(len(case))
    for trial in range(3):
        logits = case_rng.normal(scale=1.5, size=shape).astype(np.float32)
        labels = case_rng.integers(0, num_values, size=shape[:1]).astype(np.int32)
        if trial == 2:  # an edge case: no positive label / a single class present
            labels[:] = 0
        out, _ = best_response_output(logits, labels, reward, policy, context, seed=(trial, 1))
        expected, best = reference_best_response(
            logits, labels, out.actions.numpy(), metric, num_values
        )
        assert (len(out.actions) == 1) == (context == "mode")
        np.testing.assert_allclose(out.loss, expected, rtol=1e-4, atol=1e-6)


def test_best_response_of_count_metrics_is_the_label_and_unnormalized_is_the_raw_sum():
    logits = tf.constant(rng.normal(size=(40,)).astype(np.float32))
    labels = tf.constant((rng.random(40) < 0.3).astype(np.int32))
    normalized, gradient = best_response_output(logits, labels, rewards.IoU(), policies.Bernoulli())
    raw, raw_gradient = best_response_output(
        logits, labels, rewards.IoU(), policies.Bernoulli(), normalize=False
    )
    # the gradient of a weighted BCE pushes every logit toward its label
    assert np.all(np.sign(-gradient) == np.where(labels.numpy() == 1, 1, -1))
    ratio = float(raw.loss) / float(normalized.loss)
    np.testing.assert_allclose(raw_gradient, gradient * ratio, rtol=1e-4, atol=1e-8)


def test_best_response_vanishes_where_the_policy_is_certain_of_the_best_value():
    labels = tf.constant([1, 0, 1, 0, 0])
    certain = tf.constant([30.0, -30.0, 30.0, -30.0, -30.0])
    _, gradient = best_response_output(certain, labels, rewards.F1(), policies.Bernoulli())
    np.testing.assert_allclose(gradient, 0.0, atol=1e-10)
    # confidently wrong: p(label) ~ 1e-13, yet each positive's update is of order 1 (no
    # vanishing factor). The negatives get none: with tp = 0 the F1 is 0 whatever they are.
    _, gradient = best_response_output(-certain, labels, rewards.F1(), policies.Bernoulli())
    np.testing.assert_allclose(gradient, [-0.5, 0.0, -0.5, 0.0, 0.0], atol=1e-6)


def test_best_response_refuses_rewards_without_counts_and_bad_options():
    with pytest.raises(ValueError, match=r"estimator='best_response' needs per-element decisions"):
        estimators.LocalBestResponse().check(
            policy=policies.Bernoulli(),
            reward=rewards.get("ndcg@10"),
            baseline=baselines.NoBaseline(),
            num_samples=4,
        )
    with pytest.raises(
        ValueError, match=r"context must be one of \('mode', 'samples', 'coupled'\); "
    ):
        estimators.LocalBestResponse(context="greedy")
    with pytest.raises(TypeError, match=r"normalize must be a bool; received normalize='yes'"):
        estimators.LocalBestResponse(normalize="yes")


def test_best_response_config_round_trips_and_auto_picks_it_for_count_rewards():
    config = keras.saving.serialize_keras_object(estimators.LocalBestResponse("mode"))
    estimator = estimators.get(config)
    assert isinstance(estimator, estimators.LocalBestResponse)
    assert estimator.get_config() == {"context": "mode", "normalize": True}
    assert isinstance(estimators.get("best_response"), estimators.LocalBestResponse)
    pick = estimators.default_estimator
    assert pick(rewards.F1(), policies.Bernoulli()).context == "mode"
    assert pick(rewards.MatthewsCorrCoef(), policies.Bernoulli()).context == "mode"
    # mean IoU of classes: the coupled context (the Jaccard loss's Lovasz order); binary IoU
    # measured a tie at 2.5-3.7x the step cost and keeps the mode
    miou = rewards.IoU(average="macro", num_classes=4)
    assert pick(miou, policies.Categorical()).context == "coupled"
    assert pick(rewards.IoU(), policies.Bernoulli()).context == "mode"
    assert estimators.get("coupled_best_response").context == "coupled"
    # a user's function of per-element decisions: the same best response, its credit probed
    custom = rewards.CallableReward(lambda y, a: a, name="custom")
    assert pick(custom, policies.Bernoulli()).context == "mode"
    assert pick(custom, policies.Categorical()).context == "mode"
    assert isinstance(pick(custom, policies.get("plackett_luce")), estimators.Reinforce)
    rows = rewards.F1(average="samples", num_classes=3)
    assert isinstance(pick(rows, policies.Categorical()), estimators.Reinforce)


@pytest.mark.parametrize(
    "policy, shape, reward, num_values",
    [
        (policies.Bernoulli(), (16, 3), rewards.F1(average="macro"), 2),
        (policies.Categorical(), (16, 3), rewards.IoU(average="macro", num_classes=3), 3),
    ],
)
def test_coupled_best_response_is_the_crossentropy_weighted_by_the_coupled_gains(
    policy, shape, reward, num_values
):
    """The loss is sum_i w_i CE_i(label) / sum_i w_i with w the reward's coupled gains of the
    policy's value probabilities."""
    logits = tf.constant(rng.normal(size=shape).astype(np.float32))
    labels_shape = shape if num_values == 2 else shape[:-1]
    labels = tf.constant(rng.integers(0, num_values, labels_shape).astype(np.int32))
    out, _ = best_response_output(logits, labels, reward, policy, "coupled")
    probs = policy.value_probs(logits).numpy().reshape(-1, num_values)
    flat = labels.numpy().ravel()
    weights = reward.coupled_gains(labels, policy.value_probs(logits)).numpy()
    crossentropy = -np.log(probs[np.arange(flat.size), flat])
    np.testing.assert_allclose(
        out.loss, (weights * crossentropy).sum() / weights.sum(), rtol=1e-5, atol=1e-7
    )
    config = keras.saving.serialize_keras_object(estimators.LocalBestResponse("coupled"))
    assert estimators.get(config).context == "coupled"
    with pytest.raises(ValueError, match="context='mode'"):
        estimators.LocalBestResponse(context="coupled").check(
            policy=policy, reward=rewards.Accuracy(), baseline=None, num_samples=1
        )


def test_weights_and_targets_is_the_piece_the_loss_is_built_from():
    """The mode context's weights are [N], its targets the labels (count metrics: the best
    response is the label), its decisions the mode; a subclass that reweights changes the loss
    to that weighted mean cross-entropy."""
    logits = tf.constant(rng.normal(size=(12, 1)).astype(np.float32))
    labels = tf.constant(rng.integers(0, 2, (12, 1)).astype(np.int32))
    policy, reward = policies.Bernoulli(), rewards.F1()
    weights, targets, actions = estimators.LocalBestResponse().weights_and_targets(
        logits, labels, policy=policy, reward=reward, num_samples=4
    )
    assert weights.shape == (12,) and bool(tf.reduce_all(weights >= 0.0))
    np.testing.assert_array_equal(targets.numpy(), labels.numpy())
    np.testing.assert_array_equal(actions.numpy(), policy.mode(logits)[None].numpy())

    class FirstOnly(estimators.LocalBestResponse):
        def weights_and_targets(self, logits, y_true, **kwargs):
            weights, targets, actions = super().weights_and_targets(logits, y_true, **kwargs)
            return tf.one_hot(0, tf.size(weights)), targets, actions

    out = FirstOnly()(
        logits,
        labels,
        policy=policy,
        reward=reward,
        baseline=baselines.NoBaseline(),
        baseline_state=tf.zeros([0]),
        num_samples=4,
    )
    first = policy.crossentropy(logits, labels).numpy().ravel()[0]
    np.testing.assert_allclose(out.loss.numpy(), first, rtol=1e-6)


@pytest.mark.parametrize("context", ["mode", "samples", "coupled"])
def test_best_response_is_reproducible_from_its_seed(context):
    """The seed reaches the draws (the samples context's and the reward's): the same seed gives
    the same loss and gradient, and another seed other draws."""
    logits = tf.constant(rng.normal(size=(10, 3)).astype(np.float32))
    labels = tf.constant(rng.integers(0, 3, 10).astype(np.int32))
    reward = rewards.IoU(average="macro", num_classes=3)
    first, gradient = best_response_output(logits, labels, reward, policies.Categorical(), context)
    again, gradient_again = best_response_output(
        logits, labels, reward, policies.Categorical(), context
    )
    np.testing.assert_array_equal(first.actions.numpy(), again.actions.numpy())
    np.testing.assert_array_equal(gradient, gradient_again)
    if context == "samples":
        other, _ = best_response_output(
            logits, labels, reward, policies.Categorical(), context, seed=(5, 6)
        )
        assert not np.array_equal(first.actions.numpy(), other.actions.numpy())


def test_best_response_output_centres_the_advantages_and_passes_the_baseline_state_through():
    logits = tf.constant(rng.normal(size=(8, 1)).astype(np.float32))
    labels = tf.constant(rng.integers(0, 2, (8, 1)).astype(np.int32))
    state = tf.constant([0.25, 3.0])
    out = estimators.LocalBestResponse("samples")(
        logits,
        labels,
        policy=policies.Bernoulli(),
        reward=rewards.F1(),
        baseline=baselines.NoBaseline(),
        baseline_state=state,
        num_samples=6,
        seed=[1, 2],
    )
    assert float(tf.reduce_mean(out.advantages)) == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_allclose(out.advantages, out.rewards - tf.reduce_mean(out.rewards))
    np.testing.assert_array_equal(out.baseline_state.numpy(), state.numpy())


def test_best_response_check_refuses_only_what_it_cannot_use():
    """A probed reward with a ranking policy is refused (it changes one decision at a time);
    a reward without coupled gains is refused by the coupled context only, with the whole
    message."""
    custom = rewards.CallableReward(lambda y, a: tf.reduce_mean(tf.cast(a, tf.float32), [1, 2]))
    with pytest.raises(ValueError, match="needs per-element decisions"):
        estimators.LocalBestResponse().check(
            policy=policies.get("plackett_luce"), reward=custom, baseline=None, num_samples=4
        )
    estimators.LocalBestResponse("mode").check(
        policy=policies.Categorical(), reward=rewards.Accuracy(), baseline=None, num_samples=4
    )
    with pytest.raises(ValueError) as refused:
        estimators.LocalBestResponse("coupled").check(
            policy=policies.Categorical(), reward=rewards.Accuracy(), baseline=None, num_samples=4
        )
    assert str(refused.value) == (
        "estimator LocalBestResponse(context='coupled') cannot use the reward 'accuracy' (its "
        "counts are not per class, label or Bernoulli row); use context='mode'."
    )


def test_the_old_alias_local_warns_and_gives_local_expectation():
    with pytest.warns(DeprecationWarning, match="use estimator='local_expectation'"):
        estimator = estimators.get("local")
    assert isinstance(estimator, estimators.LocalExpectation)
    assert estimator.name == "local_expectation"
