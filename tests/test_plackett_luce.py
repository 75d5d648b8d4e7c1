"""The Plackett-Luce policy and PL-Rank: probabilities and gradients against enumeration of every
ranking of small lists."""

import itertools
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from rlmetric import PolicyGradientTrainer, baselines, estimators, policies, ranking, rewards
from rlmetric.plackett_luce import PairwiseBestResponse, PlackettLuce, PLRank, reverse_logsumexp

LOGITS = np.array([[1.0, -0.5, 0.3, 0.0], [0.2, 1.5, -1.0, 0.4]], "float32")
LABELS = np.array([[2.0, 0.0, 1.0, -1.0], [0.0, 3.0, 1.0, 1.0]], "float32")  # list 0: 3 items


def _rankings(label_row):
    """Every ranking of a list with its padding last: [n!, L]."""
    real = np.flatnonzero(label_row >= 0)
    padding = np.flatnonzero(label_row < 0)
    return np.array([list(p) + list(padding) for p in itertools.permutations(real)], "int32")


def _exact(policy, reward, logits, labels):
    """E[R] (mean over lists) and its gradient with respect to the logits, by enumeration."""
    logits = tf.convert_to_tensor(logits)
    with tf.GradientTape() as tape:
        tape.watch(logits)
        masked = policy.mask_logits(logits, labels)
        total = 0.0
        for b in range(len(labels)):
            rankings = _rankings(labels[b])
            log_p = tf.reduce_sum(policy.log_prob(masked[b : b + 1], rankings[:, None]), [1, 2])
            scores = reward(labels[b : b + 1], rankings[:, None])
            total += tf.reduce_sum(tf.exp(log_p) * scores)
        value = total / len(labels)
    return float(value), tape.gradient(value, logits).numpy()


def _estimate(
    estimator, logits, labels, reward, num_samples=8, seed=0, baseline=None, policy=None, state=None
):
    """One estimator call: its output and the gradient of its loss with respect to logits, as
    tensors (so it also runs inside a ``tf.function``)."""
    logits = tf.convert_to_tensor(logits)
    with tf.GradientTape() as tape:
        tape.watch(logits)
        out = estimator(
            logits,
            labels,
            policy=policy or PlackettLuce(),
            reward=reward,
            baseline=baseline or baselines.NoBaseline(),
            baseline_state=tf.zeros([0]) if state is None else state,
            num_samples=num_samples,
            seed=seed,
        )
    return out, tape.gradient(out.loss, logits)


def _call(*args, **kwargs):
    """[`_estimate`] eagerly, the gradient as a NumPy array."""
    out, gradient = _estimate(*args, **kwargs)
    return out, gradient.numpy()


def test_probabilities_of_all_rankings_sum_to_one_and_match_the_formula():
    policy = PlackettLuce()
    for b in range(2):
        rankings = _rankings(LABELS[b])
        masked = policy.mask_logits(LOGITS[b : b + 1], LABELS[b : b + 1])
        log_p = tf.reduce_sum(policy.log_prob(masked, rankings[:, None]), [1, 2]).numpy()
        assert np.exp(log_p).sum() == pytest.approx(1.0, abs=1e-5)
    # by hand: p(0, 2, 1) for scores (2, 0, 1)
    by_hand = math.log(math.e**2 / (math.e**2 + 1 + math.e)) + math.log(math.e / (1 + math.e))
    logits = tf.constant([[2.0, 0.0, 1.0]])
    assert float(policy.joint_log_prob(logits, tf.constant([[[0, 2, 1]]]))[0]) == pytest.approx(
        by_hand, abs=1e-6
    )


def test_samples_are_permutations_drawn_with_the_plackett_luce_probabilities():
    policy = PlackettLuce()
    logits = tf.constant([[1.0, 0.0, -1.0]])
    samples = policy.sample(logits, 30_000, seed=3).numpy()[:, 0]
    assert (np.sort(samples, axis=1) == np.arange(3)).all()
    rankings = _rankings(np.zeros(3))
    expected = np.exp(tf.reduce_sum(policy.log_prob(logits, rankings[:, None]), [1, 2]).numpy())
    observed = np.array([(samples == r).all(1).mean() for r in rankings])
    # 30k draws: the standard error of each frequency is below 0.003
    np.testing.assert_allclose(observed, expected, atol=0.01)


def test_padding_always_ranks_last_in_samples_and_greedy():
    policy = PlackettLuce()
    masked = policy.mask_logits(tf.constant(LOGITS) * 50, LABELS)
    samples = policy.sample(masked, 200, seed=0).numpy()
    assert (samples[:, 0, 3] == 3).all()
    assert policy.mode(masked).numpy()[0, 3] == 3


