"""Pieces shared by the benchmark scripts."""

from __future__ import annotations

import time

import numpy as np
import tensorflow as tf


def in_graph_step_timer(model, x, y, steps: int = 100):
    """A function timing ``model.train_step`` in an in-graph loop on one batch (seconds per
    step): Keras' per-call overhead is left out, so the compute of the step itself shows."""
    xb, yb = tf.constant(x), tf.constant(y)

    @tf.function
    def loop():
        for _ in tf.range(steps):
            model.train_step((xb, yb))

    def timed() -> float:
        start = time.perf_counter()
        loop()
        return (time.perf_counter() - start) / steps

    timed()  # trace and warm up
    return timed


def median_ratios(timers: dict, reference: str, rounds: int = 7) -> dict[str, float]:
    """Times every timer in alternating rounds and returns the median ratio of each to the
    ``reference`` timer, so that load from other processes hits all of them alike."""
    times = {name: [] for name in timers}
    for _ in range(rounds):
        for name, timer in timers.items():
            times[name].append(timer())
    return {
        name: float(np.median(np.divide(values, times[reference])))
        for name, values in times.items()
    }
