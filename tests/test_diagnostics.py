import keras
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


def _trainer(**kwargs):

    from rlmetric import PolicyGradientTrainer

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    return PolicyGradientTrainer(model, num_samples=4, seed=0, **kwargs)


def test_gradient_stats_orders_the_estimators():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] + 0.5 * rng.normal(size=64) > 0).astype("int32")
    stats = diagnostics.gradient_stats(_trainer(reward="f1"), x, y, draws=150)
    assert set(stats) == {
        "reinforce/none",
        "reinforce/leave_one_out",
        "reinforce/greedy",
        "reinforce/group_norm",
        "local_expectation/none",
        "disarm/none",
    }
    variance = {k: v["variance"] for k, v in stats.items()}
    assert variance["reinforce/leave_one_out"] < variance["reinforce/none"]
    assert variance["local_expectation/none"] < 0.1 * variance["reinforce/leave_one_out"], variance
    assert stats["local_expectation/none"]["snr"] > stats["reinforce/leave_one_out"]["snr"]
    assert [m.shape for m in stats["local_expectation/none"]["mean"]] == [(4, 1), (1,)]


def test_gradient_snr_callback_logs_each_epoch():

    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    trainer = _trainer(reward="f1", estimator="local_expectation")
    trainer.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = trainer.fit(
        x, y, epochs=2, verbose=0, callbacks=[diagnostics.GradientSNR(x, y, draws=5)]
    )
    assert len(history.history["gradient_snr"]) == 2
    assert all(np.isfinite(history.history["gradient_variance"]))
    # the logged values measure the estimator: local expectation's gradient is far less noisy
    # than plain REINFORCE's on the same model and batch
    snr = {}
    for estimator, baseline in (("local_expectation", "leave_one_out"), ("reinforce", "none")):
        trainer = _trainer(reward="f1", estimator=estimator, baseline=baseline)
        trainer.compile(optimizer=keras.optimizers.SGD(0.0))
        logs = trainer.fit(
            x, y, epochs=1, verbose=0, callbacks=[diagnostics.GradientSNR(x, y, draws=20)]
        ).history
        snr[estimator] = logs["gradient_snr"][0]
        assert logs["gradient_variance"][0] > 0
    assert snr["local_expectation"] > 3 * snr["reinforce"], snr
