"""Runs tasks x methods x seeds and writes the table, ``results.csv`` and the plots."""

from __future__ import annotations

import csv
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from rlmetric.bench.methods import METHODS, FitResult, predict
from rlmetric.bench.tasks import TASKS

__all__ = ["run_suite", "summarize", "markdown_table"]

CSV_FIELDS = (
    "task",
    "method",
    "seed",
    "metric",
    "test",
    "best_validation",
    "epochs",
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
    seeds: int = 3,
    quick: bool = False,
    out: str | Path = "bench_results",
    epochs: int | None = None,
    log: Callable[[str], None] = print,
) -> list[dict]:
    """Trains every method that fits each task, for seeds ``0 .. seeds-1``; returns the rows of
    ``results.csv`` (also written to ``out`` with the plots).

    Args:
        tasks, methods: names from :data:`rlmetric.bench.TASKS` / :data:`METHODS` (all if
            ``None``); a method that does not fit a task is skipped for it.
        seeds: number of seeds (>= 1).
        quick: smaller data and fewer epochs (a smoke run, minutes on 2 cores).
        epochs: overrides the task's epoch count.
    """
    task_names = _check_names("tasks", tasks or list(TASKS), TASKS)
    method_names = _check_names("methods", methods or list(METHODS), METHODS)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be an int >= 1; received seeds={seeds!r}.")
    if epochs is not None and (not isinstance(epochs, int) or epochs < 2):
        raise ValueError(f"epochs must be an int >= 2 or None; received epochs={epochs!r}.")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    plan = [
        (task, method, seed)
        for task in task_names
        for method in method_names
        if TASKS[task].kind in METHODS[method].kinds
        for seed in range(seeds)
    ]
    rows, curves, datasets = [], {}, {}
    start = time.perf_counter()
    for index, (task_name, method_name, seed) in enumerate(plan, 1):
        task, method = TASKS[task_name], METHODS[method_name]
        if (task_name, seed) not in datasets:  # every method of a seed trains on the same data
            datasets[(task_name, seed)] = task.load(seed, quick)
        data = datasets[(task_name, seed)]
        n_epochs = epochs or (task.quick_epochs if quick else task.epochs)
        result = _train(method, task, data, seed, n_epochs, rows, curves)
        x_test, y_test = data[2]
        test = task.score(y_test, result.decide(predict(result.model, x_test)))
        bce = next(
            (r for r in rows if (r["task"], r["method"], r["seed"]) == (task_name, "bce", seed)),
            None,
        )
        rows.append(
            {
                "task": task_name,
                "method": method_name,
                "seed": seed,
                "metric": task.metric,
                "test": test,
                "best_validation": max(result.curve),
                "epochs": n_epochs,
                "train_seconds": result.seconds,
                "step_seconds": result.step_seconds,
                "step_ratio_vs_bce": (
                    result.step_seconds / bce["step_seconds"] if bce else float("nan")
                ),
                "_result": result,
            }
        )
        curves.setdefault((task_name, method_name), []).append(result.curve)
        log(
            f"[{index:3d}/{len(plan)}] {task_name:14s} {method_name:17s} seed {seed}: "
            f"test {task.metric} {test:.4f}  train {result.seconds:6.1f} s  "
            f"(elapsed {time.perf_counter() - start:5.0f} s)"
        )
    for row in rows:
        row.pop("_result")
    _write_csv(out / "results.csv", rows)
    summary = summarize(rows)
    log("")
    log(markdown_table(summary, seeds))
    written = _plots(summary, curves, out)
    log(f"\nwrote {out / 'results.csv'}" + "".join(f", {p}" for p in written))
    return rows


def _train(method, task, data, seed, epochs, rows, curves) -> FitResult:
    """Trains, or reuses the model of the method this one shares its training with."""
    shared = method.shares_training_with
    if shared is not None:
        for row in rows:
            if (row["task"], row["method"], row["seed"]) == (task.name, shared, seed):
                return method.train(task, data, seed, epochs, trained=row["_result"])
    return method.train(task, data, seed, epochs)


