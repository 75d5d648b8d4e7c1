import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from rlmetric import policies

tfd = tfp.distributions


@pytest.mark.parametrize("shape", [(6,), (6, 1), (6, 3), (2, 4, 4, 1)])
def test_bernoulli_sample_shapes_and_frequencies(shape):
    rng = np.random.default_rng(0)
    logits = tf.constant(rng.normal(size=shape).astype(np.float32))
    policy = policies.Bernoulli()
    actions = policy.sample(logits, 4000, seed=[1, 2])
    assert actions.shape == (4000, *shape) and actions.dtype == tf.int32
    frequency = tf.reduce_mean(tf.cast(actions, tf.float32), 0).numpy()
    # each frequency is a mean of 4000 Bernoulli draws: standard error <= 0.008
    np.testing.assert_allclose(frequency, tf.sigmoid(logits).numpy(), atol=0.04)


@pytest.mark.parametrize("shape", [(5, 3), (2, 3, 3, 4)])
def test_categorical_sample_shapes_and_frequencies(shape):
    rng = np.random.default_rng(1)
    logits = tf.constant(rng.normal(size=shape).astype(np.float32))
    policy = policies.Categorical()
    actions = policy.sample(logits, 4000, seed=[3, 4])
    assert actions.shape == (4000, *shape[:-1])
    frequency = tf.reduce_mean(tf.one_hot(actions, shape[-1]), 0).numpy()
    np.testing.assert_allclose(frequency, tf.nn.softmax(logits).numpy(), atol=0.04)


def test_sampling_is_reproducible_from_the_seed():
    logits = tf.zeros([50])
    policy = policies.Bernoulli()
    a = policy.sample(logits, 3, seed=[5, 6]).numpy()
    b = policy.sample(logits, 3, seed=[5, 6]).numpy()
    c = policy.sample(logits, 3, seed=[5, 7]).numpy()
    assert np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.parametrize(
    "policy, logits_shape, reference",
    [
        (policies.Bernoulli(), (7, 3), lambda z: tfd.Bernoulli(logits=z)),
        (policies.Categorical(), (7, 4), lambda z: tfd.Categorical(logits=z)),
        (policies.Categorical(), (2, 3, 3, 5), lambda z: tfd.Categorical(logits=z)),
    ],
)
def test_log_prob_entropy_mode_match_tfp(policy, logits_shape, reference):
    rng = np.random.default_rng(2)
    logits = tf.constant(rng.normal(size=logits_shape).astype(np.float32) * 2)
    actions = policy.sample(logits, 6, seed=[0, 1])
    dist = reference(logits)
    np.testing.assert_allclose(
        policy.log_prob(logits, actions).numpy(), dist.log_prob(actions).numpy(), atol=1e-5
    )
    np.testing.assert_allclose(
        policy.log_prob(logits, actions[0]).numpy(), dist.log_prob(actions[0]).numpy(), atol=1e-5
    )
    np.testing.assert_allclose(policy.entropy(logits).numpy(), dist.entropy().numpy(), atol=1e-5)
    np.testing.assert_array_equal(policy.mode(logits).numpy(), dist.mode().numpy())
    joint = dist.log_prob(actions).numpy().reshape(6, -1).sum(axis=1)
    np.testing.assert_allclose(policy.joint_log_prob(logits, actions).numpy(), joint, atol=1e-4)


def test_bernoulli_joint_log_prob_gradient_matches_tfp():
    rng = np.random.default_rng(5)
    logits = tf.constant(rng.normal(size=(9, 2)).astype(np.float32) * 3)
    actions = policies.Bernoulli().sample(logits, 4, seed=[2, 3])
    weights = tf.constant([0.5, -1.0, 2.0, 0.25])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(logits)
        ours = tf.reduce_sum(weights * policies.Bernoulli().joint_log_prob(logits, actions))
        reference = tfd.Bernoulli(logits=logits).log_prob(actions)
        reference = tf.reduce_sum(weights * tf.reduce_sum(reference, axis=[1, 2]))
    np.testing.assert_allclose(
        tape.gradient(ours, logits).numpy(), tape.gradient(reference, logits).numpy(), atol=1e-5
    )


def test_sampling_uses_threefry_only_inside_xla():
    @tf.function(jit_compile=True)
    def compiled():
        return tf.constant(policies._random_algorithm() == "threefry")

    @tf.function
    def traced():
        return tf.constant(policies._random_algorithm() == "philox")

    assert bool(compiled()) and bool(traced())
    assert policies._random_algorithm() == "philox"  # eager


