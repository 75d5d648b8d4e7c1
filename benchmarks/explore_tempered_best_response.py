"""Exploration (measured, not kept as a library option): the best response tempered toward the
exact local gradient.

For a Bernoulli decision with label ``y`` the exact gradient of ``E[R]`` with respect to its
logit is ``p(1 - p) (R_1 - R_0)``, the best response's is ``(1 - p_y) |R_1 - R_0|`` (up to the
normalisation): the exact gradient is the best response's times ``p_y``, the probability of the
right decision, which is what makes it vanish on confidently wrong elements. This script weights
the best response by ``p_y^gamma`` (``gamma = 0``: the trainer's default; ``gamma = 1``: the
exact gradient's per-element scale, with the best response's context), for the whole run rather
than after a switch (``rlmetric.callbacks.SwitchEstimator``). The mean IoU of categorical
decisions keeps the trainer's coupled context.

    python benchmarks/explore_tempered_best_response.py --gamma 0.5 \
        --tasks imbalanced-f1,multilabel-f1,cancer-f1,digits-f1,shapes-iou,shapes-miou,steps

writes ``results.csv`` of method ``pg-tempered`` with the bench's protocol (same rate grid, 5
seeds) and prints its paired test difference against the methods of ``--compare`` (default:
``benchmarks/results/results.csv``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import tensorflow as tf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_paired_against  # noqa: E402

from rlmetric import estimators  # noqa: E402
from rlmetric.bench import methods as bench_methods  # noqa: E402
from rlmetric.bench.suite import run_suite  # noqa: E402


class TemperedBestResponse(estimators.LocalBestResponse):
    """The best response's weights times ``p(target)^gamma`` (held constant)."""

    def __init__(self, gamma: float, context: str = "mode") -> None:
        super().__init__(context=context)
        self.gamma = gamma

    def weights_and_targets(self, logits, y_true, *, policy, reward, num_samples, seed=None):
        weights, targets, actions = super().weights_and_targets(
            logits, y_true, policy=policy, reward=reward, num_samples=num_samples, seed=seed
        )
        crossentropy = policy.crossentropy(tf.stop_gradient(logits), targets)  # -log p(target)
        tempered = weights * tf.exp(-self.gamma * tf.reshape(crossentropy, [-1]))
        return tf.stop_gradient(tempered), targets, actions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gamma", type=float, default=0.5)
    parser.add_argument("--tasks", default="imbalanced-f1,shapes-iou")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("bench_tempered"))
    parser.add_argument("--compare", type=Path, default=Path("benchmarks/results/results.csv"))
    args = parser.parse_args()

    def train(task, data, seed, epochs, learning_rate):
        context = "coupled" if task.kind == "multiclass-seg" else "mode"
        estimator = TemperedBestResponse(args.gamma, context)
        return bench_methods._policy_gradient(estimator)(task, data, seed, epochs, learning_rate)

    bench_methods.METHODS["pg-tempered"] = bench_methods.Method(
        "pg-tempered",
        f"the best response weighted by p(target)^{args.gamma} (exploration)",
        bench_methods.ALL_KINDS,
        train,
    )
    rows = run_suite(
        tasks=args.tasks.split(","), methods=["pg-tempered"], seeds=args.seeds, out=args.out
    )
    references = ("pg-best-response", "pg-switch", "soft-f1", "lovasz", "straight-through")
    print_paired_against(rows, "pg-tempered", args.compare, references)


if __name__ == "__main__":
    main()
