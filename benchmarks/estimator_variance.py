"""Gradient variance, accuracy and step cost of every estimator x baseline on fixed batches.

Three problems, each a fixed (untrained, seeded) model and batch:
  * binary F1: MLP 30-64-1 on 256 rows of breast cancer;
  * per-pixel mIoU: a small conv net on 32x32 images of 3 shape classes + background (batch 8);
  * NDCG@10 of Plackett-Luce rankings: a per-item MLP scoring 64 lists of 100 items.
For each estimator x baseline it prints the total gradient variance relative to REINFORCE without
baseline, the cosine similarity of the mean of 10 draws with a reference gradient (the mean of
many draws of an unbiased estimator: local expectation, or PL-Rank for rankings), and the
in-graph step time relative to a cross-entropy step on the same model and batch (ListNet's
softmax cross-entropy for rankings).

Run: python benchmarks/estimator_variance.py [--draws N] [--problems binary,segmentation,ranking]
    [--out DIR]
Writes DIR/estimator_variance.csv.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from _common import in_graph_step_timer, median_ratios, write_csv  # noqa: E402
from sklearn.datasets import load_breast_cancer  # noqa: E402

from rlmetric import PolicyGradientTrainer, diagnostics, surrogates  # noqa: E402

COMBINATIONS = [
    ("reinforce", "none"),
    ("reinforce", "moving_average"),
    ("reinforce", "leave_one_out"),
    ("reinforce", "greedy"),
    ("reinforce", "group_norm"),
    ("local_expectation", "none"),
    ("disarm", "none"),
]


def binary_problem():
    x, y = load_breast_cancer(return_X_y=True)
    x = ((x - x.mean(0)) / x.std(0)).astype("float32")[:256]
    y = (1 - y).astype("int32")[:256]
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((30,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(1)]
    )
    return "binary F1 (batch 256)", model, x, y, "f1", "bernoulli"


def shapes(n: int, size: int = 32, seed: int = 0):
    """Images with a disc, a square and a bar (classes 1-3) on noise; masks of class ids."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:size, :size]
    images = rng.normal(0, 0.5, (n, size, size, 1)).astype("float32")
    masks = np.zeros((n, size, size), "int32")
    for i in range(n):
        for label in (1, 2, 3):
            r, c = rng.integers(5, size - 5, 2)
            if label == 1:
                shape = (rows - r) ** 2 + (cols - c) ** 2 <= 16
            elif label == 2:
                shape = (np.abs(rows - r) <= 3) & (np.abs(cols - c) <= 3)
            else:
                shape = (np.abs(rows - r) <= 1) & (np.abs(cols - c) <= 5)
            masks[i][shape] = label
            images[i, ..., 0][shape] += label / 2
    return images, masks


def segmentation_problem():
    images, masks = shapes(8)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((32, 32, 1)),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(4, 1),
        ]
    )
    return "per-pixel mIoU (8 x 32x32, 4 classes)", model, images, masks, "miou", "categorical"


RANKING_COMBINATIONS = [
    ("reinforce", "none"),
    ("reinforce", "leave_one_out"),
    ("reinforce", "group_norm"),
    ("pl_rank", "none"),
    # not an estimate of grad E[R]: its cosine with the reference says how far it points away
    ("pairwise_best_response", "none"),
]


def ranking_problem():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 100, 10)).astype("float32")
    y = np.digitize(x[..., 0] + 0.5 * rng.normal(size=(64, 100)), [0.5, 1.0, 1.5, 2.0])
    y = y.astype("float32")
    y[:, 80:] = -1.0  # 80 real items per list
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((100, 10)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(1),
            keras.layers.Reshape((100,)),
        ]
    )
    return "NDCG@10 (64 lists x 100 items)", model, x, y, "ndcg@10", "plackett_luce"


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-30))


def flat(gradients) -> np.ndarray:
    return np.concatenate([g.ravel() for g in gradients])