@pytest.mark.parametrize("policy", [policies.Bernoulli(), policies.Categorical()])
def test_compiled_sampling_has_the_policy_frequencies(policy):
    logits = tf.constant([[-1.5, 0.3, 2.0], [0.0, 1.0, -0.5]])
    sample = tf.function(lambda seed: policy.sample(logits, 20000, seed=seed), jit_compile=True)
    actions = sample(tf.constant([4, 9])).numpy()
    if isinstance(policy, policies.Bernoulli):
        expected = tf.sigmoid(logits).numpy()
        observed = actions.mean(axis=0)
    else:
        expected = tf.nn.softmax(logits).numpy()
        observed = np.stack([(actions == c).mean(axis=0) for c in range(3)], axis=-1)
    # 20000 draws: the standard error of a frequency is at most 0.0036; 5 of them
    np.testing.assert_allclose(observed, expected, atol=0.018)
    assert not np.array_equal(actions, sample(tf.constant([4, 10])).numpy())


def test_categorical_crossentropy_is_minus_log_prob_of_labels():
    logits = tf.constant([[1.0, 2.0, 0.5], [0.0, 0.0, 3.0]])
    labels = tf.constant([1, 0])
    policy = policies.Categorical()
    np.testing.assert_allclose(
        policy.crossentropy(logits, labels).numpy(),
        -policy.log_prob(logits, labels).numpy(),
        atol=1e-6,
    )


def test_sampling_runs_under_xla():
    fn = tf.function(lambda z, s: policies.Categorical().sample(z, 8, seed=s), jit_compile=True)
    actions = fn(tf.zeros([4, 8, 8, 3]), tf.constant([1, 2]))
    assert actions.shape == (8, 4, 8, 8)


@pytest.mark.parametrize(
    "policy, y_shape, logits_shape, expected",
    [
        (policies.Bernoulli(), (8,), (8, 1), (8, 1)),
        (policies.Bernoulli(), (8, 1), (8,), (8,)),
        (policies.Bernoulli(), (2, 4, 4), (2, 4, 4, 1), (2, 4, 4, 1)),
        (policies.Categorical(), (8, 1), (8, 3), (8,)),
        (policies.Categorical(), (8, 3), (8, 3), (8,)),  # one-hot
        (policies.Categorical(), (2, 4, 4), (2, 4, 4, 3), (2, 4, 4)),
    ],
)
def test_format_labels_accepts_the_usual_shapes(policy, y_shape, logits_shape, expected):
    labels = policy.format_labels(np.zeros(y_shape, np.int32), tf.TensorShape(logits_shape))
    assert tuple(labels.shape) == expected and labels.dtype == tf.int32


def test_format_labels_rejects_mismatch_with_shapes_in_message():
    with pytest.raises(
        ValueError, match=r"Labels of shape \(8, 2\).*logits of shape \(8, 3\).*\(8,\)"
    ):
        policies.Categorical().format_labels(np.zeros((8, 2)), tf.TensorShape((8, 3)))
    with pytest.raises(ValueError, match=r"Labels of shape \(8, 4\).*logits of shape \(8, 1\)"):
        policies.Bernoulli().format_labels(np.zeros((8, 4)), tf.TensorShape((8, 1)))


def test_label_values_are_checked():
    with pytest.raises(ValueError, match=r"y must hold binary labels.*\[0, 1, 2\]"):
        policies.Bernoulli().check_label_values(np.array([0, 1, 2]), (3, 1), "y")
    with pytest.raises(ValueError, match=r"class ids in \[0, 3\).*\[0, 3\]"):
        policies.Categorical().check_label_values(np.array([0, 3]), (2, 3), "y")
    with pytest.raises(ValueError, match=r"not one-hot"):
        policies.Categorical().check_label_values(np.array([[1, 1, 0]]), (1, 3), "y")
    policies.Bernoulli().check_label_values(np.array([True, False]), (2,), "y")


def test_check_logits():
    with pytest.raises(ValueError, match=r"at least 2 classes.*\(None, 1\).*bernoulli"):
        policies.Categorical().check_logits(tf.TensorShape((None, 1)))
    with pytest.raises(ValueError, match=r"\[B, C\] or \[B, H, W, C\].*\(None,\)"):
        policies.Categorical().check_logits(tf.TensorShape((None,)))


def test_get_aliases_and_errors():
    assert isinstance(policies.get("bernoulli"), policies.Bernoulli)
    assert isinstance(policies.get("Categorical"), policies.Categorical)
    assert isinstance(policies.get("gaussian"), policies.Gaussian)
    with pytest.raises(
        ValueError,
        match=r"Unknown policy 'poisson'.*"
        r"\['bernoulli', 'categorical', 'gaussian', 'plackett_luce'\]",
    ):
        policies.get("poisson")


