"""How much of each task's metric is left to the decision rule, and how much the training loss adds.

Every method of the suite reads its test decisions from its outputs by a fixed rule (logit 0 or
argmax). This script re-trains methods at the rate each chose in the committed full run
(``results/results.csv``; the runs are deterministic, so the test column reproduces), and scores
each trained model's test outputs three ways:

- ``fixed``: the method's own rule (what the suite reports);
- ``val-tuned``: the decision rule that maximizes the metric on the validation split, applied to
  test (a threshold per label for sigmoid outputs; an additive offset per class before the argmax
  for class logits);
- ``test-oracle``: the same search on the test split itself, an upper bound on what any such
  rule can get from these outputs.

If cross-entropy's ``test-oracle`` reaches what a metric-trained method (a surrogate or a policy
gradient) gets with its fixed rule, the metric's gain over cross-entropy is a decision-rule
effect, and a metric-trained method can only beat another by learning better outputs.

    python benchmarks/decision_headroom.py --tasks shapes-iou,shapes-miou --out bench_headroom
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import COMMITTED_RESULTS, read_rows, write_csv  # noqa: E402

from rlmetric.bench import methods as bench_methods  # noqa: E402
from rlmetric.bench.report import format_difference, paired_by_seed  # noqa: E402
from rlmetric.bench.tasks import TASKS  # noqa: E402
from rlmetric.thresholds import threshold_tuned  # noqa: E402

RULES = ("fixed", "val-tuned", "test-oracle")


def _class_offsets(logits: np.ndarray, y_true: np.ndarray, task, sweeps: int = 3) -> np.ndarray:
    """Additive per-class offsets to ``logits [..., C]`` (before the argmax) that maximize the
    task's metric on ``y_true [...]``, by coordinate ascent over a grid (class 0 fixed at 0)."""
    classes = logits.shape[-1]
    flat, labels = logits.reshape(-1, classes), y_true.ravel()
    offsets = np.zeros(classes)
    grid = np.linspace(-4.0, 4.0, 33)

    def score(candidate):
        return task.score(labels, (flat + candidate).argmax(-1))

    best = score(offsets)
    for _ in range(sweeps):
        for c in range(1, classes):
            for value in grid:
                candidate = offsets.copy()
                candidate[c] = value
                value_score = score(candidate)
                if value_score > best:
                    best, offsets = value_score, candidate
    return offsets


def _rule(task, outputs: np.ndarray, y_true: np.ndarray):
    """The decision rule fitted on ``(outputs, y_true)``: ``outputs -> decisions``."""
    if task.kind == "multiclass-seg":
        offsets = _class_offsets(outputs, y_true, task)
        return lambda o: (o + offsets).argmax(-1).astype("int32")
    threshold = threshold_tuned(
        outputs,
        None,
        y_true.reshape(outputs.shape),
        bench_methods._reward(task),
        per_label=task.kind == "multilabel",
    )
    return bench_methods._threshold_decide(threshold)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="shapes-iou,shapes-miou")
    parser.add_argument("--methods", default="bce,lovasz,pg-best-response")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("bench_headroom"))
    args = parser.parse_args()
    rates = {
        (r["task"], r["method"]): r["learning_rate"]
        for r in read_rows(COMMITTED_RESULTS)
        if r["chosen"]
    }
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for task_name in args.tasks.split(","):
        task = TASKS[task_name]
        for method_name in args.methods.split(","):
            method = bench_methods.METHODS[method_name]
            if task.kind not in method.kinds:
                continue
            rate = rates[(task_name, method_name)]
            for seed in range(args.seeds):
                data = task.load(seed, False)
                result = method.train(task, data, seed, task.epochs, rate)
                (_, _), (x_val, y_val), (x_test, y_test) = data
                val = bench_methods.predict(result.model, x_val)
                test = bench_methods.predict(result.model, x_test)
                decide = {
                    "fixed": result.decide,
                    "val-tuned": _rule(task, val, y_val),
                    "test-oracle": _rule(task, test, y_test),
                }
                row = {"task": task_name, "method": method_name, "seed": seed, "rate": rate}
                for rule in RULES:
                    row[rule] = task.score(y_test, decide[rule](test))
                rows.append(row)
                print(
                    f"{task_name:14s} {method_name:18s} seed {seed} "
                    + " ".join(f"{rule} {row[rule]:.4f}" for rule in RULES),
                    flush=True,
                )
                write_csv(args.out / "decision_headroom.csv", rows)
    _report(rows)


def _report(rows: list[dict]) -> None:
    def by_seed(task, method, rule):
        return {r["seed"]: r[rule] for r in rows if r["task"] == task and r["method"] == method}

    print("\n| task | method | fixed | val-tuned | test-oracle |")
    print("|---|---|---|---|---|")
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    for task in tasks:
        for method in dict.fromkeys(r["method"] for r in rows if r["task"] == task):
            means = [np.mean(list(by_seed(task, method, rule).values())) for rule in RULES]
            print(f"| {task} | {method} | " + " | ".join(f"{m:.4f}" for m in means) + " |")
    print("\n| task | method (fixed rule) | minus bce's test-oracle (95% interval) | verdict |")
    print("|---|---|---|---|")
    for task in tasks:
        oracle = by_seed(task, "bce", "test-oracle")
        for method in dict.fromkeys(r["method"] for r in rows if r["task"] == task):
            if method == "bce" or not oracle:
                continue
            difference = paired_by_seed(by_seed(task, method, "fixed"), oracle)
            print(
                f"| {task} | {method} | {format_difference(difference)} | {difference['verdict']} |"
            )


if __name__ == "__main__":
    main()
