"""Runs tasks x methods x seeds and writes the table, ``results.csv`` and the plots."""

from __future__ import annotations

import csv
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from rlmetric.bench.methods import METHODS, FitResult, predict
from rlmetric.bench.tasks import TASKS

__all__ = [
    "run_suite",
    "summarize",
    "markdown_table",
    "compare",
    "paired_difference",
    "format_difference",
    "verdict_table",
    "DEFAULT_METHOD",
    "QUICK_METHODS",
    "FULL_METHODS",
    "QUICK_LEARNING_RATES",
    "FULL_LEARNING_RATES",
]

#: What ``PolicyGradientTrainer(model, reward=..., policy=...)`` does with nothing else set.
DEFAULT_METHOD = "pg-best-response"
#: ``--full`` searches this Adam learning-rate grid for every method.
FULL_LEARNING_RATES = (1e-3, 3e-3, 1e-2)
#: ``--quick`` (``make bench``, under 3 minutes on 2 cores) trains at one rate, the middle one.
QUICK_LEARNING_RATES = (3e-3,)
#: The methods of ``--full`` when none are named: every surrogate, the trainer's default and the
#: unbiased local-expectation estimator. REINFORCE, DisARM and the warm start lost to
#: local expectation or to the surrogates on the per-pixel and steps tasks of the 2026-11-25
#: full run (benchmarks/RESULTS.md) and cost the search's time: ``--methods`` adds them.
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
)
#: The methods of ``--quick``: cross-entropy, the strongest surrogate of each task in the full
#: run, and the trainer's default next to the unbiased local-expectation estimator.
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
)

#: the cross-entropy each task's default is compared with: ``bce``, or for ranking ListNet's
#: softmax cross-entropy over the list
CROSSENTROPY_METHODS = ("bce", "listnet")

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
    ``results.csv`` (also written to ``out`` with the plots).

    Learning rate: every method gets the same search. On the first ``tune_seeds`` seeds each
    method trains at every rate of ``learning_rates``; the rate with the best mean validation
    metric (over those seeds) is the method's rate for the task, and the remaining seeds train
    at that rate only. The test metric is always read at the chosen rate; the other runs are
    kept in ``results.csv`` with ``chosen`` = 0.

    Args:
        tasks, methods: names from :data:`rlmetric.bench.TASKS` / :data:`METHODS` (the quick or
            full default set if ``None``); a method that does not fit a task is skipped for it.
        seeds: number of seeds (>= 1).
        quick: smaller data and fewer epochs (a smoke run, minutes on 2 cores).
        epochs: overrides the task's epoch count.
        learning_rates: the Adam learning-rate grid (default: :data:`FULL_LEARNING_RATES`, or
            :data:`QUICK_LEARNING_RATES` with ``quick``).
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
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    pairs = [
        (task, method)
        for task in task_names
        for method in method_names
        if TASKS[task].kind in METHODS[method].kinds
    ]
    total = len(pairs) * (tune_seeds * len(rates) + seeds - tune_seeds)
    rows, curves, datasets, done = [], {}, {}, 0
    start = time.perf_counter()

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
    summary = summarize(chosen)
    log("")
    log(markdown_table(summary, seeds))
    written = _plots(summary, curves, out)
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
    spread = "1 seed" if seeds == 1 else f"mean +- std, {seeds} seeds"
    lines = [
        f"| task | metric | method | test ({spread}) | train s | step vs BCE |",
        "|---|---|---|---|---|---|",
    ]
    for row in summary:
        score = f"{row['mean']:.4f}"
        if row["seeds"] > 1:
            score += f" +- {row['std']:.4f}"
        if row["mean"] == best[row["task"]]:
            score = f"**{score}**"
        ratio = "-" if row["step_ratio"] is None else f"{row['step_ratio']:.2f}x"
        lines.append(
            f"| {row['task']} | {row['metric']} | {row['method']} | {score} | "
            f"{row['train_seconds']:.1f} | {ratio} |"
        )
    return "\n".join(lines)


