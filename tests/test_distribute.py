"""PolicyGradientTrainer under tf.distribute: MirroredStrategy on 2 logical CPU devices, and
MultiWorkerMirroredStrategy with 2 worker processes on localhost.

Logical devices can only be configured before TensorFlow starts, so the runs happen in fresh
Python processes.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np

# a fresh process with 2 logical CPU devices (configurable only before TensorFlow starts)
TWO_LOGICAL_CPUS = textwrap.dedent(
    """
    import json, os
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    """
)

SCRIPT = TWO_LOGICAL_CPUS + textwrap.dedent(
    """
    import keras, numpy as np
    from sklearn.metrics import f1_score
    from rlmetric import PolicyGradientTrainer

    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 8)).astype("float32")
    y = (x[:, 0] > 0.3).astype("int32")
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    strategy = tf.distribute.MirroredStrategy(devices)
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
        trainer = PolicyGradientTrainer(model, reward="f1", seed=0)
        trainer.compile(optimizer=keras.optimizers.Adam(0.05))
    try:
        with strategy.scope():
            trainer.compile(optimizer="adam", jit_compile=True)
        jit_error = ""
    except ValueError as error:
        jit_error = str(error)
    with strategy.scope():
        trainer.compile(optimizer=keras.optimizers.Adam(0.05))
    before = trainer.evaluate(x, y, batch_size=64, return_dict=True, verbose=0)["f1"]
    history = trainer.fit(x, y, batch_size=64, epochs=4, verbose=0, validation_data=(x, y))
    after = trainer.evaluate(x, y, batch_size=64, return_dict=True, verbose=0)["f1"]
    predicted = trainer.predict_actions(x).ravel()
    print(json.dumps({
        "replicas": strategy.num_replicas_in_sync,
        "jit_error": jit_error,
        "before": float(before),
        "after": float(after),
        "sklearn_after": float(f1_score(y, predicted)),
        "history_finite": bool(all(np.all(np.isfinite(v)) for v in history.history.values())),
    }))
    """
)


def test_fit_and_evaluate_under_mirrored_strategy():
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2 and report["history_finite"]
    # XLA with replicas on logical CPU devices fails inside TensorFlow: refused at compile
    assert "jit_compile=True does not run under MirroredStrategy" in report["jit_error"], report
    assert report["after"] > report["before"] + 0.1, report
    # evaluate sums confusion counts over replicas and batches: the whole-set F1
    assert abs(report["after"] - report["sklearn_after"]) < 1e-6, report


REWARD_SCRIPT = TWO_LOGICAL_CPUS + textwrap.dedent(
    """
    import numpy as np
    from rlmetric import rewards

    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    strategy = tf.distribute.MirroredStrategy(devices)
    rng = np.random.default_rng(0)
    cases = {
        "f1": (rewards.F1(), rng.integers(0, 2, (12,)), rng.integers(0, 2, (3, 12))),
        "miou": (
            rewards.IoU(average="macro", num_classes=3),
            rng.integers(0, 3, (12, 2)),
            rng.integers(0, 3, (3, 12, 2)),
        ),
        "samples_f1": (
            rewards.F1(average="samples"),
            rng.integers(0, 2, (12, 4)),
            rng.integers(0, 2, (3, 12, 4)),
        ),
        "mcc": (rewards.MatthewsCorrCoef(), rng.integers(0, 2, (12,)), rng.integers(0, 2, (3, 12))),
    }
    report = {}
    for name, (reward, y, actions) in cases.items():
        y, actions = y.astype("int32"), actions.astype("int32")
        def split(values, axis):
            def part(context):
                halves = np.split(values, 2, axis=axis)
                return tf.constant(halves[context.replica_id_in_sync_group])

            return strategy.experimental_distribute_values_from_function(part)

        parts = (split(y, 0), split(actions, 1))
        scores = strategy.run(tf.function(lambda t, a: reward(t, a)), args=parts)
        local = strategy.run(tf.function(lambda t, a: reward.local_rewards(t, a)), args=parts)
        results = strategy.experimental_local_results
        scores = [s.numpy() for s in results(scores)]
        local = np.concatenate([s.numpy() for s in results(local)], axis=1)
        report[name] = {
            "per_replica": [s.tolist() for s in scores],
            "global": reward(y, actions).numpy().tolist(),
            "local_error": float(np.abs(local - reward.local_rewards(y, actions).numpy()).max()),
        }
    print(json.dumps(report))
    """
)


def test_rewards_are_those_of_the_global_batch_on_every_replica():
    result = subprocess.run(
        [sys.executable, "-c", REWARD_SCRIPT], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    for name, values in report.items():
        for replica_scores in values["per_replica"]:
            assert np.allclose(replica_scores, values["global"], atol=1e-6), (name, values)
        assert values["local_error"] < 1e-5, (name, values)


EQUIVALENCE_SCRIPT = TWO_LOGICAL_CPUS + textwrap.dedent(
    """
    import keras, numpy as np
    from rlmetric import PolicyGradientTrainer

    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 6)).astype("float32")
    cases = {
        "bernoulli_f1_loo": (1, (x[:, 0] > 0.3).astype("int32"), "f1", "bernoulli", "reinforce"),
        "categorical_miou_local": (
            3,
            np.digitize(x[:, 1], [-0.5, 0.5]).astype("int32"),
            "miou",
            "categorical",
            "local_expectation",
        ),
        "bernoulli_f1_disarm": (1, (x[:, 0] > 0.3).astype("int32"), "f1", "bernoulli", "disarm"),
        "categorical_miou_best_response": (
            3,
            np.digitize(x[:, 1], [-0.5, 0.5]).astype("int32"),
            "miou",
            "categorical",
            "best_response",
        ),
        # the coupled context orders the global batch: an all-gather, then this replica's part
        "categorical_miou_coupled": (
            3, np.digitize(x[:, 1], [-0.5, 0.5]).astype("int32"), "miou", "categorical", "coupled"
        ),
        "bernoulli_f1_coupled": (1, (x[:, 0] > 0.3).astype("int32"), "f1", "bernoulli", "coupled"),
        # a regulariser must count once, not once per replica (Keras scales it by 1/replicas)
        "bernoulli_f1_l2": (
            1, (x[:, 0] > 0.3).astype("int32"), "f1", "bernoulli", "best_response", 0.05
        ),
    }
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]

    class Rewards(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.values = []

        def on_train_batch_end(self, batch, logs=None):
            self.values.append(float(logs["reward"]))

    def train(strategy, outputs, y, reward, policy, estimator, l2=0.0):
        if estimator == "coupled":
            from rlmetric.estimators import LocalBestResponse

            estimator = LocalBestResponse(context="coupled")
        with strategy.scope():
            keras.utils.set_random_seed(0)
            regularizer = keras.regularizers.L2(l2) if l2 else None
            model = keras.Sequential([
                keras.Input((6,)),
                keras.layers.Dense(16, activation="tanh", kernel_regularizer=regularizer),
                keras.layers.Dense(outputs, kernel_regularizer=regularizer),
            ])
            trainer = PolicyGradientTrainer(
                model, reward=reward, policy=policy, estimator=estimator, num_samples=4, seed=7
            )
            trainer.compile(optimizer=keras.optimizers.Adam(0.01))
        rewards = Rewards()
        trainer.fit(x, y, batch_size=64, epochs=2, shuffle=False, verbose=0, callbacks=[rewards])
        return model.get_weights(), rewards.values

    report = {}
    # one strategy for all cases: collective ops of several strategies in one process collide
    mirrored = tf.distribute.MirroredStrategy(devices)
    single = tf.distribute.OneDeviceStrategy(devices[0])

    def compared(single_run, mirrored_run):
        (single_w, single_r), (mirrored_w, mirrored_r) = single_run, mirrored_run
        return {
            "replicas": mirrored.num_replicas_in_sync,
            "steps": len(single_r),
            "weight_error": max(float(np.abs(a - b).max()) for a, b in zip(single_w, mirrored_w)),
            "moved": max(float(np.abs(a).max()) for a in single_w),
            "single_rewards": single_r,
            "mirrored_rewards": mirrored_r,
        }

    for name, case in cases.items():
        report[name] = compared(train(single, *case), train(mirrored, *case))

    # rankings: Plackett-Luce over lists of 10 items, some padded; NDCG@5 is the mean over the
    # global batch's lists, and PL-Rank divides by the global number of lists
    x_lists = rng.normal(size=(128, 10, 6)).astype("float32")
    y_lists = np.digitize(x_lists[..., 0], [0.0, 0.8, 1.5]).astype("float32")
    y_lists[::3, 7:] = -1.0

    def train_ranking(strategy, estimator):
        with strategy.scope():
            keras.utils.set_random_seed(0)
            model = keras.Sequential([
                keras.Input((10, 6)),
                keras.layers.Dense(16, activation="tanh"),
                # no output bias: a constant added to every score of a list changes no
                # ranking, so its gradient is 0 up to rounding, which Adam would amplify
                keras.layers.Dense(1, use_bias=False),
                keras.layers.Reshape((10,)),
            ])
            trainer = PolicyGradientTrainer(
                model, reward="ndcg@5", policy="plackett_luce", estimator=estimator,
                num_samples=4, seed=7,
            )
            trainer.compile(optimizer=keras.optimizers.Adam(0.01))
        rewards = Rewards()
        trainer.fit(
            x_lists, y_lists, batch_size=32, epochs=2, shuffle=False, verbose=0,
            callbacks=[rewards],
        )
        return model.get_weights(), rewards.values

    for estimator in ("pl_rank", "reinforce", "pairwise_best_response"):
        report[f"plackett_luce_ndcg_{estimator}"] = compared(
            train_ranking(single, estimator), train_ranking(mirrored, estimator)
        )
    print(json.dumps(report))
    """
)


def test_two_replicas_train_exactly_like_one_device_on_the_global_batch():
    """Same seed, same global batches: the noise of each example is keyed by its position in the
    global batch and the count rewards are global, so the rewards of every step and the weights
    after 8 Adam steps agree with a single-device run (up to float summation order, 1e-5)."""
    result = subprocess.run(
        [sys.executable, "-c", EQUIVALENCE_SCRIPT], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    for name, values in report.items():
        assert values["replicas"] == 2 and values["steps"] == 8, (name, values)
        np.testing.assert_allclose(
            values["mirrored_rewards"], values["single_rewards"], atol=1e-5, err_msg=name
        )
        assert values["weight_error"] < 1e-5, (name, values)


SWITCH_SCRIPT = TWO_LOGICAL_CPUS + textwrap.dedent(
    """
    import keras, numpy as np
    from rlmetric import PolicyGradientTrainer
    from rlmetric.callbacks import SwitchEstimator

    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 6)).astype("float32")
    y = (x[:, 0] > 0.3).astype("int32")

    class Record(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.names = []

        def on_epoch_begin(self, epoch, logs=None):
            self.names.append(self.model.estimator.name)

    def train(strategy):
        with strategy.scope():
            keras.utils.set_random_seed(0)
            model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(1)])
            trainer = PolicyGradientTrainer(model, reward="f1", num_samples=4, seed=7)
            trainer.compile(optimizer=keras.optimizers.Adam(0.05))
        record = Record()
        trainer.fit(x, y, batch_size=64, epochs=4, shuffle=False, verbose=0,
                    callbacks=[SwitchEstimator("local_expectation", at=2), record])
        return model.get_weights(), record.names, strategy.num_replicas_in_sync

    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    mirrored, names, replicas = train(tf.distribute.MirroredStrategy(devices))
    single, _, _ = train(tf.distribute.OneDeviceStrategy(devices[0]))
    print(json.dumps({
        "replicas": replicas,
        "names": names,
        "weight_error": max(float(np.max(np.abs(a - b))) for a, b in zip(mirrored, single)),
    }))
    """
)


def test_switch_estimator_under_mirrored_strategy_matches_one_device():
    """SwitchEstimator rebuilds the training step inside a MirroredStrategy fit: the estimator
    switches at epoch 2 on 2 replicas, and the weights after 16 steps agree with one device's."""
    result = subprocess.run(
        [sys.executable, "-c", SWITCH_SCRIPT], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2
    assert report["names"] == ["best_response"] * 2 + ["local_expectation"] * 2
    assert report["weight_error"] < 1e-5, report


WORKER_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import tensorflow as tf
    import keras, numpy as np
    from rlmetric import PolicyGradientTrainer

    out = sys.argv[1]
    strategy = (
        tf.distribute.MultiWorkerMirroredStrategy()
        if "TF_CONFIG" in os.environ
        else tf.distribute.OneDeviceStrategy("/cpu:0")
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 6)).astype("float32")
    y = (x[:, 0] > 0.3).astype("int32")
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([
            keras.Input((6,)), keras.layers.Dense(16, activation="tanh"), keras.layers.Dense(1)
        ])
        trainer = PolicyGradientTrainer(model, reward="f1", num_samples=4, seed=7)
        trainer.compile(optimizer=keras.optimizers.Adam(0.01))
    history = trainer.fit(x, y, batch_size=64, epochs=2, shuffle=False, verbose=0)
    evaluation = trainer.evaluate(x, y, batch_size=64, return_dict=True, verbose=0)
    with open(out, "w") as f:
        json.dump({
            "replicas": strategy.num_replicas_in_sync,
            "weights": [w.tolist() for w in model.get_weights()],
            "reward": np.ravel(history.history["reward"]).tolist(),
            "f1": float(np.ravel(evaluation["f1"])[0]),
        }, f)
    """
)


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_worker_processes_agree_with_one_process(tmp_path):
    """MultiWorkerMirroredStrategy with 2 worker processes on localhost (TF_CONFIG, loopback
    ports), one CPU replica each: 8 Adam steps then evaluate. Rewards per epoch, the weights
    (1e-5) and the evaluated F1 equal those of a single-process run on the same data and seed."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER_SCRIPT)
    workers = [f"localhost:{port}" for port in _free_ports(2)]
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    processes = []
    for index in range(2):
        config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        processes.append(
            subprocess.Popen(
                [sys.executable, str(script), str(tmp_path / f"worker{index}.json")],
                env={**env, "TF_CONFIG": json.dumps(config)},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    single = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "single.json")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    try:
        outputs = [p.communicate(timeout=300) for p in processes]
    finally:
        for p in processes:
            p.kill()
    assert single.returncode == 0, single.stderr[-3000:]
    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr[-3000:]
    reference = json.loads((tmp_path / "single.json").read_text())
    assert reference["replicas"] == 1
    for index in range(2):
        worker = json.loads((tmp_path / f"worker{index}.json").read_text())
        assert worker["replicas"] == 2
        np.testing.assert_allclose(worker["reward"], reference["reward"], atol=1e-6)
        for mine, theirs in zip(worker["weights"], reference["weights"], strict=True):
            np.testing.assert_allclose(mine, theirs, atol=1e-5)
        assert abs(worker["f1"] - reference["f1"]) < 1e-6
