"""The trainer's default against the specialist a user would pick instead (issue 29).

Each pair trains the same model on the same batches: the default is what a user who sets only
the reward and the policy gets (``PolicyGradientTrainer(model, reward=..., policy=...)``, every
other argument left out; ``StepNetworkTrainer(model)``); the specialist is the surrogate loss
that the suite ties it with, compiled on the bare model. Timed side by side in alternating
rounds (``_common.median_ratios``), compute only (an in-graph loop of ``train_step``) and
through ``fit`` (``steps_per_execution=32``), XLA off and on. Peak step memory in a fresh process
per method for the two large shapes: the conv net at 256x256 and 64 lists of 1,000 items.

Used by ``step_cost.py --configs specialists``.
"""

from __future__ import annotations

import keras
import numpy as np

from rlmetric import PolicyGradientTrainer, surrogates
from rlmetric.bench import user_metrics
from rlmetric.layers import StochasticStep, StraightThroughStep
from rlmetric.step_networks import StepNetworkTrainer

STEPS_PER_EXECUTION = 32

#: (config, model, batch, default, specialists): the default's reward and policy
CONFIGS = {
    "f1_mlp": ("mlp", 256, ("f1", "bernoulli"), ("soft_f1", "bce")),
    "miou_conv": ("conv_classes", 16, ("miou", "categorical"), ("lovasz_softmax",)),
    "ndcg10_lists": ("ranking", 64, ("ndcg@10", "plackett_luce"), ("lambdaloss", "listnet")),
    "step_net_128": ("step_net", 64, (None, None), ("straight_through",)),
    "user_tf_f1_mlp": ("mlp", 256, (user_metrics.f1_tf, "bernoulli"), ("builtin_default",)),
}


def specialist_loss(name: str) -> keras.losses.Loss:
    return {
        "soft_f1": lambda: surrogates.SoftF1(),
        "bce": lambda: keras.losses.BinaryCrossentropy(from_logits=True),
        "lovasz_softmax": lambda: surrogates.LovaszSoftmax(),
        "lambdaloss": lambda: surrogates.LambdaLoss(k=10),
        "listnet": lambda: surrogates.ListNet(),
        "straight_through": lambda: keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    }[name]()


def step_network(unit, width: int = 128) -> keras.Model:
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [keras.Input((64,)), keras.layers.Dense(width), unit(), keras.layers.Dense(10)]
    )


def make_model(kind: str, size: int) -> keras.Model:
    from step_cost import conv, mlp, ranker

    keras.utils.set_random_seed(0)
    if kind == "mlp":
        return mlp()
    if kind == "conv_classes":
        return conv(size, 4)
    return ranker(items=size)


