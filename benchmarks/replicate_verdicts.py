"""A confirmation run of the suite's verdicts on fresh seeds.

The committed verdicts (``results/results.csv``: the best policy-gradient method against the
best surrogate, each picked by mean validation metric, paired over seeds 0-4) are the
hypotheses. This script re-trains each verdict's two methods at the learning rates the protocol
chose for them, on seeds the committed run never used (``--first-seed``, default 5: new data
splits, new generated data, new initial weights), and reports the paired difference on those
seeds alone. The fresh seeds are the test; pooling them with seeds 0-4, which picked the
methods and the rates, would not be.

Several tasks are tested at once, so the table also gives each test's two-sided p-value and its
Holm-adjusted value (family: the tasks run together).

    python benchmarks/replicate_verdicts.py --seeds 10 --out bench_replication
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import COMMITTED_RESULTS, read_rows, write_csv  # noqa: E402

from rlmetric.bench import methods as bench_methods  # noqa: E402
from rlmetric.bench.report import (  # noqa: E402
    compare,
    format_difference,
    holm_adjusted,
    metric_by_seed,
    paired_by_seed,
)
from rlmetric.bench.tasks import TASKS  # noqa: E402


def _against(verdict: dict, reference: str, committed: list[dict]) -> dict:
    """``verdict`` (a :func:`compare` row) with ``reference`` in place of its surrogate: the
    committed paired difference recomputed against it."""
    task = verdict["task"]
    theirs = metric_by_seed(committed, task, reference)
    if not theirs:
        raise ValueError(
            f"--reference {reference!r} has no chosen runs on {task!r} in {COMMITTED_RESULTS}."
        )
    mine = metric_by_seed(committed, task, verdict["method"])
    return {**verdict, **paired_by_seed(mine, theirs), "reference": reference}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=None, help="comma-separated (default: every verdict)")
    parser.add_argument("--seeds", type=int, default=10, help="number of fresh seeds")
    parser.add_argument("--first-seed", type=int, default=5)
    parser.add_argument(
        "--reference",
        default=None,
        help="test the best policy-gradient method against this method instead of the best "
        "surrogate (at the rate it chose in the committed run)",
    )
    parser.add_argument("--out", type=Path, default=Path("bench_replication"))
    args = parser.parse_args()
    committed = [r for r in read_rows(COMMITTED_RESULTS) if r["chosen"]]
    rates = {(r["task"], r["method"]): r["learning_rate"] for r in committed}
    verdicts = [c for c in compare(committed) if c["kind"] == "best"]
    if args.tasks:
        verdicts = [c for c in verdicts if c["task"] in args.tasks.split(",")]
    if args.reference:
        verdicts = [_against(v, args.reference, committed) for v in verdicts]
    args.out.mkdir(parents=True, exist_ok=True)
    fresh = range(args.first_seed, args.first_seed + args.seeds)
    rows = []
    for verdict in verdicts:
        task = TASKS[verdict["task"]]
        for seed in fresh:
            data = task.load(seed, False)
            (_, _), (x_val, y_val), (x_test, y_test) = data
            for method_name in (verdict["method"], verdict["reference"]):
                rate = rates[(task.name, method_name)]
                method = bench_methods.METHODS[method_name]
                result = method.train(task, data, seed, task.epochs, rate)
                scores = {
                    split: task.score(y, result.decide(bench_methods.predict(result.model, x)))
                    for split, x, y in (("validation", x_val, y_val), ("test", x_test, y_test))
                }
                rows.append(
                    {"task": task.name, "method": method_name, "seed": seed, "rate": rate} | scores
                )
                print(
                    f"{task.name:14s} {method_name:18s} seed {seed:2d} lr {rate:g}: "
                    f"val {scores['validation']:.4f} test {scores['test']:.4f}",
                    flush=True,
                )
                write_csv(args.out / "replication.csv", rows)
    _report(verdicts, rows)


def _report(verdicts: list[dict], rows: list[dict]) -> None:
    tests = []
    for v in verdicts:
        mine = metric_by_seed(rows, v["task"], v["method"])
        theirs = metric_by_seed(rows, v["task"], v["reference"])
        tests.append((v, paired_by_seed(mine, theirs)))
    adjusted = holm_adjusted([difference["p"] for _, difference in tests])
    print(
        "\n| task | best PG - surrogate | seeds 0-4 (committed) | fresh seeds "
        "(95% interval) | verdict | p | Holm p |"
    )
    print("|---|---|---|---|---|---|---|")
    for (v, difference), holm in zip(tests, adjusted, strict=True):
        print(
            f"| {v['task']} | {v['method']} - {v['reference']} | {format_difference(v)} "
            f"{v['verdict']} | {format_difference(difference)} | {difference['verdict']} "
            f"({difference['seeds']} seeds) | {difference['p']:.3f} | {holm:.3f} |"
        )


if __name__ == "__main__":
    main()