def test_top_k_log_prob_is_the_log_probability_of_the_prefix():
    full, top2 = PlackettLuce(), PlackettLuce(top_k=2)
    logits = tf.constant(LOGITS[1:])
    rankings = _rankings(np.zeros(4))
    p_full = np.exp(tf.reduce_sum(full.log_prob(logits, rankings[:, None]), [1, 2]).numpy())
    p_top2 = np.exp(tf.reduce_sum(top2.log_prob(logits, rankings[:, None]), [1, 2]).numpy())
    for i, r in enumerate(rankings):
        same_prefix = (rankings[:, :2] == r[:2]).all(1)
        assert p_top2[i] == pytest.approx(p_full[same_prefix].sum(), abs=1e-6)


def test_entropy_is_exact_for_equal_scores_and_two_items():
    policy = PlackettLuce()
    assert float(tf.reduce_sum(policy.entropy(tf.zeros([1, 5])))) == pytest.approx(
        math.log(120), abs=1e-4
    )
    p = 1 / (1 + math.exp(-1.5))
    two = float(tf.reduce_sum(policy.entropy(tf.constant([[1.5, 0.0]]))))
    assert two == pytest.approx(-(p * math.log(p) + (1 - p) * math.log(1 - p)), abs=1e-5)
    # large scores and padding stay finite
    wide = policy.mask_logits(tf.constant([[80.0, -80.0, 0.0, 1.0]]), tf.constant([[1, 0, 0, -1]]))
    assert np.isfinite(policy.entropy(wide).numpy()).all()


@pytest.mark.parametrize(
    "reward", [ranking.NDCG(k=2), ranking.DCG(), ranking.PrecisionAtK(2), ranking.RecallAtK(1)]
)
def test_pl_rank_is_unbiased(reward):
    """The mean of 20k PL-Rank estimates equals the exact gradient by enumeration."""
    policy = PlackettLuce()
    _, exact = _exact(policy, reward, LOGITS, LABELS)
    _, gradient = _call(PLRank(), LOGITS, LABELS, reward, num_samples=20_000, seed=5)
    estimate = -gradient
    scale = np.abs(exact).max()
    # PL-Rank's per-sample spread is below the gradient's scale: 20k samples, 3% of it
    np.testing.assert_allclose(estimate, exact, atol=0.03 * scale)
    assert estimate[0, 3] == 0.0  # padding gets no gradient


def test_reinforce_with_plackett_luce_is_unbiased_for_any_ranking_reward():
    policy, reward = PlackettLuce(), ranking.MRR()
    _, exact = _exact(policy, reward, LOGITS, LABELS)
    _, gradient = _call(
        estimators.Reinforce(), LOGITS, LABELS, reward, 40_000, 2, baselines.LeaveOneOut()
    )
    estimate = -gradient
    np.testing.assert_allclose(estimate, exact, atol=0.05 * np.abs(exact).max())


def test_pl_rank_has_lower_variance_than_reinforce_with_leave_one_out():
    reward = ranking.NDCG(k=3)
    rng = np.random.default_rng(0)
    logits = tf.constant(rng.normal(size=(4, 10)).astype("float32"))
    labels = rng.integers(0, 4, size=(4, 10)).astype("float32")

    def draws(estimator, baseline):
        gradients = [
            _call(estimator, logits, labels, reward, 8, seed, baseline)[1].ravel()
            for seed in range(200)
        ]
        return np.var(np.array(gradients), axis=0).sum()

    pl_rank = draws(PLRank(), baselines.NoBaseline())
    reinforce = draws(estimators.Reinforce(), baselines.LeaveOneOut())
    assert pl_rank < 0.5 * reinforce, (pl_rank, reinforce)


@pytest.mark.parametrize(
    "reward",
    [ranking.NDCG(k=5), ranking.DCG(k=4, gain="linear"), ranking.PrecisionAtK(3)],
    ids=["ndcg@5", "dcg@4", "p@3"],
)
def test_pl_rank_from_the_top_ranks_equals_pl_rank_from_whole_rankings(reward):
    """With a cutoff below the list length PL-Rank reads only the first k ranks; its loss,
    gradient and rewards equal those of the whole rankings sorted from the same noise (lists
    with padding, one with fewer real items than k)."""
    rng = np.random.default_rng(1)
    logits = tf.constant(rng.normal(scale=2.0, size=(5, 12)).astype("float32"))
    labels = rng.integers(0, 5, size=(5, 12)).astype("float32")
    labels[0, 9:] = -1.0
    labels[1, 3:] = -1.0  # 3 real items, fewer than k
    labels[2] = 0.0  # no relevant item
    policy = PlackettLuce()
    out, gradient = _call(PLRank(), logits, labels, reward, num_samples=16, seed=7)
    assert out.actions.shape == (16, 5, reward.k)

    with tf.GradientTape() as tape:
        tape.watch(logits)
        masked = policy.mask_logits(logits, labels)
        perturbed = policy.perturbed_scores(tf.stop_gradient(masked), 16, 7)
        whole = tf.math.top_k(perturbed, k=12).indices  # [K, B, L]
        delta = tf.stop_gradient(PLRank().item_gradients(masked, labels, whole, reward))
        per_set = tf.reduce_sum(delta * ranking.by_rank(masked, whole), axis=[1, 2])
        loss = -tf.reduce_mean(per_set) / 5.0
    np.testing.assert_array_equal(out.actions.numpy(), whole.numpy()[..., : reward.k])
    np.testing.assert_allclose(float(out.loss), float(loss), rtol=1e-5)
    np.testing.assert_allclose(gradient, tape.gradient(loss, logits).numpy(), atol=1e-5)
    np.testing.assert_allclose(out.rewards.numpy(), reward(labels, whole).numpy(), atol=1e-6)
    assert np.abs(gradient).max() > 1e-2


