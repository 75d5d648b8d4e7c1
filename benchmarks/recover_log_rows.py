"""Rebuild the rows of results.csv from the progress log of a `rlmetric bench` run that was
stopped before it wrote its CSV (runs since then also write results.partial.csv as they go).

Each progress line gives task, method, seed, rate, validation and test metric, training seconds
and ms per step; a (task, method) pair without all its seeds is dropped, and the chosen rate is
the one its later seeds (2 and up, trained at the chosen rate only) used.

    python benchmarks/recover_log_rows.py run.log recovered.csv
"""

from __future__ import annotations

import csv
import re
import sys

from rlmetric.bench import TASKS
from rlmetric.bench.suite import CSV_FIELDS, _add_step_ratios

PROGRESS = re.compile(
    r"^\[\s*\d+/\d+\] (\S+)\s+(\S+)\s+seed (\d+) lr (\S+): val (\S+) test (.+?) (\S+)"
    r"\s+train\s+(\S+) s \((\S+) ms/step\)"
)


def recover(log_path: str, seeds: int = 5) -> list[dict]:
    rows = []
    with open(log_path) as f:
        for line in f:
            match = PROGRESS.match(line)
            if not match:
                continue
            task, method, seed, rate, validation, metric, test, seconds, ms = match.groups()
            rows.append(
                {
                    "task": task,
                    "method": method,
                    "seed": int(seed),
                    "learning_rate": float(rate),
                    "metric": metric,
                    "test": float(test),
                    "best_validation": float(validation),
                    "epochs": TASKS[task].epochs,
                    "train_seconds": float(seconds),
                    "step_seconds": float(ms) / 1e3,
                }
            )
    kept = []
    for pair in dict.fromkeys((r["task"], r["method"]) for r in rows):
        mine = [r for r in rows if (r["task"], r["method"]) == pair]
        if len({r["seed"] for r in mine}) < seeds:
            print("incomplete, dropped:", *pair, f"({len(mine)} runs)")
            continue
        (chosen,) = {r["learning_rate"] for r in mine if r["seed"] >= 2}
        for row in mine:
            row["chosen"] = int(row["learning_rate"] == chosen)
        kept += mine
    _add_step_ratios([r for r in kept if r["chosen"]])
    for row in kept:
        row.setdefault("step_ratio_vs_bce", float("nan"))
    return kept


if __name__ == "__main__":
    recovered = recover(sys.argv[1])
    with open(sys.argv[2], "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(recovered)
    print(len(recovered), "rows")
