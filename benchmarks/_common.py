"""Pieces shared by the benchmark scripts."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import tensorflow as tf


def in_graph_step_timer(
    model, x, y, steps: int = 100, jit_compile: bool = False, launch_per_step: bool = False
):
    """A function timing ``model.train_step`` in an in-graph loop on one batch (seconds per
    step): Keras' per-call overhead is left out, so the compute of the step itself shows.

    With ``jit_compile`` the loop and its steps are one XLA computation, launched once for all
    steps; with ``launch_per_step`` too, each step is its own XLA launch inside a TensorFlow
    loop (as in ``fit``), whose cost grows with the number of variables the step touches."""
    xb, yb = tf.constant(x), tf.constant(y)
    per_step = jit_compile and launch_per_step
    step = tf.function(model.train_step, jit_compile=True) if per_step else model.train_step

    @tf.function(jit_compile=jit_compile and not launch_per_step)
    def loop():
        for _ in tf.range(steps):
            step((xb, yb))

    def timed() -> float:
        start = time.perf_counter()
        loop()
        return (time.perf_counter() - start) / steps

    timed()  # trace, compile and warm up
    return timed


def median_ratios(
    timers: dict, reference: str, rounds: int = 7
) -> dict[str, tuple[float, float, float]]:
    """Times every timer in alternating rounds and returns, for each, the (median, first
    quartile, third quartile) of its per-round ratio to the ``reference`` timer, so that load
    from other processes hits all of them alike."""
    times = {name: [] for name in timers}
    for _ in range(rounds):
        for name, timer in timers.items():
            times[name].append(timer())
    ratios = {name: np.divide(values, times[reference]) for name, values in times.items()}
    return {
        name: tuple(float(np.quantile(r, q)) for q in (0.5, 0.25, 0.75))
        for name, r in ratios.items()
    }


def write_csv(path: Path, rows: list[dict]) -> None:
    """Writes dict rows (all with the first row's keys) as CSV with a header."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


#: The committed full run's every row (``chosen`` = 1 at the rate each method chose).
COMMITTED_RESULTS = Path(__file__).parent / "results" / "results.csv"


def read_rows(path: Path) -> list[dict]:
    """The rows of a suite's ``results.csv`` with numbers as numbers (``seed``, ``chosen``
    int; ``test``, ``best_validation``, ``learning_rate``, ``train_seconds`` float)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        row["seed"] = int(row["seed"])
        row["chosen"] = int(row["chosen"])
        for key in ("test", "best_validation", "learning_rate", "train_seconds"):
            row[key] = float(row[key])
    return rows


def print_paired_against(rows: list[dict], method: str, compare: Path, references) -> None:
    """For each task of ``rows`` (a suite run of ``method``), the paired test difference of the
    seeds' chosen runs against each method of ``references`` in the ``compare`` results.csv."""
    from rlmetric.bench.report import format_difference, metric_by_seed, paired_by_seed

    reference = [r for r in read_rows(compare) if r["chosen"]]
    for task in dict.fromkeys(r["task"] for r in rows):
        mine = {r["seed"]: r["test"] for r in rows if r["task"] == task and r["chosen"]}
        for other in references:
            theirs = metric_by_seed(reference, task, other)
            if set(mine) & set(theirs):
                difference = format_difference(paired_by_seed(mine, theirs))
                print(f"{task}: {method} - {other}: {difference}")