def test_pl_rank_refuses_other_rewards_and_policies():
    with pytest.raises(ValueError, match="sum over ranks"):
        PLRank().check(policy=PlackettLuce(), reward=ranking.MRR(), baseline=None, num_samples=8)
    with pytest.raises(ValueError, match="plackett_luce"):
        PLRank().check(
            policy=policies.Bernoulli(), reward=ranking.NDCG(), baseline=None, num_samples=8
        )


def test_pl_rank_item_gradients_under_xla_equal_eager():
    policy, reward = PlackettLuce(), ranking.NDCG(k=3)
    masked = policy.mask_logits(tf.constant(LOGITS), LABELS)
    actions = policy.sample(masked, 16, seed=0)
    eager = PLRank().item_gradients(masked, LABELS, actions, reward)
    compiled = tf.function(
        lambda m, y, a: PLRank().item_gradients(m, y, a, reward), jit_compile=True
    )
    np.testing.assert_allclose(compiled(masked, LABELS, actions).numpy(), eager.numpy(), atol=1e-5)


def _ranking_data(seed=0, lists=96, items=12):
    """Lists of items whose relevance (0-3) is a noisy function of 4 features; lists of 8-12
    items padded to 12."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(lists, items, 4)).astype("float32")
    signal = x[..., 0] + 0.5 * x[..., 1] ** 2 + 0.3 * rng.normal(size=(lists, items))
    y = np.digitize(signal, [0.5, 1.2, 2.0]).astype("float32")
    lengths = rng.integers(8, items + 1, size=lists)
    y[np.arange(items)[None] >= lengths[:, None]] = -1.0
    return x, y


def _scorer(items=12):
    inputs = keras.Input((items, 4))
    hidden = keras.layers.Dense(16, activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Reshape((items,))(keras.layers.Dense(1)(hidden)))


def test_trainer_learns_ndcg_with_its_defaults_and_saves(tmp_path):
    x, y = _ranking_data()
    trainer = PolicyGradientTrainer(_scorer(), reward="ndcg@5", policy="plackett_luce", seed=0)
    assert isinstance(trainer.estimator, PairwiseBestResponse)
    trainer.compile(optimizer=keras.optimizers.Adam(0.03), metrics=["mrr"])
    before = trainer.evaluate(x, y, return_dict=True, verbose=0)
    trainer.fit(x, y, batch_size=32, epochs=15, verbose=0)
    after = trainer.evaluate(x, y, return_dict=True, verbose=0)
    assert after["ndcg@5"] > before["ndcg@5"] + 0.1, (before, after)
    # evaluate reports the mean over lists of the greedy rankings
    greedy = trainer.predict_actions(x)
    expected = float(ranking.NDCG(k=5)(y, greedy[None])[0])
    assert after["ndcg@5"] == pytest.approx(expected, abs=1e-5)
    path = tmp_path / "ranker.keras"
    trainer.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.policy, PlackettLuce)
    assert isinstance(loaded.estimator, PairwiseBestResponse)
    np.testing.assert_array_equal(loaded.predict_actions(x), greedy)


class _FixedRankings(PlackettLuce):
    """Plackett-Luce that 'samples' given rankings: XLA draws other noise than TensorFlow's
    kernels, so the estimators' arithmetic is compared on the same decisions."""

    def __init__(self, rankings):
        super().__init__()
        self.rankings = rankings

    def sample(self, logits, num_samples, seed=None):
        return tf.constant(self.rankings)

    def perturbed_scores(self, logits, num_samples, seed=None):
        # scores that sort into the given rankings: minus each item's rank
        return -tf.constant(np.argsort(self.rankings, axis=-1), tf.float32)