def paired_difference(a: Sequence[float], b: Sequence[float]) -> dict:
    """Mean of ``a - b`` over paired seeds with a two-sided 95% Student-t interval.

    Returns ``{"mean", "low", "high", "seeds", "verdict"}``: ``win`` when the interval lies
    above 0, ``loss`` below, ``tie`` when it contains 0, and ``1 seed`` (no interval) with a
    single pair.
    """
    differences = np.asarray(a, float) - np.asarray(b, float)
    n = len(differences)
    mean = float(differences.mean())
    if n < 2:
        return {"mean": mean, "low": math.nan, "high": math.nan, "seeds": n, "verdict": "1 seed"}
    from scipy import stats

    half = float(stats.t.ppf(0.975, n - 1) * differences.std(ddof=1) / math.sqrt(n))
    low, high = mean - half, mean + half
    verdict = "win" if low > 0 else "loss" if high < 0 else "tie"
    return {"mean": mean, "low": low, "high": high, "seeds": n, "verdict": verdict}


def format_difference(difference: dict) -> str:
    """A :func:`paired_difference` as ``+0.0123 (+0.0010, +0.0236)``, or with ``1 seed: no
    interval`` in place of the interval."""
    if difference["seeds"] < 2:
        return f"{difference['mean']:+.4f} (1 seed: no interval)"
    return f"{difference['mean']:+.4f} ({difference['low']:+.4f}, {difference['high']:+.4f})"


def _by_seed(rows: list[dict], task: str, method: str) -> dict[int, float]:
    return {r["seed"]: float(r["test"]) for r in rows if (r["task"], r["method"]) == (task, method)}


def _best(rows: list[dict], task: str, methods: list[str]) -> str | None:
    """The method with the best mean validation metric: chosen without the test set."""

    def validation(method):
        return np.mean(
            [r["best_validation"] for r in rows if (r["task"], r["method"]) == (task, method)]
        )

    return max(methods, key=validation) if methods else None


def compare(rows: list[dict]) -> list[dict]:
    """Per task, the paired test differences that decide the verdicts.

    ``best``: the best policy-gradient method against the best other method, each the one with
    the best mean *validation* metric (picking by test would flatter both); ``default``: the
    trainer's defaults (:data:`DEFAULT_METHOD`) against cross-entropy (``bce``).
    """
    comparisons = []
    for task in dict.fromkeys(r["task"] for r in rows):
        methods = list(dict.fromkeys(r["method"] for r in rows if r["task"] == task))
        policy_gradient = [m for m in methods if m.startswith("pg-")]
        surrogate = [m for m in methods if not m.startswith("pg-")]
        pairs = [("best", _best(rows, task, policy_gradient), _best(rows, task, surrogate))]
        crossentropy = next((m for m in CROSSENTROPY_METHODS if m in methods), None)
        if DEFAULT_METHOD in methods and crossentropy:
            pairs.append(("default", DEFAULT_METHOD, crossentropy))
        for kind, mine, theirs in pairs:
            if mine is None or theirs is None:
                continue
            a, b = _by_seed(rows, task, mine), _by_seed(rows, task, theirs)
            seeds = sorted(set(a) & set(b))
            comparisons.append(
                {
                    "kind": kind,
                    "task": task,
                    "metric": next(r["metric"] for r in rows if r["task"] == task),
                    "method": mine,
                    "method_mean": float(np.mean([a[s] for s in seeds])),
                    "reference": theirs,
                    "reference_mean": float(np.mean([b[s] for s in seeds])),
                    **paired_difference([a[s] for s in seeds], [b[s] for s in seeds]),
                }
            )
    return comparisons


def verdict_table(comparisons: list[dict]) -> str:
    """The verdicts as two Markdown tables: best policy gradient vs best surrogate, and the
    default trainer vs cross-entropy."""
    titles = {
        "best": (
            "Verdict: the best policy-gradient method vs the best surrogate (each picked by mean "
            "validation metric), paired over seeds",
            "best surrogate",
            "best policy gradient",
        ),
        "default": (
            f"The default trainer ({DEFAULT_METHOD}: no estimator or baseline argument) vs "
            "cross-entropy (ListNet's softmax cross-entropy for ranking), paired over seeds",
            "cross-entropy",
            "default trainer",
        ),
    }
    blocks = []
    for kind, (title, reference, mine) in titles.items():
        rows = [c for c in comparisons if c["kind"] == kind]
        if not rows:
            continue
        lines = [
            title,
            "",
            f"| task | {reference} | {mine} | difference (95% interval) | verdict |",
            "|---|---|---|---|---|",
        ]
        for c in rows:
            lines.append(
                f"| {c['task']} | {c['reference']} {c['reference_mean']:.4f} | "
                f"{c['method']} {c['method_mean']:.4f} | {format_difference(c)} | "
                f"{c['verdict']} |"
            )
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


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
