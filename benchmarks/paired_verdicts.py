"""Paired verdicts of chosen method pairs from a results.csv: for each ``task:method-reference``
the test difference over the seeds both ran at their chosen rates, with its 95% interval, the
paired t-test's p-value and the verdict, as a Markdown table.

    python benchmarks/paired_verdicts.py benchmarks/results/results.csv \
        --pairs cancer-f1:pg-user-tf-pg-best-response,campaign:pg-user-numpy-bce-tuned
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _common import read_rows

from rlmetric.bench.report import format_difference, metric_by_seed, paired_by_seed


def parse_pair(text: str, methods: set[str]) -> tuple[str, str, str]:
    """``task:method-reference`` where method names may hold dashes: the split that names two
    known methods."""
    task, rest = text.split(":", 1)
    for i, char in enumerate(rest):
        if char == "-" and rest[:i] in methods and rest[i + 1 :] in methods:
            return task, rest[:i], rest[i + 1 :]
    raise ValueError(f"--pairs: {text!r} does not name two methods of the results.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", type=Path)
    parser.add_argument("--pairs", required=True, help="comma-separated task:method-reference")
    args = parser.parse_args()
    rows = [r for r in read_rows(args.csv) if r["chosen"]]
    methods = {r["method"] for r in rows}
    print("| task | method - reference | means | difference (95% interval) | p | verdict |")
    print("|---|---|---|---|---|---|")
    for text in args.pairs.split(","):
        task, mine, theirs = parse_pair(text, methods)
        a, b = metric_by_seed(rows, task, mine), metric_by_seed(rows, task, theirs)
        difference = paired_by_seed(a, b)
        seeds = sorted(set(a) & set(b))
        means = (sum(a[s] for s in seeds) / len(seeds), sum(b[s] for s in seeds) / len(seeds))
        print(
            f"| {task} | {mine} - {theirs} | {means[0]:.4f} / {means[1]:.4f} | "
            f"{format_difference(difference)} | {difference['p']:.3f} | "
            f"{difference['verdict']} |"
        )


if __name__ == "__main__":
    main()