def make_data(kind: str, batch: int, size: int, batches: int = STEPS_PER_EXECUTION * 2):
    """``batches`` batches of the configuration's inputs and labels."""
    from step_cost import data

    if kind == "step_net":
        rng = np.random.default_rng(0)
        x = rng.normal(size=(batch * batches, 64)).astype("float32")
        return x, rng.integers(0, 10, size=len(x)).astype("int32")
    if kind == "ranking" and size != 100:  # lists of `size` items, the last fifth padding
        rng = np.random.default_rng(0)
        x = rng.normal(size=(batch * batches, size, 10)).astype("float32")
        noisy = x[..., 0] + 0.5 * rng.normal(size=x.shape[:2])
        y = np.digitize(noisy, [0.5, 1.0, 1.5, 2.0]).astype("float32")
        y[:, size * 4 // 5 :] = -1.0
        return x, y
    return data(kind, batch, batches, size)


def build(config: str, method: str, jit: bool, size: int | None = None):
    """The compiled model of ``method`` ("default" or a specialist's name) for ``config``."""
    kind, _, (reward, policy), _ = CONFIGS[config]
    size = size or (100 if kind == "ranking" else 64)
    compile_args = {"jit_compile": jit, "steps_per_execution": STEPS_PER_EXECUTION}
    if kind == "step_net":
        if method == "default":
            trainer = StepNetworkTrainer(step_network(StochasticStep), seed=0)
            trainer.compile(optimizer="adam", **compile_args)
            return trainer
        model = step_network(lambda: StraightThroughStep([0.0]))
        model.compile(optimizer="adam", loss=specialist_loss(method), **compile_args)
        return model
    if method == "builtin_default":  # the user's metric's built-in twin, with its defaults
        reward = "f1"
    elif method != "default":
        model = make_model(kind, size)
        model.compile(optimizer="adam", loss=specialist_loss(method), **compile_args)
        return model
    trainer = PolicyGradientTrainer(make_model(kind, size), reward=reward, policy=policy, seed=0)
    trainer.compile(optimizer="adam", **compile_args)
    return trainer


def time_pair(config: str, jit: bool, rounds: int, steps: int) -> list[dict]:
    """One row per specialist of ``config``: the default's step time over the specialist's."""
    from step_cost import ratios_by_mode

    kind, batch, _, specialists = CONFIGS[config]
    x, y = make_data(kind, batch, 100 if kind == "ranking" else 64)
    models = {"default": build(config, "default", jit)}
    models.update({name: build(config, name, jit) for name in specialists})
    if isinstance(models["default"], PolicyGradientTrainer):
        models["default"]._preflight(x[:batch], y[:batch], "x", "y")  # probes, as fit does
        print(f"{config}: default estimator {models['default'].estimator!r}")
    rows = []
    for name in specialists:  # each specialist in its own alternating rounds with the default
        pair = {"default": models["default"], name: models[name]}
        by_mode = ratios_by_mode(pair, name, x, y, batch, steps, rounds, jit, ("compute", "fit"))
        compute, fit = by_mode["compute"]["default"], by_mode["fit"]["default"]
        rows.append(
            {
                "config": config,
                "default": _default_name(config, models["default"]),
                "specialist": name,
                "jit": jit,
                "compute_ratio": compute[0],
                "compute_q25": compute[1],
                "compute_q75": compute[2],
                "fit_ratio": fit[0],
                "fit_q25": fit[1],
                "fit_q75": fit[2],
            }
        )
    return rows


def _default_name(config: str, trainer) -> str:
    estimator = getattr(trainer.estimator, "name", str(trainer.estimator))
    return f"{estimator} K={trainer.num_samples}"


#: (config, specialist, size, batch) of the memory table
MEMORY_CASES = (("miou_conv", "lovasz_softmax", 256, 8), ("ndcg10_lists", "listnet", 1000, 64))


def memory_probe(config: str, method: str, size: int, batch: int) -> dict:
    """In a fresh process (Linux): resident memory before 5 training steps and its peak during
    them, after a first step has traced the graph and built the optimizer."""
    import tensorflow as tf
    from step_cost import _status_mb

    kind = CONFIGS[config][0]
    x, y = make_data(kind, batch, size, batches=1)
    model = build(config, method, jit=False, size=size)
    if isinstance(model, PolicyGradientTrainer):
        model._preflight(x, y, "x", "y")
    step = tf.function(model.train_step)
    batch_data = (tf.constant(x), tf.constant(y))
    step(batch_data)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak (VmHWM) to the current resident size
    before = _status_mb("VmRSS")
    for _ in range(5):
        step(batch_data)
    return {"before_mb": before, "after_mb": _status_mb("VmHWM")}


def measure_memory(config: str, method: str, size: int, batch: int) -> dict:
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).with_name("step_cost.py")
    probe = json.dumps([config, method, size, batch])
    command = [sys.executable, str(script), "--specialist-memory-probe", probe]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    result = json.loads(output.strip().splitlines()[-1])
    return {
        "config": config,
        "size": size,
        "batch": batch,
        "method": method,
        "peak_rss_mb": round(result["after_mb"], 1),
        "step_peak_mb": round(result["after_mb"] - result["before_mb"], 1),
    }


def run(out, rounds: int, steps: int, memory: bool) -> None:
    """Times every pair (XLA off, then on), prints the table and writes
    ``out/step_cost_specialists.csv`` (and ``step_memory_specialists.csv``)."""
    from _common import write_csv

    rows = [
        row
        for jit in (False, True)
        for config in CONFIGS
        for row in time_pair(config, jit, rounds, steps)
    ]
    write_csv(out / "step_cost_specialists.csv", rows)
    print(
        f"\nThe default's step over its specialist's, same model and batch, median of {rounds} "
        "alternating rounds (quartiles)"
    )
    print("| config | default | specialist | jit | compute only | through fit |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['config']} | {r['default']} | {r['specialist']} | "
            f"{'on' if r['jit'] else 'off'} | "
            f"{r['compute_ratio']:.2f}x ({r['compute_q25']:.2f}-{r['compute_q75']:.2f}) | "
            f"{r['fit_ratio']:.2f}x ({r['fit_q25']:.2f}-{r['fit_q75']:.2f}) |"
        )
    if not memory:
        return
    cases = [
        measure_memory(config, method, size, batch)
        for config, specialist, size, batch in MEMORY_CASES
        for method in ("default", specialist)
    ]
    write_csv(out / "step_memory_specialists.csv", cases)
    print("\nPeak step memory (fresh process, 5 steps after the first)")
    print("| config | size | batch | method | peak RSS (MB) | step peak above resident (MB) |")
    print("|---|---|---|---|---|---|")
    for m in cases:
        print(
            f"| {m['config']} | {m['size']} | {m['batch']} | {m['method']} | "
            f"{m['peak_rss_mb']} | {m['step_peak_mb']} |"
        )
