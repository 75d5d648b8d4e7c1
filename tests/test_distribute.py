"""PolicyGradientTrainer under tf.distribute.MirroredStrategy on 2 logical CPU devices.

Logical devices can only be configured before TensorFlow starts, so the run happens in a fresh
Python process.
"""

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import json, os
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
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
    before = trainer.evaluate(x, y, batch_size=64, return_dict=True, verbose=0)["f1"]
    history = trainer.fit(x, y, batch_size=64, epochs=4, verbose=0, validation_data=(x, y))
    after = trainer.evaluate(x, y, batch_size=64, return_dict=True, verbose=0)["f1"]
    predicted = trainer.predict_actions(x).ravel()
    print(json.dumps({
        "replicas": strategy.num_replicas_in_sync,
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
    assert report["after"] > report["before"] + 0.1, report
    # evaluate sums confusion counts over replicas and batches: the whole-set F1
    assert abs(report["after"] - report["sklearn_after"]) < 1e-6, report
