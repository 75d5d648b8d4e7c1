"""The trainer's defaults against cross-entropy on problems that are NOT in the bench suite.

What a user who sets nothing gets: ``PolicyGradientTrainer(model, reward=..., policy=...)``
compiled with ``optimizer="adam"`` (Keras' 1e-3), against the same model compiled with
cross-entropy and the same optimizer, epochs, batches and initial weights; beside them, the
trainer's previous defaults (REINFORCE with the leave-one-out baseline). Decisions at logit 0
(argmax for classes). Several problems are small enough that the whole run is a few dozen
optimizer steps, where an estimator that needs many steps to find its way falls behind.

Problems (none is in ``rlmetric bench``; all data ship with scikit-learn or are generated):
wine (class 0 vs rest, 178 rows), iris (virginica vs rest, 150 rows), moons (300 noisy rows),
a 100-row subset of breast cancer (malignant positive), multi-label F1 on 600 generated rows,
and 4-class segmentation of generated 24x24 shapes with a 2-layer conv net (mean IoU).

Per problem: test metric of both over 5 seeds (each seed draws the split and the initial
weights), the paired difference with its 95% t interval, and the number of optimizer steps.

``--switch`` adds the default followed by the local-expectation estimator for the second half
of the epochs (``rlmetric.callbacks.SwitchEstimator``, the bench's ``pg-switch``), with its
paired difference from the default.

Run: python benchmarks/default_vs_crossentropy.py [--seeds 5] [--switch] [--out DIR]
Writes DIR/default_vs_crossentropy.csv.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from _common import write_csv  # noqa: E402
from sklearn import datasets  # noqa: E402
from sklearn.metrics import f1_score, jaccard_score  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from rlmetric import PolicyGradientTrainer  # noqa: E402
from rlmetric.bench import make_shapes  # noqa: E402
from rlmetric.bench.report import format_difference, paired_difference  # noqa: E402
from rlmetric.callbacks import SwitchEstimator  # noqa: E402


def _tabular(x, y, seed, stratify=True):
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.3, random_state=seed, stratify=y if stratify else None
    )
    mean, std = x_train.mean(0), x_train.std(0) + 1e-8
    return (
        ((x_train - mean) / std).astype("float32"),
        y_train.astype("int32"),
        ((x_test - mean) / std).astype("float32"),
        y_test.astype("int32"),
    )


def wine(seed):
    x, y = datasets.load_wine(return_X_y=True)
    return _tabular(x, (y == 0).astype(int), seed)


def iris(seed):
    x, y = datasets.load_iris(return_X_y=True)
    return _tabular(x, (y == 2).astype(int), seed)


def moons(seed):
    x, y = datasets.make_moons(300, noise=0.35, random_state=seed)
    return _tabular(x, y, seed)


def small_cancer(seed):
    x, y = datasets.load_breast_cancer(return_X_y=True)
    rows = np.random.default_rng(seed).choice(len(x), 100, replace=False)
    return _tabular(x[rows], 1 - y[rows], seed)


def multilabel(seed):
    x, y = datasets.make_multilabel_classification(
        600, n_features=20, n_classes=6, n_labels=2, random_state=seed
    )
    return _tabular(np.log1p(x), y, seed, stratify=False)


def shapes(seed):
    images, labels = make_shapes(200, size=24, seed=500 + seed, noise=0.8)
    return images[:140], labels[:140], images[140:], labels[140:]


def dense(inputs, outputs):
    return keras.Sequential(
        [
            keras.Input((inputs,)),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(outputs),
        ]
    )


def conv(classes):
    return keras.Sequential(
        [
            keras.Input((24, 24, 1)),
            keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(classes, 3, padding="same"),
        ]
    )


def binary_f1(y, decisions):
    return f1_score(y.ravel(), decisions.ravel(), zero_division=0.0)


def macro_f1(y, decisions):
    return f1_score(y, decisions, average="macro", zero_division=0.0)


def mean_iou(y, decisions):
    return jaccard_score(
        y.ravel(), decisions.ravel(), average="macro", labels=[0, 1, 2, 3], zero_division=0.0
    )


# name: (load, model maker, reward, policy, test metric, batch size, epochs)
PROBLEMS = {
    "wine": (wine, lambda x, y: dense(x.shape[1], 1), "f1", "bernoulli", binary_f1, 32, 10),
    "iris": (iris, lambda x, y: dense(x.shape[1], 1), "f1", "bernoulli", binary_f1, 32, 10),
    "moons": (moons, lambda x, y: dense(x.shape[1], 1), "f1", "bernoulli", binary_f1, 32, 15),
    "cancer-100": (
        small_cancer,
        lambda x, y: dense(x.shape[1], 1),
        "f1",
        "bernoulli",
        binary_f1,
        16,
        10,
    ),
    "multilabel-600": (
        multilabel,
        lambda x, y: dense(x.shape[1], y.shape[1]),
        "macro_f1",
        "bernoulli",
        macro_f1,
        64,
        20,
    ),
    "shapes-4class": (shapes, lambda x, y: conv(4), "miou", "categorical", mean_iou, 16, 15),
}


def decisions(model, x, policy):
    logits = keras.ops.convert_to_numpy(model(x, training=False))
    if policy == "categorical":
        return logits.argmax(-1)
    hard = (logits > 0).astype("int32")
    return hard[:, 0] if hard.shape[-1] == 1 else hard


def run(name, seed, methods=("crossentropy", "default", "reinforce")):
    load, make_model, reward, policy, metric, batch, epochs = PROBLEMS[name]
    x_train, y_train, x_test, y_test = load(seed)
    scores = {}
    for method in methods:
        keras.utils.set_random_seed(seed)  # the same initial weights for all
        model = make_model(x_train, y_train)
        if method != "crossentropy":
            # "reinforce": the defaults before estimator="auto" (REINFORCE + leave-one-out)
            options = {"estimator": "reinforce"} if method == "reinforce" else {}
            trainable = PolicyGradientTrainer(
                model, reward=reward, policy=policy, seed=seed, **options
            )
            trainable.compile(optimizer="adam")
        else:
            loss = (
                keras.losses.SparseCategoricalCrossentropy(from_logits=True)
                if policy == "categorical"
                else keras.losses.BinaryCrossentropy(from_logits=True)
            )
            model.compile(optimizer="adam", loss=loss)
            trainable = model
        y_fit = y_train if y_train.ndim > 1 or policy == "categorical" else y_train[:, None]
        # "switch": the default, then local expectation for the second half of the epochs
        callbacks = [SwitchEstimator("local_expectation", at=0.5)] if method == "switch" else []
        trainable.fit(
            x_train, y_fit, batch_size=batch, epochs=epochs, verbose=0, callbacks=callbacks
        )
        scores[method] = metric(y_test, decisions(model, x_test, policy))
    steps = epochs * -(-len(x_train) // batch)
    return scores, steps


def print_paired(rows, names, method, reference, full=False):
    """A table row per problem: the mean test metric of ``reference`` and ``method`` and their
    paired difference (``full``: with the optimizer steps and the REINFORCE column)."""
    for name in names:
        mine = [r for r in rows if r["problem"] == name]
        ours, theirs = [r[method] for r in mine], [r[reference] for r in mine]
        d = paired_difference(ours, theirs)
        cells = [name, str(mine[0]["steps"])] if full else [name]
        cells += [f"{np.mean(theirs):.4f}", f"{np.mean(ours):.4f}", format_difference(d)]
        cells.append(d["verdict"])
        if full:
            cells.append(f"{np.mean([r['reinforce'] for r in mine]):.4f}")
        print(f"| {' | '.join(cells)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", default="bench_default")
    parser.add_argument("--problems", default=",".join(PROBLEMS), help="comma-separated subset")
    parser.add_argument(
        "--switch", action="store_true", help="also the default, then local expectation"
    )
    args = parser.parse_args()
    methods = ("crossentropy", "default", "reinforce", *(("switch",) if args.switch else ()))
    names = args.problems.split(",")
    unknown = sorted(set(names) - set(PROBLEMS))
    if unknown:
        parser.error(f"unknown problems {unknown}; known: {sorted(PROBLEMS)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in names:
        for seed in range(args.seeds):
            scores, steps = run(name, seed, methods)
            rows.append({"problem": name, "seed": seed, "steps": steps, **scores})
            print(
                f"{name:15s} seed {seed}: cross-entropy {scores['crossentropy']:.4f}  "
                f"default {scores['default']:.4f}  reinforce {scores['reinforce']:.4f}  "
                + (f"switch {scores['switch']:.4f}  " if args.switch else "")
                + f"({steps} steps)",
                flush=True,
            )
    write_csv(out / "default_vs_crossentropy.csv", rows)
    print(
        f"\nThe trainer's defaults vs cross-entropy, Adam 1e-3, {args.seeds} seeds, paired "
        "differences (95% t interval)\n"
    )
    print(
        "| problem | optimizer steps | cross-entropy | default trainer | difference | verdict "
        "| previous default (REINFORCE + leave-one-out) |"
    )
    print("|---|---|---|---|---|---|---|")
    print_paired(rows, names, "default", "crossentropy", full=True)
    if args.switch:
        print("\nThe default, then local expectation for the second half, minus the default\n")
        print("| problem | default trainer | switched | difference | verdict |")
        print("|---|---|---|---|---|")
        print_paired(rows, names, "switch", "default")
    print(f"\nwrote {out / 'default_vs_crossentropy.csv'}")


if __name__ == "__main__":
    main()
