"""Runs tasks x methods x seeds and writes the table, ``results.csv`` and the plots."""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from rlmetric.bench.methods import METHODS, FitResult, predict
from rlmetric.bench.report import (
    CROSSENTROPY_METHODS,
    compare,
    markdown_table,
    plots,
    summarize,
    verdict_table,
)
from rlmetric.bench.tasks import TASKS

__all__ = [
    "run_suite",
    "QUICK_METHODS",
    "FULL_METHODS",
    "QUICK_LEARNING_RATES",
    "FULL_LEARNING_RATES",
]

#: ``--full`` searches this Adam learning-rate grid for every method.
FULL_LEARNING_RATES = (1e-3, 3e-3, 1e-2)
#: ``--quick`` (``make bench``, about 3 minutes on 2 cores) trains at one rate, the middle one.
QUICK_LEARNING_RATES = (3e-3,)
#: The methods of ``--full`` when none are named: every surrogate, the trainer's default, the
#: unbiased local-expectation estimator, the default followed by it (``pg-switch``) and the
#: default on the task's metric written as a user would (``pg-user-tf``, ``pg-user-numpy``); the
#: decision tasks' recipes, specialists and policy gradients.
#: REINFORCE, DisARM and the warm start lost to local expectation or to the surrogates on the
#: per-pixel and steps tasks of the 2026-11-25 full run (benchmarks/RESULTS.md) and cost the
#: search's time: ``--methods`` adds them. For the networks of step units: every method of the
#: issue-15 run.
FULL_METHODS = (
    "bce",
    "bce-tuned",
    "wbce",
    "focal",
    "soft-f1",
    "soft-dice",
    "soft-jaccard",
    "lovasz",
    "smooth-step",
    "straight-through",
    "listnet",
    "ranknet",
    "approx-ndcg",
    "lambdaloss",
    "pg-local",
    "pg-pl-rank",
    "pg-best-response",
    "pg-switch",
    "pg-user-tf",
    "pg-user-numpy",
    "two-stage-mse",
    "two-stage-tuned",
    "spo-plus",
    "mse",
    "mae",
    "huber",
    "smooth-window",
    "pg-regret",
    "pg-regret-warm",
    "pg-decision",
    "pg-decision-warm",
    "relu-net",
    "ste-net",
    "smooth-annealed-net",
    "pg-step-reinforce",
    "pg-step-disarm",
    "pg-step-local",
)
#: The methods of ``--quick``: cross-entropy, the strongest surrogate of each task in the full
#: run, and the trainer's default next to the unbiased local-expectation estimator and the
#: default on the task's metric written in NumPy (``pg-user-numpy``); for the decision tasks
#: the two-stage recipe (and its tuned capacity), SPO+, MAE and the warm-started policy
#: gradients; for the step networks straight-through, the annealed sigmoid and local
#: expectation (the best of each side).
QUICK_METHODS = (
    "bce",
    "bce-tuned",
    "soft-f1",
    "lovasz",
    "smooth-step",
    "listnet",
    "lambdaloss",
    "pg-local",
    "pg-best-response",
    "pg-user-numpy",
    "two-stage-mse",
    "two-stage-tuned",
    "spo-plus",
    "mae",
    "pg-regret-warm",
    "pg-decision-warm",
    "ste-net",
    "smooth-annealed-net",
    "pg-step-local",
)


#: printed above a one-seed table (``--quick``): what it can and cannot show
ONE_SEED_CAVEAT = (
    "One seed: every number below is a single training run. It shows that each method runs "
    "and roughly where it lands, not which is better: seed-to-seed spread on these tasks is "
    "0.003-0.10 (5-seed suite; 0.08-0.10 on imbalanced-f1), so differences of that size are "
    "noise. Compare the default (pg-best-response) with bce-tuned, BCE with a threshold tuned "
    "on validation, the baseline to beat. The verdicts (5 seeds, a learning-rate search, "
    "paired 95% intervals) come from `rlmetric bench --full`; benchmarks/RESULTS.md has them."
)


CSV_FIELDS = (
    "task",
    "method",
    "seed",
    "metric",
    "test",
    "best_validation",
    "epochs",
    "learning_rate",
    "chosen",
    "train_seconds",
    "step_seconds",
    "step_ratio_vs_bce",
)


def _check_names(kind: str, names: Sequence[str], known: dict) -> list[str]:
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown {kind} {unknown}; expected some of {list(known)}.")
    return list(names)