def test_gaussian_policy_matches_tfp_and_samples_its_mean_and_scale():
    logits = tf.constant([[0.5, -1.0, np.log(2.0), np.log(0.5)]])  # means, then log stds
    policy = policies.Gaussian()
    assert tuple(policy.action_shape(logits.shape)) == (1, 2)
    actions = policy.sample(logits, 20000, seed=[0, 1])
    np.testing.assert_allclose(actions.numpy().mean(0), [[0.5, -1.0]], atol=0.05)
    np.testing.assert_allclose(actions.numpy().std(0), [[2.0, 0.5]], atol=0.05)
    reference = tfd.Normal([[0.5, -1.0]], [[2.0, 0.5]])
    np.testing.assert_allclose(
        policy.log_prob(logits, actions[:5]).numpy(),
        reference.log_prob(actions[:5]).numpy(),
        atol=1e-5,
    )
    np.testing.assert_allclose(policy.mode(logits).numpy(), [[0.5, -1.0]])
    with pytest.raises(ValueError, match=r"logits \[B, 2 d\].*\(None, 3\)"):
        policy.check_logits(tf.TensorShape((None, 3)))


@pytest.mark.parametrize("seed", range(6))
def test_in_graph_label_check_agrees_with_the_eager_one(seed):
    """``labels_valid`` (run inside the steps) accepts exactly what ``check_label_values``
    (run before training) accepts, on random valid and corrupted labels of both policies."""
    rng = np.random.default_rng(seed)
    cases = [
        (policies.Bernoulli(), tf.TensorShape([None, 4]), rng.integers(0, 2, (16, 4))),
        (policies.Categorical(), tf.TensorShape([None, 3]), rng.integers(0, 3, 16)),
        (policies.Categorical(), tf.TensorShape([None, 3]), np.eye(3)[rng.integers(0, 3, 16)]),
    ]
    for policy, logits_shape, labels in cases:
        labels = labels.astype("float32")
        if seed % 2:  # corrupt one entry: a half, a negative value or an out-of-range id
            labels.flat[rng.integers(labels.size)] = rng.choice([0.5, -1.0, 3.0])
        try:
            policy.check_label_values(labels, logits_shape, "y")
            eager_ok = True
        except ValueError:
            eager_ok = False
        in_graph = tf.function(policy.labels_valid)(tf.constant(labels), logits_shape)
        assert bool(in_graph) == eager_ok == (seed % 2 == 0), (policy.name, labels)


def test_greedy_is_a_deprecated_name_of_mode():
    logits = tf.constant([[1.5, -2.0, 0.3]])
    policy = policies.Categorical()
    with pytest.warns(DeprecationWarning, match="use Policy.mode"):
        greedy = policy.greedy(logits)
    np.testing.assert_array_equal(greedy.numpy(), policy.mode(logits).numpy())

    with pytest.warns(DeprecationWarning, match="rename it mode"):

        class OldStyle(policies.Bernoulli):  # a policy written before mode() existed
            def greedy(self, logits):
                return tf.cast(logits > 1.0, tf.int32)

    np.testing.assert_array_equal(OldStyle().mode(logits).numpy(), [[1, 0, 0]])


@pytest.mark.parametrize(
    "reward, policy",
    [
        ("ndcg@5", "bernoulli"),  # binary relevance: 0/1 decisions read as item indices
        ("mrr", "categorical"),
        ("f1", "plackett_luce"),  # a ranking's item indices read as 0/1 decisions
        ("iou", "gaussian"),
    ],
)
def test_a_reward_of_another_kind_of_action_is_refused_before_training(reward, policy):
    import keras

    from rlmetric import PolicyGradientTrainer

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4)])
    with pytest.raises(ValueError, match=f"reward='{reward}' scores .* policy='{policy}' draws"):
        PolicyGradientTrainer(model, reward=reward, policy=policy)
    trainer = PolicyGradientTrainer(model, policy=policy, reward=lambda y, a: tf.zeros([1]))
    with pytest.raises(ValueError, match=f"policy='{policy}' draws"):  # an extra metric too
        trainer.compile(metrics=[reward])


def test_rewards_of_the_policy_s_kind_and_plain_functions_are_accepted():
    from rlmetric import rewards

    for policy, reward in [
        ("bernoulli", "f1"),
        ("categorical", "miou"),
        ("plackett_luce", "ndcg@5"),
        ("gaussian", rewards.CallableReward(lambda y, a: tf.zeros([tf.shape(a)[0]]))),
    ]:
        policies.get(policy).check_reward(rewards.get(reward))
