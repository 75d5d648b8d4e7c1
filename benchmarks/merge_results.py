"""Merge the results.csv of several `rlmetric bench` runs (a full run done in parts) and print
the tables and verdicts of the merged runs, as `rlmetric bench` prints them for one run.

A later file replaces every row of a (task, method) pair that an earlier file also has, so a
method re-run on a task in a later part is counted once, and a method run alone later (e.g. a new
estimator) joins the tasks' other methods.

    python benchmarks/merge_results.py part1/results.csv part2/results.csv \
        --out benchmarks/results
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from _common import read_rows

from rlmetric.bench import report, suite


def merge(paths: list[Path]) -> list[dict]:
    merged: list[dict] = []
    for path in paths:
        rows = read_rows(path)
        pairs = {(r["task"], r["method"]) for r in rows}
        merged = [r for r in merged if (r["task"], r["method"]) not in pairs] + rows
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", nargs="+", type=Path, help="results.csv files, earliest first")
    parser.add_argument("--out", type=Path, required=True, help="folder for results.csv + plot")
    args = parser.parse_args()
    rows = merge(args.csv)
    chosen = [r for r in rows if r["chosen"]]
    tasks = {r["task"] for r in chosen}
    seeds = max(len({r["seed"] for r in chosen if r["task"] == task}) for task in tasks)
    summary = report.summarize(chosen)
    print(report.markdown_table(summary, seeds))
    print()
    print(report.verdict_table(report.compare(chosen)))
    args.out.mkdir(parents=True, exist_ok=True)
    suite._write_csv(args.out / "results.csv", rows)
    with tempfile.TemporaryDirectory() as folder:  # no curves in a CSV: keep the bar plot only
        for path in report.plots(summary, {}, Path(folder)):
            if path.name == "test_metric.png":
                shutil.copy(path, args.out / path.name)
    print(f"\nwrote {args.out / 'results.csv'} and {args.out / 'test_metric.png'}")


if __name__ == "__main__":
    main()