def measure(problem, draws: int, reference_draws: int, num_samples: int = 8):
    title, model, x, y, reward, policy = problem
    trainer = PolicyGradientTrainer(model, reward=reward, policy=policy, num_samples=num_samples)
    if policy == "plackett_luce":
        combinations, unbiased = RANKING_COMBINATIONS, ("pl_rank", "none")
    else:
        combinations = [c for c in COMBINATIONS if policy == "bernoulli" or c[0] != "disarm"]
        unbiased = ("local_expectation", "none")
    reference_stats = diagnostics.gradient_stats(
        trainer, x, y, draws=reference_draws, combinations=[unbiased], seed=123
    )
    reference = flat(reference_stats["/".join(unbiased)]["mean"])

    rows = []
    timers = {}
    if policy == "bernoulli":
        cross_entropy = keras.losses.BinaryCrossentropy(from_logits=True)
    elif policy == "plackett_luce":
        cross_entropy = surrogates.ListNet()
    else:
        cross_entropy = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    baseline_model = keras.models.clone_model(model)
    baseline_model.compile(optimizer="adam", loss=cross_entropy)
    timers["cross-entropy"] = in_graph_step_timer(baseline_model, x, y)
    for estimator, baseline in combinations:
        trainer_for = functools.partial(
            PolicyGradientTrainer,
            reward=reward,
            policy=policy,
            estimator=estimator,
            baseline=baseline,
            num_samples=num_samples,
            seed=1,
        )
        probe = trainer_for(model)
        if baseline == "moving_average":  # as after many batches at the current mean reward
            logits = model(x)
            labels = probe.policy.format_labels(y, logits.shape)
            mean_reward = float(np.mean(probe.reward(labels, probe.policy.sample(logits, 64, 0))))
            decay = probe.baseline.decay
            probe._baseline_state.assign([mean_reward * (1 - decay), decay])
        samples = [flat(probe.estimate_gradient(x, y)) for _ in range(draws)]
        samples = np.stack(samples)
        groups = samples[: draws // 10 * 10].reshape(-1, 10, samples.shape[1]).mean(1)
        rows.append(
            {
                "problem": title,
                "estimator": estimator,
                "baseline": baseline,
                "variance": float(samples.var(0).sum()),
                "cosine_mean_of_10": float(np.mean([cosine(g, reference) for g in groups])),
            }
        )
        step_trainer = trainer_for(keras.models.clone_model(model))  # timed on its own copy
        step_trainer.compile(optimizer="adam")
        timers[f"{estimator}/{baseline}"] = in_graph_step_timer(step_trainer, x, y)
    ratios = median_ratios(timers, "cross-entropy")
    none_variance = rows[0]["variance"]
    for row in rows:
        row["variance_vs_reinforce_none"] = row["variance"] / none_variance
        row["step_time_vs_cross_entropy"] = ratios[f"{row['estimator']}/{row['baseline']}"][0]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--reference-draws", type=int, default=2000)
    parser.add_argument("--out", default="bench_out")
    parser.add_argument("--problems", default="binary,segmentation,ranking")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    problems = {
        "binary": binary_problem,
        "segmentation": segmentation_problem,
        "ranking": ranking_problem,
    }
    for make in (problems[name] for name in args.problems.split(",")):
        problem_rows = measure(make(), args.draws, args.reference_draws)
        rows += problem_rows
        print(f"\n{problem_rows[0]['problem']}, K=8, {args.draws} draws each")
        print(
            "| estimator | baseline | variance vs REINFORCE/none "
            "| cosine(mean of 10, ref) | step time vs CE |"
        )
        print("|---|---|---|---|---|")
        for row in problem_rows:
            print(
                f"| {row['estimator']} | {row['baseline']} "
                f"| {row['variance_vs_reinforce_none']:.2e} | {row['cosine_mean_of_10']:.3f} "
                f"| {row['step_time_vs_cross_entropy']:.2f}x |",
                flush=True,
            )
    write_csv(out / "estimator_variance.csv", rows)
    print(f"\nwrote {out / 'estimator_variance.csv'}")


if __name__ == "__main__":
    main()
