import numpy as np
import pytest
import tensorflow as tf

from rlmetric import diagnostics, policies, rewards


def test_all_actions_enumerates_every_configuration():
    actions = diagnostics.all_actions(policies.Categorical(), (2, 3)).numpy()
    assert actions.shape == (9, 2)
    assert len({tuple(a) for a in actions}) == 9
    assert diagnostics.all_actions(policies.Bernoulli(), (3, 1)).shape == (8, 3, 1)
    with pytest.raises(ValueError, match="too many to enumerate"):
        diagnostics.all_actions(policies.Bernoulli(), (40,))


def test_expected_reward_matches_monte_carlo():
    rng = np.random.default_rng(0)
    logits = tf.constant(rng.normal(size=6).astype(np.float32))
    y = tf.constant([1, 0, 1, 1, 0, 0])
    policy, reward = policies.Bernoulli(), rewards.F1()
    exact = diagnostics.expected_reward(policy, reward, logits, y).numpy()
    samples = reward(y, policy.sample(logits, 20000, seed=[0, 0])).numpy()
    # the Monte Carlo mean of 20000 rewards in [0, 1] has standard error < 0.004
    assert abs(samples.mean() - exact) < 0.015