def _write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def summarize(rows: list[dict]) -> list[dict]:
    """One row per (task, method): test mean and std over seeds, times, step ratio."""
    keys = list(dict.fromkeys((r["task"], r["method"]) for r in rows))
    summary = []
    for task, method in keys:
        mine = [r for r in rows if (r["task"], r["method"]) == (task, method)]
        tests = np.array([float(r["test"]) for r in mine])
        ratios = np.array([float(r["step_ratio_vs_bce"]) for r in mine])
        summary.append(
            {
                "task": task,
                "method": method,
                "metric": mine[0]["metric"],
                "mean": float(tests.mean()),
                "std": float(tests.std()),
                "seeds": len(mine),
                "train_seconds": float(np.mean([float(r["train_seconds"]) for r in mine])),
                "step_ratio": float(np.nanmedian(ratios)) if np.any(np.isfinite(ratios)) else None,
            }
        )
    return summary


def markdown_table(summary: list[dict], seeds: int) -> str:
    """The summary as a Markdown table; the best mean of each task is in bold."""
    best = {}
    for row in summary:
        best[row["task"]] = max(best.get(row["task"], -np.inf), row["mean"])
    lines = [
        f"| task | metric | method | test (mean +- std, {seeds} seeds) | train s | step vs BCE |",
        "|---|---|---|---|---|---|",
    ]
    for row in summary:
        score = f"{row['mean']:.4f} +- {row['std']:.4f}"
        if row["mean"] == best[row["task"]]:
            score = f"**{score}**"
        ratio = "-" if row["step_ratio"] is None else f"{row['step_ratio']:.2f}x"
        lines.append(
            f"| {row['task']} | {row['metric']} | {row['method']} | {score} | "
            f"{row['train_seconds']:.1f} | {ratio} |"
        )
    return "\n".join(lines)


def _plots(summary: list[dict], curves: dict, out: Path) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(
            "matplotlib is not installed: no plots (pip install 'rlmetric[bench]').",
            file=sys.stderr,
        )
        return []
    tasks = list(dict.fromkeys(r["task"] for r in summary))
    methods = list(dict.fromkeys(r["method"] for r in summary))
    palette = plt.get_cmap("tab20").colors
    colors = {m: palette[i % len(palette)] for i, m in enumerate(methods)}
    styles = {m: "--" if m.startswith("pg-") else "-" for m in methods}
    width = min(len(tasks), 4)
    height = -(-len(tasks) // width)

    def grid():
        return plt.subplots(height, width, figsize=(4.5 * width, 3.6 * height), squeeze=False)

    def save(fig, axes, name: str) -> Path:
        for ax in axes.ravel()[len(tasks) :]:
            ax.axis("off")
        fig.tight_layout()
        fig.savefig(out / name, dpi=90)
        plt.close(fig)
        return out / name

    fig, axes = grid()
    for ax, task in zip(axes.ravel(), tasks, strict=False):
        for (name, method), runs in curves.items():
            if name != task:
                continue
            length = min(len(c) for c in runs)
            curve = np.mean([c[:length] for c in runs], axis=0)
            ax.plot(range(1, length + 1), curve, styles[method], color=colors[method], label=method)
        metric = next(r["metric"] for r in summary if r["task"] == task)
        ax.set(title=task, xlabel="epoch", ylabel=f"validation {metric}")
        ax.legend(fontsize=6)
    curves_path = save(fig, axes, "learning_curves.png")

    fig, axes = grid()
    for ax, task in zip(axes.ravel(), tasks, strict=False):
        rows = [r for r in summary if r["task"] == task]
        means = [r["mean"] for r in rows]
        ax.bar(
            range(len(rows)),
            means,
            yerr=[r["std"] for r in rows],
            capsize=3,
            color=[colors[r["method"]] for r in rows],
        )
        ax.set_xticks(range(len(rows)), [r["method"] for r in rows], rotation=60, fontsize=7)
        low = max(0.0, min(means) - 2 * max(r["std"] for r in rows) - 0.05)
        ax.set(title=f"{task}: test {rows[0]['metric']}", ylim=(low, min(1.0, max(means) + 0.05)))
    return [curves_path, save(fig, axes, "test_metric.png")]