@pytest.mark.parametrize(
    "reward, estimator, baseline",
    [
        (ranking.MRR(), estimators.Reinforce(), baselines.LeaveOneOut()),
        (ranking.NDCG(k=2), PLRank(), baselines.NoBaseline()),
        (ranking.NDCG(k=2), PairwiseBestResponse(), baselines.NoBaseline()),
    ],
)
def test_estimators_under_xla_equal_eager(reward, estimator, baseline):
    rng = np.random.default_rng(0)
    rankings = np.stack(
        [[np.concatenate([rng.permutation(3), [3]]), rng.permutation(4)] for _ in range(6)]
    ).astype("int32")  # [6, 2, 4], list 0 padded last
    policy = _FixedRankings(rankings)

    def loss_and_gradient(logits):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            out = estimator(
                logits,
                LABELS,
                policy=policy,
                reward=reward,
                baseline=baseline,
                baseline_state=tf.zeros([0]),
                num_samples=6,
                seed=tf.constant([0, 0]),
            )
        return out.loss, tape.gradient(out.loss, logits)

    logits = tf.constant(LOGITS)
    loss, gradient = loss_and_gradient(logits)
    xla_loss, xla_gradient = tf.function(loss_and_gradient, jit_compile=True)(logits)
    assert np.abs(gradient.numpy()).max() > 1e-3  # the decisions differ: a real gradient
    np.testing.assert_allclose(float(xla_loss), float(loss), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(xla_gradient.numpy(), gradient.numpy(), rtol=1e-4, atol=1e-6)


def test_default_trainer_trains_under_xla():
    x, y = _ranking_data(1)
    trainer = PolicyGradientTrainer(_scorer(), reward="ndcg@5", policy="plackett_luce", seed=0)
    trainer.compile(optimizer=keras.optimizers.Adam(0.03), jit_compile=True)
    before = trainer.evaluate(x, y, return_dict=True, verbose=0)["ndcg@5"]
    history = trainer.fit(x, y, batch_size=32, epochs=10, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert trainer.evaluate(x, y, return_dict=True, verbose=0)["ndcg@5"] > before + 0.1


def test_trainer_refuses_bad_ranking_labels_before_training():
    x, y = _ranking_data()
    trainer = PolicyGradientTrainer(_scorer(), reward="ndcg", policy="plackett_luce")
    trainer.compile()
    bad = y.copy()
    bad[0, 0] = -2.0
    with pytest.raises(ValueError, match=r"graded relevance labels >= 0 .*-2\.0"):
        trainer.fit(x, bad, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"expects labels of shape \(32, 12\)"):
        trainer.fit(x, y[:, :5], epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"logits of shape \[B, L\]"):
        PolicyGradientTrainer(
            keras.Sequential([keras.Input((12, 4)), keras.layers.Dense(1)]),
            reward="ndcg",
            policy="plackett_luce",
        )


def test_pairwise_best_response_is_lambdarank_when_the_policy_is_deterministic():
    """Scores 50 apart: every sample is the greedy ranking, and the weights are LambdaRank's
    |Delta NDCG@k|, normalised by their sum."""
    from rlmetric.ranking_losses import lambda_loss

    labels = tf.constant([[2.0, 0.0, 1.0, 3.0, -1.0], [0.0, 1.0, 0.0, 2.0, 1.0]])
    logits = tf.constant([[50.0, 100.0, 0.0, 150.0, 0.0], [0.0, 50.0, 100.0, 150.0, 200.0]])
    reward = ranking.NDCG(k=3)
    out, _ = _call(PairwiseBestResponse(), logits, labels, reward)
    gains = reward.item_gains(labels).numpy()
    rank_weights = reward.rank_weights(labels).numpy()
    greedy = PlackettLuce().mode(PlackettLuce().mask_logits(logits, labels)).numpy()
    weight_sum = 0.0
    for b in range(2):
        theta = np.empty(5)
        theta[greedy[b]] = rank_weights[b]
        real = labels.numpy()[b] >= 0
        for i, j in itertools.permutations(np.flatnonzero(real), 2):
            weight_sum += max(gains[b, i] - gains[b, j], 0.0) * abs(theta[i] - theta[j])
    expected = float(tf.reduce_sum(lambda_loss(labels, logits, k=3))) / weight_sum
    assert float(out.loss) == pytest.approx(expected, rel=1e-5)


def _all_pairs_loss(logits, labels, reward, actions):
    """The pairwise best response's loss over all ``L^2`` pairs of each list (its first form):
    ``sum_{ij} relu(rho_i - rho_j) mean_k |theta^k_i - theta^k_j| softplus(-(s_i - s_j))`` over
    the sum of the weights, by NumPy loops."""
    policy = PlackettLuce()
    scores = policy.mask_logits(logits, labels).numpy()
    gains = reward.item_gains(labels).numpy()
    rank_weights = reward.rank_weights(labels).numpy()
    real = labels.numpy() >= 0
    total = weight_sum = 0.0
    for b in range(scores.shape[0]):
        theta = np.zeros((len(actions), scores.shape[1]))
        for k, order in enumerate(actions[:, b]):
            theta[k, order] = rank_weights[b]
        for i, j in itertools.permutations(np.flatnonzero(real[b]), 2):
            weight = max(gains[b, i] - gains[b, j], 0.0) * np.mean(abs(theta[:, i] - theta[:, j]))
            total += weight * np.logaddexp(0.0, -(scores[b, i] - scores[b, j]))
            weight_sum += weight
    return total / weight_sum


@pytest.mark.parametrize(
    "reward, policy",
    [
        (ranking.NDCG(k=3), PlackettLuce()),
        (ranking.NDCG(), PlackettLuce()),
        (ranking.PrecisionAtK(k=2), PlackettLuce()),
        (ranking.NDCG(k=3), PlackettLuce(top_k=4)),
        (ranking.RecallAtK(k=4), PlackettLuce()),
    ],
)
def test_pairwise_best_response_over_the_top_ranks_equals_its_all_pairs_form(reward, policy):
    """Only the top k ranks are drawn and only pairs with an item there are formed (O(K L k));
    the rewards are those of the whole rankings, the loss and its gradient those of the
    all-pairs form, padding and ties in the labels included."""
    rng = np.random.default_rng(11)
    labels = rng.integers(0, 3, size=(3, 7)).astype("float32")
    labels[0, 5:] = -1.0  # padding
    labels[2, 0] = labels[2, 1] = 2.0  # a tie
    labels = tf.constant(labels)
    logits = tf.constant(rng.normal(size=(3, 7)).astype("float32"))
    out, gradient = _call(PairwiseBestResponse(), logits, labels, reward, policy=policy)
    # the same draws, whole: the estimator sorts only the first k ranks of the same noise
    rankings = policy.sample(policy.mask_logits(logits, labels), 8, seed=0).numpy()
    np.testing.assert_array_equal(out.actions.numpy(), rankings[..., : out.actions.shape[-1]])
    np.testing.assert_allclose(out.rewards.numpy(), reward(labels, rankings).numpy(), rtol=1e-5)
    expected = _all_pairs_loss(logits, labels, reward, rankings)
    assert float(out.loss) == pytest.approx(expected, rel=1e-5)
    # the gradient of the all-pairs form by central differences of the NumPy loss
    step, numeric = 1e-2, np.zeros_like(gradient)
    for b, i in itertools.product(range(3), range(7)):
        shift = np.zeros((3, 7), "float32")
        shift[b, i] = step
        up = _all_pairs_loss(logits + shift, labels, reward, rankings)
        down = _all_pairs_loss(logits - shift, labels, reward, rankings)
        numeric[b, i] = (up - down) / (2 * step)
    np.testing.assert_allclose(gradient, numeric, atol=2e-4)


def test_pairwise_best_response_does_not_vanish_on_a_confident_mistake():
    """The relevant item scored 20 below the others: PL-Rank's gradient carries its
    probability (e^-20), the pairwise best response the logistic loss's slope (about 1)."""

    labels = tf.constant([[3.0, 0.0, 0.0, 0.0]])
    logits = tf.constant([[-20.0, 0.0, 0.0, 0.0]])
    reward = ranking.NDCG(k=2)
    _, pl_rank = _call(PLRank(), logits, labels, reward, num_samples=64)
    _, pairwise = _call(PairwiseBestResponse(), logits, labels, reward, num_samples=64)
    assert abs(pl_rank[0, 0]) < 1e-6
    assert -pairwise[0, 0] > 0.9  # descent raises the relevant item's score


def test_top_k_sampling_draws_the_same_prefix_and_the_rest_in_index_order():
    logits = tf.constant(np.random.default_rng(3).normal(size=(5, 9)).astype("float32"))
    full = PlackettLuce().sample(logits, 16, seed=4).numpy()
    prefix = PlackettLuce(top_k=3).sample(logits, 16, seed=4).numpy()
    np.testing.assert_array_equal(prefix[..., :3], full[..., :3])
    assert (np.sort(prefix, axis=-1) == np.arange(9)).all()  # still permutations
    rest = prefix[..., 3:]
    assert (np.diff(rest, axis=-1) > 0).all()  # the tail in index order


def test_pl_rank_with_top_k_sampling_is_unbiased():
    reward = ranking.NDCG(k=2)
    _, exact = _exact(PlackettLuce(), reward, LOGITS, LABELS)
    _, gradient = _call(PLRank(), LOGITS, LABELS, reward, 20_000, 5, policy=PlackettLuce(top_k=2))
    np.testing.assert_allclose(-gradient, exact, atol=0.03 * np.abs(exact).max())


def test_top_k_refuses_a_reward_that_reads_deeper():
    x, y = _ranking_data()
    with pytest.raises(ValueError, match=r"top_k=5\) draws and scores only the top 5"):
        PolicyGradientTrainer(_scorer(), reward="ndcg@10", policy=PlackettLuce(top_k=5))
    with pytest.raises(ValueError, match="reads rank all ranks"):
        PolicyGradientTrainer(_scorer(), reward="ndcg", policy=PlackettLuce(top_k=5))
    PolicyGradientTrainer(_scorer(), reward="ndcg@5", policy=PlackettLuce(top_k=5))


def test_entropy_and_log_prob_hold_when_scores_span_more_than_float64_exponents():
    """Issue 27, case 5: scores spanning ~1600 gave entropy -1381 and a log-probability of
    -909 for the most likely ranking."""
    from rlmetric.plackett_luce import PlackettLuce

    policy = PlackettLuce()
    logits = tf.constant([[800.0, 0.0, -800.0]])
    ranking = tf.constant([[[0, 1, 2]]])  # the most likely ranking, [K=1, B=1, L]
    log_prob = float(tf.reduce_sum(policy.log_prob(logits, ranking)))
    assert -1e-6 < log_prob <= 0.0
    entropy = float(tf.reduce_sum(policy.entropy(logits)))
    # (float32 scores near 800 carry ~1e-4 of rounding, amplified by the spread: ~0.02)
    assert -1e-6 <= entropy < 0.05


def test_ranking_estimators_refuse_with_whole_messages_that_name_what_was_received():
    ndcg = ranking.NDCG(k=5)
    for estimator in (PLRank(), PairwiseBestResponse()):
        estimator.check(policy=PlackettLuce(), reward=ndcg, baseline=None, num_samples=4)
        with pytest.raises(ValueError) as refused:
            estimator.check(policy=policies.Bernoulli(), reward=ndcg, baseline=None, num_samples=4)
        assert str(refused.value) == (
            f"estimator={estimator.name!r} needs policy='plackett_luce' (rankings); received "
            "policy='bernoulli'."
        )
        with pytest.raises(ValueError) as refused:
            estimator.check(
                policy=PlackettLuce(), reward=ranking.MRR(), baseline=None, num_samples=4
            )
        assert str(refused.value) == (
            f"estimator={estimator.name!r} needs a ranking reward that is a sum over ranks "
            "(NDCG, DCG, PrecisionAtK, RecallAtK from rlmetric.ranking); reward 'mrr' is MRR. "
            "Use estimator='reinforce' for MRR, MAP, hit rate or any other reward."
        )


def test_plackett_luce_labels_must_be_finite_relevance_or_padding():
    policy = PlackettLuce()
    for bad in ([[1.0, np.inf, 0.0]], [[1.0, np.nan, 0.0]], [[1.0, -2.0, 0.0]]):
        assert not bool(policy.labels_valid(tf.constant(bad), (1, 3)))
        with pytest.raises(ValueError, match="y"):
            policy.check_label_values(np.array(bad), (1, 3), "y")
    assert bool(policy.labels_valid(tf.constant([[2.0, 0.0, -1.0]]), (1, 3)))
    policy.check_label_values(np.array([[2.0, 0.0, -1.0]]), (1, 3), "y")


def test_plackett_luce_crossentropy_is_listnet_and_its_distribution_scores_rankings_alike():
    from rlmetric.ranking_losses import listnet

    logits = tf.constant(np.random.default_rng(5).normal(size=(3, 4)).astype("float32"))
    labels = tf.constant([[2.0, 0.0, 1.0, 0.0], [0.0, 0.0, 3.0, 1.0], [1.0, 1.0, 0.0, 2.0]])
    policy = PlackettLuce()
    np.testing.assert_allclose(policy.crossentropy(logits, labels), listnet(labels, logits))
    rankings = policy.sample(logits, 5, seed=2)  # [K, B, L]
    summed = tf.reduce_sum(policy.log_prob(logits, rankings), axis=-1)
    np.testing.assert_allclose(
        policy.distribution(logits).log_prob(rankings), summed, rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("reward", [ranking.NDCG(k=3), ranking.NDCG()])
def test_pl_rank_is_the_same_for_a_list_far_above_or_below_the_others(reward):
    """Each list's scores are shifted by its own maximum before exponentiating: a list 800 below
    another in the same batch keeps its gradient (a batch-wide shift underflows it); with a
    cutoff (the top ranks' path) and without (every rank's)."""
    rng = np.random.default_rng(8)
    scores = rng.normal(size=(1, 6)).astype("float32")
    labels = tf.constant(np.repeat([[2.0, 0.0, 1.0, 0.0, 3.0, 0.0]], 2, axis=0))
    _, alone = _call(PLRank(), np.repeat(scores, 2, axis=0), labels, reward, num_samples=16)
    apart = np.concatenate([scores + 400.0, scores - 400.0])
    _, shifted = _call(PLRank(), apart, labels, reward, num_samples=16)
    np.testing.assert_allclose(shifted, alone, atol=1e-4)


def test_plackett_luce_check_logits_names_the_shape_and_the_fix():
    policy = PlackettLuce()
    policy.check_logits((None, 2))  # lists of 2 items: the fewest that rank
    with pytest.raises(ValueError) as refused:
        policy.check_logits((4, 10, 1))
    assert str(refused.value) == (
        "policy='plackett_luce' expects logits of shape [B, L]: one score per item of B lists "
        "of L items; the model returned logits of shape (4, 10, 1). A model that scores items "
        "as [B, L, 1] needs a final keras.layers.Reshape((L,))."
    )
    for one_item in ((None, 1), (4, 1)):
        with pytest.raises(ValueError) as refused:
            policy.check_logits(one_item)
        assert str(refused.value) == (
            "policy='plackett_luce' needs lists of at least 2 items; the model returned logits "
            f"of shape {tf.TensorShape(one_item)}."
        )


def test_plackett_luce_check_reward_refuses_other_actions_and_ranks_beyond_top_k():
    with pytest.raises(ValueError, match="reward='f1' scores decisions"):
        PlackettLuce().check_reward(rewards.F1())
    PlackettLuce(top_k=10).check_reward(ranking.NDCG(k=10))
    for reward, reads in ((ranking.NDCG(k=12), "12"), (ranking.NDCG(), "all ranks")):
        with pytest.raises(ValueError) as refused:
            PlackettLuce(top_k=10).check_reward(reward)
        assert str(refused.value) == (
            "PlackettLuce(top_k=10) draws and scores only the top 10 ranks, but reward "
            f"{reward.name!r} reads rank {reads}; use top_k >= the reward's k (or top_k=None)."
        )


def test_plackett_luce_distribution_holds_for_lists_far_from_zero():
    """TFP's weights are e^s shifted by each list's own maximum: scores near +-60 (e^120
    overflows float32) give the same log-probabilities as the same list near 0."""
    logits = tf.constant([[0.3, -0.2, 0.9, 0.0]])
    ranking_ = tf.constant([[2, 0, 3, 1]])
    near_zero = PlackettLuce().distribution(logits).log_prob(ranking_)
    far = tf.concat([logits + 60.0, logits - 60.0], axis=0)
    np.testing.assert_allclose(
        PlackettLuce().distribution(far).log_prob(tf.concat([ranking_] * 2, 0)),
        tf.concat([near_zero] * 2, 0),
        rtol=1e-4,
    )


def test_plackett_luce_log_prob_of_one_ranking_per_list_and_of_padding_within_top_k():
    logits = tf.constant([[0.5, -1.0, 2.0, 0.1], [1.0, 0.0, -0.5, 0.3]])
    rankings = PlackettLuce().sample(logits, 3, seed=1)  # [K, B, L]
    one = PlackettLuce().log_prob(logits, rankings[0])  # [B, L]: no sample axis
    assert one.shape == (2, 4)
    np.testing.assert_allclose(one, PlackettLuce().log_prob(logits, rankings)[0])
    # two padded items ranked 3rd and 4th: with top_k=3 the 3rd rank is padding, so 0
    labels = tf.constant([[1.0, 0.0, -1.0, -1.0]])
    masked = PlackettLuce().mask_logits(tf.constant([[0.2, 0.1, 0.0, 0.0]]), labels)
    terms = PlackettLuce(top_k=3).log_prob(masked, tf.constant([[0, 1, 2, 3]])).numpy()
    assert terms[0, 2] == 0.0 and terms[0, 3] == 0.0 and terms[0, 0] < 0.0


def _reverse_logsumexp_reference(values):
    """``log sum_{j >= r} exp(values[j])`` over the real (non-padding) entries, by NumPy;
    ``-inf`` where only padding follows."""
    out = np.empty(values.shape)
    for index in np.ndindex(values.shape[:-1]):
        row = values[index]
        for r in range(row.size):
            rest = row[r:][row[r:] > -1e8]
            out[index + (r,)] = np.logaddexp.reduce(rest) if rest.size else -np.inf
    return out


@pytest.mark.parametrize(
    "values",
    [
        # spans over 600 (the exact path), [K=1, B=3, L]: lists far from each other, padding
        # first in the last list and a suffix of padding only in the others
        [[[0.0, -1.0, -1e9, -1e9], [-800.0, -1600.0, -1e9, -1e9], [-1e9, 800.0, 0.0, -800.0]]],
        # narrow lists (the shifted sum), [B=3, L], 300 apart
        [[0.0, -1.0, -1e9], [300.0, 299.0, -1e9], [-800.0, -801.0, -1e9]],
    ],
    ids=["wide", "narrow"],
)
def test_reverse_logsumexp_is_exact_per_row_of_any_rank_and_padding_counts_for_nothing(values):
    """Each row is shifted by its own maximum; padding anywhere in a row adds nothing; a suffix
    of padding only is finite and at least 690 below its row's top value (weight <= 1e-300)."""
    values = np.array(values)
    got = reverse_logsumexp(tf.constant(values)).numpy()
    expected = _reverse_logsumexp_reference(values)
    has_real = np.isfinite(expected)
    np.testing.assert_allclose(got[has_real], expected[has_real], rtol=1e-12)
    assert np.isfinite(got).all()
    row_top = np.broadcast_to(values.max(axis=-1, keepdims=True), values.shape)
    assert (got[~has_real] <= row_top[~has_real] - 690.0).all()


@pytest.mark.parametrize("estimator", [PLRank(), PairwiseBestResponse()], ids=lambda e: e.name)
@pytest.mark.parametrize(
    "reward", [ranking.NDCG(k=3), ranking.NDCG(), ranking.NDCG(k=9)], ids=["k<L", "no k", "k>L"]
)
def test_ranking_estimators_with_a_list_length_known_only_at_run_time_equal_eager(
    estimator, reward
):
    """A graph traced for lists of any length (as for a dataset of varying lists) gives the
    loss, rewards and gradient of eager calls; 3 lists of 7 items, a cutoff below, at none and
    above the length."""
    rng = np.random.default_rng(4)
    logits = tf.constant(rng.normal(size=(3, 7)).astype("float32"))
    labels = tf.constant(rng.integers(0, 3, size=(3, 7)).astype("float32"))
    spec = tf.TensorSpec([None, None], tf.float32)

    @tf.function(input_signature=[spec, spec])
    def traced(logits, labels):
        out, gradient = _estimate(estimator, logits, labels, reward)
        return out.loss, out.rewards, gradient

    loss, rewards_, gradient = traced(logits, labels)
    eager, eager_gradient = _call(estimator, logits, labels, reward)
    np.testing.assert_allclose(float(loss), float(eager.loss), rtol=1e-5)
    np.testing.assert_allclose(rewards_.numpy(), eager.rewards.numpy(), rtol=1e-5)
    np.testing.assert_allclose(gradient.numpy(), eager_gradient, atol=1e-6)


def test_pairwise_best_response_on_a_single_list_with_weights_summing_below_one():
    """One list (the mean over lists divides by 1) of one relevant and one other item: the
    pairs' weights sum to |theta_1 - theta_2| < 1, and the loss is still normalised by it."""
    labels = tf.constant([[1.0, 0.0, -1.0]])
    logits = tf.constant([[0.3, -0.2, 0.0]])
    reward, policy = ranking.NDCG(), PlackettLuce()
    out, _ = _call(PairwiseBestResponse(), logits, labels, reward)
    rankings = policy.sample(policy.mask_logits(logits, labels), 8, seed=0).numpy()
    np.testing.assert_allclose(out.rewards.numpy(), reward(labels, rankings).numpy(), rtol=1e-6)
    expected = _all_pairs_loss(logits, labels, reward, rankings)
    assert float(out.loss) == pytest.approx(expected, rel=1e-5)


def test_pl_rank_is_unbiased_on_a_single_list():
    policy, reward = PlackettLuce(), ranking.NDCG(k=2)
    _, exact = _exact(policy, reward, LOGITS[1:], LABELS[1:])
    out, gradient = _call(PLRank(), LOGITS[1:], LABELS[1:], reward, num_samples=20_000, seed=5)
    np.testing.assert_allclose(-gradient, exact, atol=0.03 * np.abs(exact).max())
    rankings = policy.sample(policy.mask_logits(LOGITS[1:], LABELS[1:]), 20_000, seed=5)
    np.testing.assert_allclose(out.rewards.numpy(), reward(LABELS[1:], rankings).numpy())


@pytest.mark.parametrize("estimator", [PLRank(), PairwiseBestResponse()], ids=lambda e: e.name)
def test_ranking_estimators_centre_advantages_and_pass_the_baseline_state_through(estimator):
    state = tf.constant([0.25, -1.0])
    out, _ = _call(estimator, LOGITS, LABELS, ranking.NDCG(k=3), 6, 1, state=state)
    rewards_ = out.rewards.numpy()
    assert rewards_.std() > 0.0
    np.testing.assert_allclose(out.advantages.numpy(), rewards_ - rewards_.mean(), atol=1e-6)
    np.testing.assert_array_equal(out.baseline_state.numpy(), state.numpy())


def test_top_k_at_or_beyond_the_list_length_samples_whole_rankings():
    logits = tf.constant(LOGITS)
    whole = PlackettLuce().sample(logits, 5, seed=2).numpy()
    for top_k in (4, 9):
        np.testing.assert_array_equal(PlackettLuce(top_k=top_k).sample(logits, 5, seed=2), whole)


def test_plackett_luce_samples_float64_scores_in_float64():
    logits = tf.constant(LOGITS, tf.float64)
    perturbed = PlackettLuce().perturbed_scores(logits, 3, seed=1)
    assert perturbed.dtype == tf.float64
    rankings = PlackettLuce().sample(logits, 3, seed=1).numpy()
    np.testing.assert_array_equal(
        np.sort(rankings, axis=-1), np.broadcast_to(np.arange(4), (3, 2, 4))
    )


def test_plackett_luce_top_k_must_be_a_positive_int_or_none():
    assert PlackettLuce().top_k is None
    assert PlackettLuce(top_k=1).top_k == 1
    from_numpy = PlackettLuce(top_k=np.int64(3)).top_k
    assert from_numpy == 3 and type(from_numpy) is int
    for bad in (0, -2, True, 2.5, "3"):
        with pytest.raises(ValueError) as refused:
            PlackettLuce(top_k=bad)
        assert str(refused.value) == (
            f"top_k must be a positive int or None; received top_k={bad!r}."
        )


def test_ranking_estimators_name_a_policy_or_reward_given_without_a_name():
    for estimator in (PLRank(), PairwiseBestResponse()):
        with pytest.raises(ValueError, match=r"received policy='categorical'\.$"):
            estimator.check(
                policy="categorical", reward=ranking.NDCG(), baseline=None, num_samples=4
            )
        with pytest.raises(ValueError, match=r"reward 'mrr' is str\."):
            estimator.check(policy=PlackettLuce(), reward="mrr", baseline=None, num_samples=4)
