"""Exploration: is the switch to the exact local gradient (``pg-switch``) a label-noise effect?

``imbalanced-f1`` draws ``make_classification(weights=[0.97], flip_y=0.02)``: 2% of the labels
are random, about a quarter of the 3% positives. This script adds variants of that task that
differ only in ``flip_y`` and runs the default trainer, ``pg-switch``, soft-F1 and cross-entropy
on them with the bench's protocol (the same rate grid and seeds), then prints each method's
test F1 and the paired difference of ``pg-switch`` and soft-F1 from the default.

    python benchmarks/explore_label_noise.py --flips 0,0.05 --out bench_label_noise
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
from pathlib import Path

import numpy as np

from rlmetric.bench import tasks as bench_tasks
from rlmetric.bench.report import format_difference, paired_by_seed
from rlmetric.bench.suite import run_suite

METHODS = ("bce", "soft-f1", "pg-best-response", "pg-switch")


def _paired(mine: dict, theirs: dict) -> str:
    difference = paired_by_seed(mine, theirs)
    return f"{format_difference(difference)} {difference['verdict']}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flips", default="0,0.05", help="comma-separated flip_y values")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("bench_label_noise"))
    args = parser.parse_args()
    base = bench_tasks.TASKS["imbalanced-f1"]
    names = []
    for flip in args.flips.split(","):
        name = f"imbalanced-flip{flip}"
        load = functools.partial(bench_tasks._imbalanced, flip=float(flip))
        bench_tasks.TASKS[name] = dataclasses.replace(base, name=name, load=load)
        names.append(name)
    rows = run_suite(tasks=names, methods=list(METHODS), seeds=args.seeds, out=args.out)
    chosen = [r for r in rows if r["chosen"]]
    print(
        "\n| task | method | test F1 (mean of seeds) | minus the default (95% interval) "
        "| pg-switch minus it |"
    )
    print("|---|---|---|---|---|")
    for task in names:
        test = {
            m: {r["seed"]: r["test"] for r in chosen if r["task"] == task and r["method"] == m}
            for m in METHODS
        }
        for method in METHODS:
            against_default = _paired(test[method], test["pg-best-response"])
            switch_minus = _paired(test["pg-switch"], test[method])
            print(
                f"| {task} | {method} | {np.mean(list(test[method].values())):.4f} | "
                f"{'-' if method == 'pg-best-response' else against_default} | "
                f"{'-' if method == 'pg-switch' else switch_minus} |"
            )


if __name__ == "__main__":
    main()
