"""The numeric core of rewards, policies and surrogate losses gives the same values eagerly, in a
``tf.function`` and compiled with XLA (the ``execution`` fixture of conftest.py)."""

import numpy as np
import pytest
import tensorflow as tf
from _surrogate_cases import ALL_LOSSES, segmentation_data  # noqa: E402

from rlmetric import policies, ranking, ranking_losses, rewards, surrogates
from rlmetric.plackett_luce import PlackettLuce

RNG = np.random.default_rng(0)
BINARY = RNG.integers(0, 2, (16, 3)).astype("int32")
BINARY_ACTIONS = RNG.integers(0, 2, (4, 16, 3)).astype("int32")
CLASSES = RNG.integers(0, 4, (2, 6, 6)).astype("int32")
CLASS_ACTIONS = RNG.integers(0, 4, (4, 2, 6, 6)).astype("int32")
RELEVANCE = np.where(RNG.random((3, 8)) < 0.2, -1.0, RNG.integers(0, 4, (3, 8))).astype("float32")
RANKINGS = np.stack([[RNG.permutation(8) for _ in range(3)] for _ in range(4)]).astype("int32")
LOGITS = RNG.normal(size=(16, 3)).astype("float32")
CLASS_LOGITS = RNG.normal(size=(2, 6, 6, 4)).astype("float32")

REWARDS = {
    "f1": (rewards.F1(), BINARY[:, :1], BINARY_ACTIONS[:, :, :1]),
    "macro_f1": (rewards.F1(average="macro"), BINARY, BINARY_ACTIONS),
    "samples_f1": (rewards.F1(average="samples"), BINARY, BINARY_ACTIONS),
    "mcc": (rewards.MatthewsCorrCoef(), BINARY[:, 0], BINARY_ACTIONS[:, :, 0]),
    "miou": (rewards.IoU(average="macro", num_classes=4), CLASSES, CLASS_ACTIONS),
    "accuracy": (rewards.Accuracy(num_classes=4), CLASSES, CLASS_ACTIONS),
    "ndcg@3": (ranking.NDCG(k=3), RELEVANCE, RANKINGS),
    "map": (ranking.AveragePrecision(), RELEVANCE, RANKINGS),
    "mrr@5": (ranking.MRR(k=5), RELEVANCE, RANKINGS),
}


@pytest.mark.parametrize("name", sorted(REWARDS))
def test_rewards(name, execution):
    reward, y_true, actions = REWARDS[name]
    eager = reward(tf.constant(y_true), tf.constant(actions)).numpy()
    got = execution(lambda y, a: reward(y, a))(tf.constant(y_true), tf.constant(actions))
    np.testing.assert_allclose(got.numpy(), eager, atol=1e-6)


def test_local_rewards_and_coupled_gains(execution):
    reward = rewards.IoU(average="macro", num_classes=4)
    y, actions = tf.constant(CLASSES), tf.constant(CLASS_ACTIONS)
    probs = tf.nn.softmax(tf.constant(CLASS_LOGITS))
    np.testing.assert_allclose(
        execution(reward.local_rewards)(y, actions).numpy(),
        reward.local_rewards(y, actions).numpy(),
        atol=1e-6,
    )
    np.testing.assert_allclose(
        execution(reward.coupled_gains)(y, probs).numpy(),
        reward.coupled_gains(y, probs).numpy(),
        atol=1e-5,
    )


POLICIES = {
    "bernoulli": (policies.Bernoulli(), LOGITS, BINARY_ACTIONS),
    "categorical": (policies.Categorical(), CLASS_LOGITS, CLASS_ACTIONS),
    "plackett_luce": (PlackettLuce(), RNG.normal(size=(3, 8)).astype("float32"), RANKINGS[:, :3]),
}


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_policy_log_prob_entropy_and_mode(name, execution):
    policy, logits, actions = POLICIES[name]
    logits, actions = tf.constant(logits), tf.constant(actions)
    for method, args in (
        (policy.log_prob, (logits, actions)),
        (policy.joint_log_prob, (logits, actions)),
        (policy.entropy, (logits,)),
        (policy.mode, (logits,)),
    ):
        np.testing.assert_allclose(
            execution(method)(*args).numpy(), method(*args).numpy(), atol=1e-5, err_msg=name
        )


LOSSES = {  # the segmentation losses: ALL_LOSSES, below
    "listnet": (surrogates.ListNet(), RELEVANCE, RNG.normal(size=(3, 8)).astype("float32")),
    "lambda_loss": (
        surrogates.LambdaLoss(k=3),
        RELEVANCE,
        RNG.normal(size=(3, 8)).astype("float32"),
    ),
}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_ranking_losses_and_their_gradients(name, execution):
    loss, y_true, y_pred = LOSSES[name]
    y_true, y_pred = tf.constant(y_true), tf.constant(y_pred)

    def value_and_gradient(t, p):
        with tf.GradientTape() as tape:
            tape.watch(p)
            value = loss(t, p)
        return value, tape.gradient(value, p)

    value, gradient = value_and_gradient(y_true, y_pred)
    got_value, got_gradient = execution(value_and_gradient)(y_true, y_pred)
    np.testing.assert_allclose(got_value.numpy(), value.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_gradient.numpy(), gradient.numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", sorted(ALL_LOSSES))
def test_segmentation_losses_and_their_gradients(name, execution):
    make, kind = ALL_LOSSES[name]
    loss = make()
    _, y, channels = segmentation_data(kind, np.random.default_rng(1))
    logits = tf.constant(RNG.normal(size=y.shape[:3] + (channels,)).astype("float32"))

    def value_and_gradient(t, p):
        with tf.GradientTape() as tape:
            tape.watch(p)
            value = loss(t, p)
        return value, tape.gradient(value, p)

    value, gradient = value_and_gradient(tf.constant(y), logits)
    got_value, got_gradient = execution(value_and_gradient)(tf.constant(y), logits)
    np.testing.assert_allclose(got_value.numpy(), value.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_gradient.numpy(), gradient.numpy(), rtol=1e-4, atol=1e-6)


def test_ranking_loss_functions(execution):
    scores = tf.constant(RNG.normal(size=(3, 8)).astype("float32"))
    for function in (ranking_losses.pairwise_logistic, ranking_losses.approx_ndcg):
        np.testing.assert_allclose(
            execution(function)(tf.constant(RELEVANCE), scores).numpy(),
            function(tf.constant(RELEVANCE), scores).numpy(),
            rtol=1e-5,
            atol=1e-6,
        )
