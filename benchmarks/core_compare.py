"""Cross-entropy and soft-F1 vs PolicyGradientTrainer on F1, and the cost of a policy-gradient step.

For each task and seed, the same MLP (inputs-64-1) is trained on the same split by each method:
``bce`` (binary cross-entropy), ``soft-f1`` (sigmoid-F1 surrogate on the batch), ``pg-f1``
(PolicyGradientTrainer, REINFORCE with the leave-one-out baseline, K=8) and ``pg-local`` (the
local-expectation estimator, K=8). Decisions are ``logit > 0`` for all; every run keeps the
weights of the epoch with the best validation F1, and the table reports test F1 as
mean +- std over the seeds. The step-cost part times, in one run, a training
step of each on the same model and batch (batch 256, K=8): through ``fit`` and in-graph only.

Run: python benchmarks/core_compare.py [--quick] [--seeds N] [--out DIR]
Writes DIR/results.csv, DIR/step_cost.csv and DIR/test_f1.png.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from _common import in_graph_step_timer, median_ratios, write_csv  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_digits, make_classification  # noqa: E402
from sklearn.metrics import f1_score  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from rlmetric import PolicyGradientTrainer  # noqa: E402


def load_task(name: str, seed: int):
    if name == "cancer-f1":
        x, y = load_breast_cancer(return_X_y=True)
        y = 1 - y  # malignant positive
    elif name == "digits9-f1":
        x, y = load_digits(return_X_y=True)
        y = (y == 9).astype(int)  # one-vs-rest, ~10% positive
    elif name == "imbalanced-f1":
        x, y = make_classification(
            n_samples=10_000,
            n_features=20,
            n_informative=8,
            weights=[0.97],
            flip_y=0.01,
            class_sep=1.0,
            random_state=seed,
        )
    else:
        raise ValueError(f"unknown task {name!r}")
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.3, stratify=y, random_state=seed
    )
    x_train, x_val, y_train, y_val = train_test_split(
        x_train, y_train, test_size=0.2, stratify=y_train, random_state=seed
    )
    scaler = StandardScaler().fit(x_train)
    scale = lambda a: scaler.transform(a).astype("float32")  # noqa: E731
    return (
        (scale(x_train), y_train.astype("int32")),
        (scale(x_val), y_val.astype("int32")),
        (scale(x_test), y_test.astype("int32")),
    )


def mlp(inputs: int) -> keras.Model:
    return keras.Sequential(
        [keras.Input((inputs,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(1)]
    )


class BestValidationF1(keras.callbacks.Callback):
    """Keeps the weights of the epoch with the best validation F1 of `logit > 0` decisions."""

    def __init__(self, x_val, y_val, model):
        super().__init__()
        self.x_val, self.y_val, self.target = x_val, y_val, model
        self.best, self.best_weights, self.curve = -1.0, None, []

    def on_epoch_end(self, epoch, logs=None):
        logits = self.target.predict(self.x_val, verbose=0).ravel()
        score = f1_score(self.y_val, (logits > 0).astype(int), zero_division=0.0)
        self.curve.append(score)
        if score > self.best:
            self.best, self.best_weights = score, self.target.get_weights()


BATCH_SIZE = {"cancer-f1": 64, "digits9-f1": 64, "imbalanced-f1": 256}


def soft_f1_loss(y_true, logits):
    """1 - F1 computed on probabilities over the batch (the sigmoid-F1 surrogate)."""
    y_true = tf.cast(tf.reshape(y_true, [-1]), tf.float32)
    probability = tf.sigmoid(tf.reshape(logits, [-1]))
    tp = tf.reduce_sum(probability * y_true)
    fp = tf.reduce_sum(probability * (1.0 - y_true))
    fn = tf.reduce_sum((1.0 - probability) * y_true)
    return 1.0 - 2.0 * tp / (2.0 * tp + fp + fn + 1e-7)


def run(task: str, method: str, seed: int, epochs: int):
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = load_task(task, seed)
    keras.utils.set_random_seed(seed)
    model = mlp(x_train.shape[1])
    best = BestValidationF1(x_val, y_val, model)
    batch_size = BATCH_SIZE[task]
    start = time.perf_counter()
    if method in ("bce", "soft-f1"):
        loss = (
            soft_f1_loss
            if method == "soft-f1"
            else keras.losses.BinaryCrossentropy(from_logits=True)
        )
        model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=loss)
        model.fit(
            x_train, y_train, batch_size=batch_size, epochs=epochs, verbose=0, callbacks=[best]
        )
    else:
        estimator = {"pg-f1": "reinforce", "pg-local": "local"}[method]
        trainer = PolicyGradientTrainer(
            model, reward="f1", estimator=estimator, num_samples=8, seed=seed
        )
        trainer.compile(optimizer=keras.optimizers.Adam(3e-3))
        trainer.fit(
            x_train, y_train, batch_size=batch_size, epochs=epochs, verbose=0, callbacks=[best]
        )
    seconds = time.perf_counter() - start
    model.set_weights(best.best_weights)
    predicted = (model.predict(x_test, verbose=0).ravel() > 0).astype(int)
    return f1_score(y_test, predicted, zero_division=0.0), seconds, best.curve


def step_cost(batch: int = 256, num_samples: int = 8, steps: int = 300, rounds: int = 9):
    """Ratios of a policy-gradient step to a BCE step on MLP 30-64-1, measured in one run:
    through ``fit`` (``steps_per_execution=20``) and in-graph (``train_step`` in a loop)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch * 20, 30)).astype("float32")
    y = (rng.random(batch * 20) < 0.3).astype("int32")
    keras.utils.set_random_seed(0)
    bce = mlp(30)
    bce.compile(
        optimizer="adam",
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        steps_per_execution=20,
    )
    pg = PolicyGradientTrainer(mlp(30), reward="f1", num_samples=num_samples, seed=0)
    pg.compile(optimizer="adam", steps_per_execution=20)

    def fit_timer(model):
        def timed():
            start = time.perf_counter()
            model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
            return (time.perf_counter() - start) / 20

        timed()  # trace and warm up
        return timed

    result = {}
    for key, make_timer in (
        ("fit", fit_timer),
        ("graph", lambda m: in_graph_step_timer(m, x[:batch], y[:batch], steps)),
    ):
        ratio = median_ratios({"bce": make_timer(bce), "pg": make_timer(pg)}, "bce", rounds)["pg"]
        names = (f"{key}_ratio", f"{key}_ratio_q25", f"{key}_ratio_q75")
        result.update(zip(names, ratio, strict=True))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs (CI / make bench)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--tasks", default="cancer-f1,digits9-f1")
    parser.add_argument("--methods", default="bce,soft-f1,pg-f1,pg-local")
    parser.add_argument("--out", default="bench_out")
    args = parser.parse_args()
    epochs = 25 if args.quick else 60
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    rows, curves = [], {}
    for task in args.tasks.split(","):
        for method in args.methods.split(","):
            for seed in range(args.seeds):
                f1, seconds, curve = run(task, method, seed, epochs)
                rows.append(
                    {
                        "task": task,
                        "method": method,
                        "seed": seed,
                        "test_f1": f1,
                        "seconds": seconds,
                    }
                )
                curves.setdefault((task, method), []).append(curve)
                print(
                    f"{task:12s} {method:6s} seed {seed}: test F1 {f1:.4f} ({seconds:.1f} s)",
                    flush=True,
                )
    write_csv(out / "results.csv", rows)

    print(f"\n| task | method | test F1 (mean +- std, {args.seeds} seeds) | train time (s) |")
    print("|---|---|---|---|")
    summary = {}
    for task, method in curves:
        scores = [r["test_f1"] for r in rows if r["task"] == task and r["method"] == method]
        seconds = [r["seconds"] for r in rows if r["task"] == task and r["method"] == method]
        summary[(task, method)] = (np.mean(scores), np.std(scores))
        score = f"{np.mean(scores):.4f} +- {np.std(scores):.4f}"
        print(f"| {task} | {method} | {score} | {np.mean(seconds):.1f} |")

    cost = step_cost()
    write_csv(out / "step_cost.csv", [cost])
    print("\nStep cost, MLP 30-64-1, batch 256, K=8 (policy-gradient step / BCE step, one run):")
    for label, key in (
        ("through fit (steps_per_execution=20)", "fit"),
        ("in-graph train_step", "graph"),
    ):
        quartiles = f"{cost[key + '_ratio_q25']:.2f}-{cost[key + '_ratio_q75']:.2f}"
        print(f"  {label:38s} {cost[key + '_ratio']:.2f}x (quartiles {quartiles})")

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plots (pip install 'rlmetric[bench]').")
        return
    tasks = list(dict.fromkeys(task for task, _ in curves))
    fig, axes = plt.subplots(1, len(tasks) + 1, figsize=(5 * (len(tasks) + 1), 4))
    for ax, task in zip(axes, tasks, strict=False):
        for method in args.methods.split(","):
            curve = np.mean(curves[(task, method)], axis=0)
            ax.plot(np.arange(1, len(curve) + 1), curve, label=method)
        ax.set(title=f"{task}: validation F1", xlabel="epoch", ylabel="F1")
        ax.legend()
    labels = [f"{t}\n{m}" for t, m in summary]
    means = [v[0] for v in summary.values()]
    stds = [v[1] for v in summary.values()]
    colors = [f"C{args.methods.split(',').index(m)}" for _, m in summary]
    axes[-1].bar(range(len(labels)), means, yerr=stds, capsize=4, color=colors)
    axes[-1].set_xticks(range(len(labels)), labels, fontsize=8)
    axes[-1].set(title="test F1 (mean +- std)", ylim=(min(means) - 0.1, 1.0))
    fig.tight_layout()
    fig.savefig(out / "test_f1.png", dpi=100)
    print(f"\nwrote {out / 'results.csv'}, {out / 'step_cost.csv'}, {out / 'test_f1.png'}")


if __name__ == "__main__":
    main()
