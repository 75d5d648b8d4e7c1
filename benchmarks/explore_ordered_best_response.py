"""Exploration (not a library estimator yet): the best response with the decisions *coupled*.

The best response (`rlmetric.estimators.LocalBestResponse`) weights each element's
cross-entropy toward its label by the metric's gain from that decision, with the other
decisions held at one context (the mode). This script tries another context: all decisions
drawn with ONE shared uniform u, element i wrong iff u < e_i, where e_i = |1[label] - p_i|. That
coupling keeps each element's probability of being wrong, and its expected Jaccard loss is the
Lovasz extension (Berman et al. 2018). So the gain of element i is the Jaccard loss's marginal
gain at i's place in the order of decreasing error (the Lovasz gradient). The worst decisions
get the largest gains, not one gain for every pixel of a class. Here those gains weight a
cross-entropy toward the label, which does not saturate as the Lovasz loss's linear form does.

Implemented for Jaccard rewards only: binary IoU (Bernoulli, one list) and mean IoU over classes
(categorical, one one-vs-rest list per class present), on the global batch of one device. A
library version would need any count reward (prefix counts along the order), the global order
under tf.distribute and the usual tests.

    python benchmarks/explore_ordered_best_response.py --tasks shapes-miou,shapes-iou \
        --out bench_ordered

writes `results.csv` of method `pg-ordered` with the bench's protocol (same rate grid, 5 seeds),
and prints its paired test difference against the methods of `--compare` (default:
`benchmarks/results/results.csv`).
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
from rlmetric.surrogates import lovasz_jaccard_gradient  # noqa: E402


class OrderedJaccardBestResponse(estimators.Estimator):
    """Cross-entropy toward the labels, weighted by the Lovasz-order Jaccard gains.

    Logits ``[B, ...]`` (Bernoulli: binary IoU of the positive class) or ``[B, ..., C]``
    (categorical: mean IoU over the classes present in the batch). The reward and baseline are
    only used for the logged reward of the mode.
    """

    name = "ordered_best_response"

    def __call__(
        self, logits, y_true, *, policy, reward, baseline, baseline_state, num_samples, seed=None
    ):
        if policy.name == "bernoulli":
            flat_logits = tf.reshape(logits, [-1])
            labels = tf.reshape(tf.cast(y_true, tf.float32), [-1])
            targets = labels[None]  # [1, N]: one list, the positive class
            probabilities = tf.sigmoid(tf.stop_gradient(flat_logits))[None]
            crossentropy = tf.nn.sigmoid_cross_entropy_with_logits(
                labels=labels, logits=flat_logits
            )
        else:
            num_classes = logits.shape[-1]
            flat_logits = tf.reshape(logits, [-1, num_classes])
            labels = tf.reshape(tf.cast(y_true, tf.int32), [-1])
            targets = tf.transpose(tf.one_hot(labels, num_classes))  # [C, N] one-vs-rest lists
            probabilities = tf.transpose(tf.nn.softmax(tf.stop_gradient(flat_logits)))
            crossentropy = tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=labels, logits=flat_logits
            )
        errors = tf.abs(targets - probabilities)
        order = tf.argsort(errors, axis=1, direction="DESCENDING")
        gains = lovasz_jaccard_gradient(tf.gather(targets, order, batch_dims=1))
        gains = tf.gather(gains, tf.argsort(order, axis=1), batch_dims=1)  # back to element order
        present = tf.cast(tf.reduce_sum(targets, axis=1, keepdims=True) > 0, gains.dtype)
        weights = tf.stop_gradient(tf.reduce_sum(gains * present, axis=0))  # [N]
        loss = tf.math.divide_no_nan(tf.reduce_sum(weights * crossentropy), tf.reduce_sum(weights))
        actions = policy.mode(tf.stop_gradient(logits))[None]
        rewards = reward(y_true, actions)
        return estimators.EstimatorOutput(
            loss, rewards, rewards - tf.reduce_mean(rewards), baseline_state, actions
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="shapes-miou,shapes-iou")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("bench_ordered"))
    parser.add_argument("--compare", type=Path, default=Path("benchmarks/results/results.csv"))
    args = parser.parse_args()
    bench_methods.METHODS["pg-ordered"] = bench_methods.Method(
        "pg-ordered",
        "cross-entropy weighted by the Lovasz-order Jaccard gains (exploration)",
        ("binary-seg", "multiclass-seg"),
        bench_methods._policy_gradient(OrderedJaccardBestResponse()),
    )
    rows = run_suite(
        tasks=args.tasks.split(","), methods=["pg-ordered"], seeds=args.seeds, out=args.out
    )
    print_paired_against(rows, "pg-ordered", args.compare, ("lovasz", "pg-best-response", "bce"))


if __name__ == "__main__":
    main()