def run_suite(
    tasks: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    seeds: int = 5,
    quick: bool = False,
    out: str | Path = "bench_results",
    epochs: int | None = None,
    learning_rates: Sequence[float] | None = None,
    tune_seeds: int | None = None,
    log: Callable[[str], None] = print,
) -> list[dict]:
    """Trains every method that fits each task, for seeds ``0 .. seeds-1``; returns the rows of
    ``results.csv`` (also written to ``out`` with the plots; ``results.partial.csv`` holds the
    finished runs while the suite runs, and stays if it stops early; a later run into the same
    ``out`` renames it to ``results.partial.N.csv`` rather than overwrite it).

    Learning rate: every method gets the same search. On the first ``tune_seeds`` seeds each
    method trains at every rate of ``learning_rates``; the rate with the best mean validation
    metric (over those seeds) is the method's rate for the task, and the remaining seeds train
    at that rate only. The test metric is always read at the chosen rate; the other runs are
    kept in ``results.csv`` with ``chosen`` = 0.

    Args:
        tasks, methods: names from [`rlmetric.bench.TASKS`][rlmetric.bench.TASKS] /
        [`METHODS`][rlmetric.bench.suite.METHODS] (the quick or
            full default set if ``None``); a method that does not fit a task is skipped for it.
        seeds: number of seeds (>= 1).
        quick: smaller data and fewer epochs (a smoke run, minutes on 2 cores).
        epochs: overrides the task's epoch count.
        learning_rates: the Adam learning-rate grid (default:
            [`FULL_LEARNING_RATES`][rlmetric.bench.suite.FULL_LEARNING_RATES], or
            [`QUICK_LEARNING_RATES`][rlmetric.bench.suite.QUICK_LEARNING_RATES] with ``quick``).
        tune_seeds: seeds that search the grid (default: ``min(seeds, 2)``).
    """
    task_names = _check_names("tasks", tasks or list(TASKS), TASKS)
    default_methods = QUICK_METHODS if quick else FULL_METHODS
    method_names = _check_names("methods", methods or default_methods, METHODS)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be an int >= 1; received seeds={seeds!r}.")
    if epochs is not None and (not isinstance(epochs, int) or epochs < 2):
        raise ValueError(f"epochs must be an int >= 2 or None; received epochs={epochs!r}.")
    rates = tuple(learning_rates or (QUICK_LEARNING_RATES if quick else FULL_LEARNING_RATES))
    if not all(isinstance(r, int | float) and 0 < r < 1 for r in rates):
        raise ValueError(
            f"learning_rates must be numbers in (0, 1); received learning_rates={rates!r}."
        )
    tune_seeds = min(seeds, 2) if tune_seeds is None else tune_seeds
    if isinstance(tune_seeds, bool) or not isinstance(tune_seeds, int) or tune_seeds < 1:
        raise ValueError(f"tune_seeds must be an int >= 1; received tune_seeds={tune_seeds!r}.")
    tune_seeds = min(tune_seeds, seeds)
    pairs = [
        (task, method)
        for task in task_names
        for method in method_names
        if TASKS[task].kind in METHODS[method].kinds
    ]
    if not pairs:
        raise ValueError(
            f"no method of {method_names} fits a task of {task_names}: "
            + "; ".join(
                f"{m} trains on {sorted(set(METHODS[m].kinds))} tasks" for m in method_names
            )
            + "; the tasks are of kind "
            + ", ".join(sorted({TASKS[t].kind for t in task_names}))
            + "."
        )
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out={str(out)!r} is a file; the results need a folder.")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"out={str(out)!r}: the folder cannot be created ({error}).") from None
    total = len(pairs) * (tune_seeds * len(rates) + seeds - tune_seeds)
    rows, curves, datasets, done = [], {}, {}, 0
    start = time.perf_counter()
    # every finished run is appended here at once, so a run that is stopped or crashes keeps
    # what it measured (results.csv is written at the end, with the step ratios)
    partial = out / "results.partial.csv"
    if partial.exists():  # a stopped run's rows: kept beside, never overwritten
        kept = next(
            out / f"results.partial.{i}.csv"
            for i in range(1, 10_000)
            if not (out / f"results.partial.{i}.csv").exists()
        )
        partial.rename(kept)
        log(f"kept the rows of a stopped run in {kept} (results.partial.csv was there)")
    with open(partial, "w", newline="") as f:
        csv.DictWriter(f, fieldnames=CSV_FIELDS).writeheader()

    def run(task_name, method_name, seed, rate, chosen):
        nonlocal done
        task, method = TASKS[task_name], METHODS[method_name]
        if (task_name, seed) not in datasets:  # every method of a seed trains on the same data
            datasets[(task_name, seed)] = task.load(seed, quick)
        data = datasets[(task_name, seed)]
        n_epochs = epochs or (task.quick_epochs if quick else task.epochs)
        result = _train(method, task, data, seed, n_epochs, rate, rows)
        (x_val, y_val), (x_test, y_test) = data[1], data[2]
        validation = task.score(y_val, result.decide(predict(result.model, x_val)))
        test = task.score(y_test, result.decide(predict(result.model, x_test)))
        row = {
            "task": task_name,
            "method": method_name,
            "seed": seed,
            "learning_rate": rate,
            "chosen": int(chosen),
            "metric": task.metric,
            "test": test,
            "best_validation": validation,
            "epochs": n_epochs,
            "train_seconds": result.seconds,
            "step_seconds": result.step_seconds,
            "_result": result,
            "_curve": result.curve,
        }
        rows.append(row)
        with open(partial, "a", newline="") as f:
            fields = {k: v for k, v in row.items() if k in CSV_FIELDS}
            csv.DictWriter(f, fieldnames=CSV_FIELDS).writerow(fields)
        done += 1
        log(
            f"[{done:3d}/{total}] {task_name:14s} {method_name:17s} seed {seed} lr {rate:g}: "
            f"val {validation:.4f} test {task.metric} {test:.4f}  train {result.seconds:6.1f} s"
            f" ({1e3 * result.step_seconds:.2f} ms/step)"
            f"  (elapsed {time.perf_counter() - start:5.0f} s)"
        )
        return row

    for task_name, method_name in pairs:
        searched = [
            run(task_name, method_name, seed, rate, chosen=False)  # marked once all are in
            for seed in range(tune_seeds)
            for rate in rates
        ]
        best_rate = max(
            rates,
            key=lambda r: np.mean(
                [row["best_validation"] for row in searched if row["learning_rate"] == r]
            ),
        )
        for row in searched:
            row["chosen"] = int(row["learning_rate"] == best_rate)
        for seed in range(tune_seeds, seeds):
            run(task_name, method_name, seed, best_rate, True)
    for row in rows:  # a model is kept only while a shared method may reuse it
        row.pop("_result")
    chosen = [r for r in rows if r["chosen"]]
    _add_step_ratios(chosen)
    for row in rows:
        row.setdefault("step_ratio_vs_bce", float("nan"))
        curve = row.pop("_curve")
        if row["chosen"]:
            curves.setdefault((row["task"], row["method"]), []).append(curve)
    _write_csv(out / "results.csv", rows)
    partial.unlink()
    summary = summarize(chosen)
    log("")
    if seeds == 1:
        log(ONE_SEED_CAVEAT)
    log(markdown_table(summary, seeds))
    written = plots(summary, curves, out)
    comparisons = compare(chosen)
    log("")
    log(verdict_table(comparisons))
    log(f"\nwrote {out / 'results.csv'}" + "".join(f", {p}" for p in written))
    return rows


def _add_step_ratios(rows: list[dict]) -> None:
    """``step_ratio_vs_bce``: a run's time per step over the cross-entropy run (``bce``, or
    ``listnet`` for ranking) of its task and seed."""
    bce = {
        (r["task"], r["seed"]): r["step_seconds"]
        for r in rows
        if r["method"] in CROSSENTROPY_METHODS
    }
    for row in rows:
        reference = bce.get((row["task"], row["seed"]))
        row["step_ratio_vs_bce"] = row["step_seconds"] / reference if reference else float("nan")


def _train(method, task, data, seed, epochs, rate, rows) -> FitResult:
    """Trains, or reuses the model of the method this one shares its training with."""
    shared = method.shares_training_with
    if shared is not None:
        for row in rows:
            key = (row["task"], row["method"], row["seed"], row["learning_rate"])
            if key == (task.name, shared, seed, rate):
                return method.train(task, data, seed, epochs, rate, trained=row["_result"])
    return method.train(task, data, seed, epochs, rate)


def _write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
