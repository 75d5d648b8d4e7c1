"""The ``rlmetric`` command line: ``rlmetric bench`` runs the benchmark suite."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

QUICK_SEEDS, FULL_SEEDS = 1, 5


def _bench(args: argparse.Namespace) -> int:
    try:
        import matplotlib  # noqa: F401
        import sklearn  # noqa: F401
    except ImportError as error:
        print(
            f"rlmetric bench needs scikit-learn and matplotlib ({error.name} is missing): "
            "pip install 'rlmetric[bench]'",
            file=sys.stderr,
        )
        return 2
    from rlmetric.bench import METHODS, TASKS, run_suite

    split = lambda text: [s.strip() for s in text.split(",") if s.strip()] if text else None  # noqa: E731
    seeds = (QUICK_SEEDS if args.quick else FULL_SEEDS) if args.seeds is None else args.seeds
    try:
        rates = []
        for rate in split(args.learning_rates) or []:
            try:
                rates.append(float(rate))
            except ValueError:
                raise ValueError(
                    f"--learning-rates takes comma-separated numbers (e.g. 1e-3,3e-3); "
                    f"received {args.learning_rates!r}."
                ) from None
        run_suite(
            tasks=split(args.tasks),
            methods=split(args.methods),
            seeds=seeds,
            quick=args.quick,
            out=args.out,
            epochs=args.epochs,
            learning_rates=rates or None,
            tune_seeds=args.tune_seeds,
        )
    except ValueError as error:
        print(f"rlmetric bench: {error}", file=sys.stderr)
        print(f"tasks: {', '.join(TASKS)}\nmethods: {', '.join(METHODS)}", file=sys.stderr)
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    parser = argparse.ArgumentParser(prog="rlmetric", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    bench = commands.add_parser(
        "bench",
        help="surrogate losses vs the policy-gradient trainer on every task",
        description=(
            "Trains every method on every task it fits (same model, split and seeds), prints a "
            "Markdown table and writes results.csv, learning_curves.png and test_metric.png."
        ),
    )
    size = bench.add_mutually_exclusive_group()
    size.add_argument(
        "--quick",
        action="store_true",
        help=f"smaller data, fewer epochs, {QUICK_SEEDS} seed (minutes on 2 cores)",
    )
    size.add_argument(
        "--full", action="store_true", help=f"the full suite, {FULL_SEEDS} seeds (the default)"
    )
    bench.add_argument("--tasks", help="comma-separated task names (default: all)")
    bench.add_argument(
        "--methods", help="comma-separated method names (default: the quick or full set)"
    )
    bench.add_argument("--seeds", type=int, help="number of seeds (>= 1): seeds 0 .. N-1")
    bench.add_argument("--epochs", type=int, help="override every task's epoch count")
    bench.add_argument(
        "--learning-rates",
        help="comma-separated Adam learning rates searched by every method "
        "(default: 1e-3,3e-3,1e-2; --quick: 3e-3)",
    )
    bench.add_argument(
        "--tune-seeds",
        type=int,
        help="seeds on which the learning rate is chosen by validation metric (default: 2)",
    )
    bench.add_argument("--out", default="bench_results", help="output folder")
    bench.add_argument("--list", action="store_true", help="list tasks and methods, then exit")
    args = parser.parse_args(argv)
    if args.list:
        from rlmetric.bench import METHODS, TASKS

        for task in TASKS.values():
            print(f"task   {task.name:16s} {task.kind:15s} test {task.metric}")
        for method in METHODS.values():
            print(f"method {method.name:16s} {method.description}")
        return 0
    return _bench(args)


if __name__ == "__main__":
    sys.exit(main())
