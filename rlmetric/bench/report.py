"""The benchmark's report: the summary table, the paired differences with 95% intervals, the
verdicts and the plots, from the rows of ``results.csv``."""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "summarize",
    "markdown_table",
    "compare",
    "paired_difference",
    "paired_by_seed",
    "metric_by_seed",
    "holm_adjusted",
    "format_difference",
    "verdict_table",
    "plots",
    "DEFAULT_METHOD",
    "CROSSENTROPY_METHODS",
    "CEILING_METHODS",
]

#: What ``PolicyGradientTrainer(model, reward=..., policy=...)`` does with nothing else set.
DEFAULT_METHOD = "pg-best-response"

#: the cross-entropy each task's default is compared with (and the reference of the step-time
#: ratios): ``bce``, for ranking ListNet's softmax cross-entropy over the list, for networks of
#: step units the straight-through network's cross-entropy step
CROSSENTROPY_METHODS = ("bce", "listnet", "ste-net")

#: methods that bound what a task allows rather than compete (a ReLU network where the units
#: must be hard steps): compared with the best policy gradient apart, never its "best surrogate"
CEILING_METHODS = ("relu-net",)

#: the literature's specialist losses of the decision tasks (SPO+ for a linear problem's regret,
#: the smoothed window for a hit rate): compared with the best policy gradient apart, so that
#: "best surrogate" is the best of the recipes a practitioner uses today
SPECIALIST_METHODS = ("spo-plus", "smooth-window")


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

    Returns ``{"mean", "low", "high", "p", "seeds", "verdict"}``: ``p`` is the two-sided
    p-value of the paired t-test (NaN with one pair, or when every difference is the same);
    ``verdict`` is ``win`` when the interval lies above 0, ``loss`` below, ``tie`` when it
    contains 0, and ``1 seed`` (no interval) with a single pair.
    """
    differences = np.asarray(a, float) - np.asarray(b, float)
    n = len(differences)
    mean = float(differences.mean())
    if n < 2:
        return {
            "mean": mean,
            "low": math.nan,
            "high": math.nan,
            "p": math.nan,
            "seeds": n,
            "verdict": "1 seed",
        }
    from scipy import stats

    spread = differences.std(ddof=1)
    half = float(stats.t.ppf(0.975, n - 1) * spread / math.sqrt(n))
    low, high = mean - half, mean + half
    p = (
        float(2 * stats.t.sf(abs(mean) / (spread / math.sqrt(n)), n - 1))
        if spread > 1e-12
        else math.nan
    )
    verdict = "win" if low > 0 else "loss" if high < 0 else "tie"
    return {"mean": mean, "low": low, "high": high, "p": p, "seeds": n, "verdict": verdict}


def holm_adjusted(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of a family of p-values (in the order given; NaN stays NaN
    and is left out of the family): the ``i``-th smallest becomes ``max over j <= i of
    min(1, (m - j + 1) p_(j))``. Rejecting where the adjusted value is below ``alpha`` keeps the
    family-wise error rate at ``alpha``."""
    ranked = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    adjusted, running = [float(p) for p in p_values], 0.0
    for rank, (p, i) in enumerate(ranked):
        running = max(running, min(1.0, (len(ranked) - rank) * p))
        adjusted[i] = running
    return adjusted


def paired_by_seed(a: dict[int, float], b: dict[int, float]) -> dict:
    """[`paired_difference`][rlmetric.bench.report.paired_difference] of two ``{seed: test metric}``
    maps over the seeds both hold."""
    seeds = sorted(set(a) & set(b))
    return paired_difference([a[s] for s in seeds], [b[s] for s in seeds])


def format_difference(difference: dict) -> str:
    """A [`paired_difference`][rlmetric.bench.report.paired_difference] as ``+0.0123 (+0.0010,
    +0.0236)``, or with ``1 seed: no
    interval`` in place of the interval."""
    if difference["seeds"] < 2:
        return f"{difference['mean']:+.4f} (1 seed: no interval)"
    return f"{difference['mean']:+.4f} ({difference['low']:+.4f}, {difference['high']:+.4f})"


def metric_by_seed(rows: list[dict], task: str, method: str) -> dict[int, float]:
    """``{seed: test metric}`` of the rows of one task and method."""
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
    the best mean *validation* metric (picking by test would flatter both; ceilings such as a
    ReLU network and the specialists of
    [`SPECIALIST_METHODS`][rlmetric.bench.report.SPECIALIST_METHODS] left out); ``specialist``:
    the same policy-gradient method against each specialist present; ``ceiling``: the same
    policy-gradient method against each of
    [`CEILING_METHODS`][rlmetric.bench.report.CEILING_METHODS] present; ``default``: the
    trainer's defaults ([`DEFAULT_METHOD`][rlmetric.bench.report.DEFAULT_METHOD]) against
    cross-entropy (``bce``).
    """
    comparisons = []
    for task in dict.fromkeys(r["task"] for r in rows):
        methods = list(dict.fromkeys(r["method"] for r in rows if r["task"] == task))
        policy_gradient = [m for m in methods if m.startswith("pg-")]
        apart = CEILING_METHODS + SPECIALIST_METHODS
        surrogate = [m for m in methods if not m.startswith("pg-") and m not in apart]
        best_policy_gradient = _best(rows, task, policy_gradient)
        pairs = [("best", best_policy_gradient, _best(rows, task, surrogate))]
        pairs += [("ceiling", best_policy_gradient, m) for m in methods if m in CEILING_METHODS]
        pairs += [
            ("specialist", best_policy_gradient, m) for m in methods if m in SPECIALIST_METHODS
        ]
        crossentropy = next((m for m in CROSSENTROPY_METHODS if m in methods), None)
        if DEFAULT_METHOD in methods and crossentropy:
            pairs.append(("default", DEFAULT_METHOD, crossentropy))
        for kind, mine, theirs in pairs:
            if mine is None or theirs is None:
                continue
            a, b = metric_by_seed(rows, task, mine), metric_by_seed(rows, task, theirs)
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
        "specialist": (
            "The best policy-gradient method vs the literature's specialist loss of the task "
            "(SPO+, the smoothed window), paired over seeds",
            "specialist",
            "best policy gradient",
        ),
        "ceiling": (
            "The best policy-gradient method vs the ReLU network of the same size (a ceiling "
            "for hard step units, not a competitor), paired over seeds",
            "ceiling",
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


def plots(summary: list[dict], curves: dict, out: Path) -> list[Path]:
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
