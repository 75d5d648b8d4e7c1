import numpy as np
import pytest
import tensorflow as tf

from rlmetric import baselines

REWARDS = tf.constant([0.2, 0.5, 0.9, 0.4])


def test_leave_one_out_subtracts_the_mean_of_the_others():
    advantages, _ = baselines.LeaveOneOut().advantages(REWARDS, tf.zeros([0]))
    r = REWARDS.numpy()
    expected = [r[i] - np.delete(r, i).mean() for i in range(4)]
    np.testing.assert_allclose(advantages.numpy(), expected, atol=1e-6)


def test_greedy_subtracts_the_mode_reward():
    advantages, _ = baselines.Greedy().advantages(REWARDS, tf.zeros([0]), tf.constant(0.5))
    np.testing.assert_allclose(advantages.numpy(), REWARDS.numpy() - 0.5, atol=1e-6)
    with pytest.raises(ValueError, match="greedy_reward"):
        baselines.Greedy().advantages(REWARDS, tf.zeros([0]))


def test_moving_average_uses_only_earlier_batches_bias_corrected():
    baseline = baselines.MovingAverage(decay=0.5)
    state = baseline.initial_state()
    first, state = baseline.advantages(REWARDS, state)
    np.testing.assert_allclose(first.numpy(), REWARDS.numpy(), atol=1e-6)  # no history: b = 0
    second, state = baseline.advantages(tf.constant([1.0, 1.0]), state)
    # after one update the bias-corrected average is exactly the first batch's mean
    np.testing.assert_allclose(second.numpy(), 1.0 - REWARDS.numpy().mean(), atol=1e-6)
    third, _ = baseline.advantages(tf.constant([0.0]), state)
    expected = (0.25 * REWARDS.numpy().mean() + 0.5 * 1.0) / (1 - 0.25)
    np.testing.assert_allclose(third.numpy(), [-expected], atol=1e-6)


def test_moving_average_weights_the_old_average_by_decay():
    # decay 0.5 weighs old and new alike, so it cannot tell decay from 1 - decay; 0.9 can
    baseline = baselines.MovingAverage(decay=0.9)
    state = baseline.initial_state()
    for batch in ([1.0, 1.0], [0.5, 0.5]):
        _, state = baseline.advantages(tf.constant(batch), state)
    advantages, _ = baseline.advantages(tf.constant([0.0]), state)
    # bias-corrected: (0.9 * 0.1 * 1 + 0.1 * 0.5) / (1 - 0.9^2); swapped weights give 0.54 / 0.19
    np.testing.assert_allclose(advantages.numpy(), [-0.14 / 0.19], atol=1e-6)


def test_group_norm_is_scale_free_and_floored():
    advantages, _ = baselines.GroupNorm().advantages(REWARDS * 100.0, tf.zeros([0]))
    np.testing.assert_allclose(np.std(advantages.numpy()), 1.0, atol=1e-5)
    equal, _ = baselines.GroupNorm(std_floor=0.01).advantages(tf.fill([4], 0.7), tf.zeros([0]))
    np.testing.assert_allclose(equal.numpy(), 0.0, atol=1e-6)
    nearly, _ = baselines.GroupNorm(std_floor=0.01).advantages(
        tf.constant([0.7, 0.7, 0.7, 0.7001]), tf.zeros([0])
    )
    assert np.max(np.abs(nearly.numpy())) < 0.01  # not blown up to +-1.7


def test_flags():
    assert all(
        baselines.get(n).unbiased for n in ["none", "moving_average", "leave_one_out", "greedy"]
    )
    assert not baselines.GroupNorm().unbiased
    assert baselines.LeaveOneOut().min_samples == 2 and baselines.Greedy().requires_greedy


def test_get_aliases_and_errors():
    assert isinstance(baselines.get(None), baselines.NoBaseline)
    assert isinstance(baselines.get("rloo"), baselines.LeaveOneOut)
    with pytest.raises(ValueError, match=r"Unknown baseline 'mean'.*'leave_one_out'"):
        baselines.get("mean")
    with pytest.raises(ValueError, match=r"decay must be in \[0, 1\).*1.5"):
        baselines.MovingAverage(decay=1.5)
