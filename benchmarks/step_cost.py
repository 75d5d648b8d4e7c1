"""Step cost of PolicyGradientTrainer over a cross-entropy step on the same model and batch.

Measured in one run, alternating the timed steps in rounds so that load from other processes hits
both alike (median ratio, quartiles in parentheses):

* compute only: ``train_step`` in an in-graph loop (``tf.range``), where Keras' per-call overhead
  does not hide the cost of the step itself; with ``jit_compile`` the loop is compiled with its
  steps (one XLA launch), and a second column launches each step on its own inside a TF loop, as
  ``fit`` does, which adds a per-launch cost growing with the variables a step touches;
* through ``fit`` with ``steps_per_execution=32``: what a user sees.

Configurations: (a) MLP 30-64-1, batch 256, K in {1, 8, 32}, binary F1; (b) a small conv net
(3x3 convs, 16 channels) on 64x64 masks, batch 16, K in {1, 8}, binary IoU; (b') the same net
with 4 classes per pixel, mean IoU, categorical decisions (``conv_classes``, against softmax
cross-entropy: the default there is the coupled best response); (c) ranking: a
per-item MLP (10-64-1) scoring 64 lists of 100 items, K = 8 Plackett-Luce rankings, NDCG@10,
against a ListNet step; (c') ``ranking_floor``: a ListNet step that also draws the K = 8 top-10
rankings (Gumbel noise and a partial sort), the least any Plackett-Luce estimator of NDCG@10 does
in a step; each with ``jit_compile`` off and on. The trainer's default estimator
(``--estimator`` names another; REINFORCE gets the leave-one-out baseline, the moving average at
K=1).

Networks of step units (``--configs step_net``): a 64-W-10 network whose W hidden units are
hard steps (the digits task's shape), batch 64, W in {32, 128, 512}: a StepNetworkTrainer step
(REINFORCE and DisARM at K = 8, local expectation at K = 2, whose cost grows with W) over a
straight-through step of the same network.

Memory (Linux): in a fresh process per configuration, the peak resident memory during 5 training
steps (after a first step has traced the graph and built the optimizer) above the resident memory
before them, for the BCE step and the policy-gradient step at each K: it should grow linearly in K
with a small slope (the model runs once per batch; only the [K, B, ...] noise, actions and
log-probabilities are repeated). ``--large`` adds per-pixel policies on 256x256 masks (batch 8).

A user's own metric (``--configs user_metric``): the metric of the MLP (F1), the conv net (IoU)
and its 4-class form (mean IoU) written as a user would (``rlmetric.bench.user_metrics``: a TF
function; NumPy, vectorized and one call per set; the TF function declared not exchangeable, so
that a budget of 64 elements is changed per step), each trained with the trainer's defaults (its
per-element credit found by probing the function) over the built-in reward with its defaults.

Run: python benchmarks/step_cost.py [--quick] [--large] [--no-memory] [--estimator NAME]
    [--configs mlp,conv,conv_classes,ranking,ranking_floor,step_net,user_metric,decisions,
    specialists]
    [--out DIR]
Writes DIR/step_cost.csv, DIR/step_memory.csv, (step_net) DIR/step_network_cost.csv,
(user_metric) DIR/step_cost_user_metric.csv and (decisions) DIR/step_cost_decisions.csv.

Decisions (``--configs decisions``): the path-regret task's linear model, an SPO+ step and the
policy-gradient step (Gaussian policy over the costs, K = 8, the solver in the reward) over a
two-stage (mean squared error) step.

Specialists (``--configs specialists``, ``_specialists.py``): each default against the surrogate
a user would pick instead, on the same model and batch: F1 on the MLP (vs soft-F1, vs BCE),
mean IoU on the 4-class conv net (vs Lovasz-softmax), NDCG@10 on 64 lists of 100 items (vs
LambdaLoss@10, vs ListNet), a 64-128-10 step network (vs straight-through) and a user's TF F1
(vs the built-in F1's default); peak step memory at 256x256 masks and 64 lists of 1,000 items.
Writes DIR/step_cost_specialists.csv and DIR/step_memory_specialists.csv.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from _common import in_graph_step_timer, median_ratios, write_csv  # noqa: E402

from rlmetric import (  # noqa: E402
    PolicyGradientTrainer,
    decisions,
    estimators,
    policies,
    rewards,
    surrogates,
)
from rlmetric.bench import user_metrics  # noqa: E402
from rlmetric.layers import StochasticStep, StraightThroughStep  # noqa: E402
from rlmetric.plackett_luce import PlackettLuce  # noqa: E402
from rlmetric.step_networks import StepNetworkTrainer  # noqa: E402

STEPS_PER_EXECUTION = 32
MODES = ("compute", "compute_launch_per_step", "fit")


def mlp() -> keras.Model:
    return keras.Sequential(
        [keras.Input((30,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(1)]
    )


def conv(size: int, classes: int = 1) -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((size, size, 1)),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(classes, 1),
        ]
    )


def ranker(items: int = 100, features: int = 10) -> keras.Model:
    """A per-item MLP scoring lists: [B, L, F] -> [B, L]."""
    return keras.Sequential(
        [
            keras.Input((items, features)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(1),
            keras.layers.Reshape((items,)),
        ]
    )


def data(config: str, batch: int, batches: int, size: int = 64):
    rng = np.random.default_rng(0)
    if config.startswith("ranking"):  # lists of 100 items, relevance 0-4, the last 20 padding
        x = rng.normal(size=(batch * batches, 100, 10)).astype("float32")
        y = np.digitize(x[..., 0] + 0.5 * rng.normal(size=x.shape[:2]), [0.5, 1.0, 1.5, 2.0])
        y = y.astype("float32")
        y[:, 80:] = -1.0
        return x, y
    if config == "mlp":
        x = rng.normal(size=(batch * batches, 30)).astype("float32")
        y = (x[:, 0] + rng.normal(size=len(x)) > 0.8).astype("int32")
    else:
        x = rng.normal(size=(batch * batches, size, size, 1)).astype("float32")
        if config == "conv_classes":  # 4 classes by the pixel's value
            y = np.digitize(x[..., 0], [0.0, 0.7, 1.4]).astype("int32")
        else:
            y = (x > 0.5).astype("int32")
    return x, y


ESTIMATOR = "auto"  # --estimator: the trainer's default unless named


class ListNetWithDraws(keras.losses.Loss):
    """ListNet's loss, plus drawing K = 8 Plackett-Luce top-10 rankings of each list (Gumbel
    noise and a partial sort, weighted 0 in the loss): the least a Plackett-Luce estimator of
    NDCG@10 does in a step (the ``ranking_floor`` row)."""

    def __init__(self):
        super().__init__(name="listnet_with_draws")
        self.listnet = surrogates.ListNet()
        self.policy = PlackettLuce()

    def call(self, y_true, y_pred):
        # a seed read from the batch, so that the noise is drawn at run time, not folded
        seed = tf.stack([0, tf.cast(tf.reduce_sum(y_true), tf.int32)])
        logits = self.policy.mask_logits(tf.stop_gradient(y_pred), y_true)
        drawn = tf.math.top_k(self.policy.perturbed_scores(logits, 8, seed), k=10).values
        return self.listnet(y_true, y_pred) + 0.0 * tf.reduce_sum(drawn)


def build(config: str, method: str, num_samples: int, jit: bool, size: int = 64):
    keras.utils.set_random_seed(0)
    model = {
        "mlp": mlp,
        "ranking": ranker,
        "ranking_top10": ranker,
        "ranking_floor": ranker,
        "conv_classes": lambda: conv(size, 4),
    }.get(config, lambda: conv(size))()
    if method == "bce" or config == "ranking_floor":
        # the cross-entropy step: ListNet's softmax cross-entropy for ranking
        if config == "ranking_floor" and method != "bce":
            loss = ListNetWithDraws()
        elif config.startswith("ranking"):
            loss = surrogates.ListNet()
        elif config == "conv_classes":
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        else:
            loss = keras.losses.BinaryCrossentropy(from_logits=True)
        model.compile(
            optimizer="adam",
            loss=loss,
            jit_compile=jit,
            steps_per_execution=STEPS_PER_EXECUTION,
        )
        return model
    reward = {
        "mlp": "f1",
        "ranking": "ndcg@10",
        "ranking_top10": "ndcg@10",
        "conv_classes": "miou",
    }.get(config, "iou")
    policy = {"ranking": "plackett_luce", "conv_classes": "categorical"}.get(config, "bernoulli")
    if config == "ranking_top10":  # only the top 10 ranks drawn: a partial sort
        policy = PlackettLuce(top_k=10)
    estimator = (
        estimators.default_estimator(rewards.get(reward), policies.get(policy))
        if ESTIMATOR == "auto"
        else estimators.get(ESTIMATOR)
    )
    options = {}
    if estimator.uses_baseline:  # (K = 1 has no other samples to leave out)
        options["baseline"] = "leave_one_out" if num_samples > 1 else "moving_average"
    trainer = PolicyGradientTrainer(
        model,
        reward=reward,
        policy=policy,
        estimator=estimator,
        num_samples=num_samples,
        seed=0,
        **options,
    )
    trainer.compile(optimizer="adam", jit_compile=jit, steps_per_execution=STEPS_PER_EXECUTION)
    return trainer


def fit_timer(model, x, y, batch: int):
    """Seconds per step of ``fit`` over ``len(x) / batch`` steps (steps_per_execution=32)."""
    steps = len(x) // batch

    def timed() -> float:
        start = time.perf_counter()
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False)
        return (time.perf_counter() - start) / steps

    timed()
    return timed


def ratios_by_mode(models: dict, reference: str, x, y, batch, steps, rounds, jit, modes):
    """``{mode: {name: (median, q25, q75)}}``: each model's step time over ``reference``'s."""
    by_mode = {}
    for mode in modes:
        if mode == "fit":
            timers = {name: fit_timer(m, x, y, batch) for name, m in models.items()}
        else:
            launch_per_step = mode == "compute_launch_per_step"
            timers = {
                name: in_graph_step_timer(m, x[:batch], y[:batch], steps, jit, launch_per_step)
                for name, m in models.items()
            }
        by_mode[mode] = median_ratios(timers, reference, rounds)
    return by_mode


def ratio_row(ratio: tuple[float, float, float], **keys) -> dict:
    median, q25, q75 = ratio
    return {**keys, "ratio": median, "ratio_q25": q25, "ratio_q75": q75}


def time_config(config: str, batch: int, samples: list[int], jit: bool, steps: int, rounds: int):
    x, y = data(config, batch, STEPS_PER_EXECUTION * 2)
    models = {"bce": build(config, "bce", 0, jit)}
    models.update({k: build(config, "pg", k, jit) for k in samples})
    modes = MODES if jit else ("compute", "fit")
    by_mode = ratios_by_mode(models, "bce", x, y, batch, steps, rounds, jit, modes)
    return [
        ratio_row(ratios[k], config=config, batch=batch, K=k, jit=jit, mode=mode)
        for mode, ratios in by_mode.items()
        for k in samples
    ]


# --- a user's own metric (--configs user_metric) ------------------------------------------------

#: the built-in reward of each model's metric and the user-written versions timed against it
USER_CONFIGS = {
    "mlp": ("f1", user_metrics.f1_tf, user_metrics.f1_numpy, 256, 200),
    "conv": ("iou", user_metrics.iou_tf, user_metrics.iou_numpy, 16, 20),
    "conv_classes": ("miou", user_metrics.mean_iou_tf, user_metrics.mean_iou_numpy, 16, 20),
}


def per_set(vectorized_fn):
    """The per-set form of a vectorized NumPy metric: ``fn(y [N], y_pred [N]) -> float``."""

    def fn(y_true, y_pred):
        return float(vectorized_fn(y_true, y_pred[None])[0])

    fn.__name__ = f"{vectorized_fn.__name__}_per_set"
    return fn


def build_user(config: str, reward, jit: bool, x, y) -> PolicyGradientTrainer:
    """The trainer with its defaults on ``reward``, probed on the first batch as ``fit`` does."""
    keras.utils.set_random_seed(0)
    model = mlp() if config == "mlp" else conv(64, 4 if config == "conv_classes" else 1)
    policy = "categorical" if config == "conv_classes" else "bernoulli"
    trainer = PolicyGradientTrainer(model, reward=reward, policy=policy, num_samples=8, seed=0)
    trainer.compile(optimizer="adam", jit_compile=jit, steps_per_execution=STEPS_PER_EXECUTION)
    trainer._preflight(x[:256], y[:256], "x", "y")
    return trainer


def time_user_metric(config: str, jit: bool, rounds: int) -> list[dict]:
    """A user's TF and NumPy metric against the built-in reward of the same metric, all with
    the trainer's defaults (``K = 8``), and the built-in against a cross-entropy step."""
    builtin, tf_fn, numpy_fn, batch, steps = USER_CONFIGS[config]
    x, y = data(config, batch, STEPS_PER_EXECUTION * 2)
    rewards_by_name = {
        "builtin": builtin,
        "user-tf": tf_fn,
        # declared not exchangeable: a budget of 64 elements changed per step
        "user-tf-budget": rewards.CallableReward(tf_fn, exchangeable=False, budget=64),
    }
    if not jit:  # NumPy leaves the graph: no XLA
        rewards_by_name["user-numpy"] = rewards.from_numpy(numpy_fn, vectorized=True)
        rewards_by_name["user-numpy-per-set"] = rewards.from_numpy(per_set(numpy_fn))
    models = {"bce": build(config, "bce", 0, jit)}
    models.update({n: build_user(config, r, jit, x, y) for n, r in rewards_by_name.items()})
    for name, model in models.items():
        if name != "bce":
            structure = getattr(model.reward, "structure", "counts")
            print(f"{config} {name}: {model.estimator!r}, structure {structure!r}")
    by_mode = ratios_by_mode(models, "builtin", x, y, batch, steps, rounds, jit, ("compute", "fit"))
    return [
        {
            "config": config,
            "method": name,
            "jit": jit,
            "mode": mode,
            "vs_builtin": ratio[0],
            "q25": ratio[1],
            "q75": ratio[2],
            "builtin_vs_bce": 1.0 / ratios["bce"][0],
        }
        for mode, ratios in by_mode.items()
        for name, ratio in ratios.items()
        if name not in ("bce", "builtin")
    ]


def print_user_metric(rows: list[dict], rounds: int) -> None:
    print(
        f"\nA user's metric / the built-in reward of the same metric, both with the trainer's "
        f"defaults, K = 8; median of {rounds} alternating rounds (quartiles)"
    )
    print("| model | metric written as | jit | compute only | through fit | built-in / BCE (fit) |")
    print("|---|---|---|---|---|---|")
    for config in USER_CONFIGS:
        for jit in (False, True):
            for name in ("user-tf", "user-tf-budget", "user-numpy", "user-numpy-per-set"):
                cells = {
                    r["mode"]: r
                    for r in rows
                    if (r["config"], r["method"], r["jit"]) == (config, name, jit)
                }
                if not cells:
                    continue
                text = [
                    f"{c['vs_builtin']:.2f}x ({c['q25']:.2f}-{c['q75']:.2f})"
                    for c in (cells["compute"], cells["fit"])
                ]
                print(
                    f"| {config} | {name} | {'on' if jit else 'off'} | {text[0]} | {text[1]} | "
                    f"{cells['fit']['builtin_vs_bce']:.2f}x |"
                )


# --- decisions (--configs decisions) -------------------------------------------------------------


def time_decisions(jit: bool, rounds: int) -> list[dict]:
    """The path-regret task's linear model (5 -> 40 edge costs, batch 32): an SPO+ step and the
    policy-gradient step (Gaussian policy, K = 8, the 70-route solver in the reward) over the
    two-stage step (mean squared error)."""
    from rlmetric.bench.tasks import TASKS, shortest_path_optimizer

    (x, y), _, _ = TASKS["path-regret"].load(0, False)
    solver = shortest_path_optimizer()

    def linear():
        keras.utils.set_random_seed(0)
        return keras.Sequential([keras.Input((5,)), keras.layers.Dense(40)])

    models = {}
    for name, loss in (("two-stage-mse", "mse"), ("spo-plus", decisions.SPOPlus(solver))):
        models[name] = linear()
        models[name].compile(
            optimizer="adam", loss=loss, jit_compile=jit, steps_per_execution=STEPS_PER_EXECUTION
        )
    trainer = PolicyGradientTrainer(
        linear(), reward=decisions.Regret(solver), policy=policies.Gaussian(std=0.5), seed=0
    )
    trainer.compile(optimizer="adam", jit_compile=jit, steps_per_execution=STEPS_PER_EXECUTION)
    models["pg-regret"] = trainer
    by_mode = ratios_by_mode(
        models, "two-stage-mse", x, y, 32, 200, rounds, jit, ("compute", "fit")
    )
    return [
        {
            "config": "path-regret",
            "method": name,
            "jit": jit,
            "mode": mode,
            "vs_two_stage": ratio[0],
            "q25": ratio[1],
            "q75": ratio[2],
        }
        for mode, ratios in by_mode.items()
        for name, ratio in ratios.items()
        if name != "two-stage-mse"
    ]


STEP_NET_WIDTHS = (32, 128, 512)
STEP_NET_ESTIMATORS = (("reinforce", 8), ("disarm", 8), ("local_expectation", 2))


def step_network(width: int, unit) -> keras.Model:
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [keras.Input((64,)), keras.layers.Dense(width), unit(), keras.layers.Dense(10)]
    )


def time_step_networks(jit: bool, steps: int, rounds: int) -> list[dict]:
    """StepNetworkTrainer steps over a straight-through step of the same 64-W-10 network."""
    rng = np.random.default_rng(0)
    batch = 64
    x = rng.normal(size=(batch * STEPS_PER_EXECUTION * 2, 64)).astype("float32")
    y = rng.integers(0, 10, size=len(x)).astype("int32")
    rows = []
    for width in STEP_NET_WIDTHS:
        ste = step_network(width, lambda: StraightThroughStep([0.0]))
        ste.compile(
            optimizer="adam",
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=jit,
            steps_per_execution=STEPS_PER_EXECUTION,
        )
        models = {"ste": ste}
        for estimator, k in STEP_NET_ESTIMATORS:
            trainer = StepNetworkTrainer(
                step_network(width, StochasticStep), estimator=estimator, num_samples=k, seed=0
            )
            trainer.compile(
                optimizer="adam", jit_compile=jit, steps_per_execution=STEPS_PER_EXECUTION
            )
            models[estimator] = trainer
        by_mode = ratios_by_mode(models, "ste", x, y, batch, steps, rounds, jit, ("compute", "fit"))
        rows += [
            ratio_row(
                ratios[estimator],
                config=f"step_net_{width}",
                batch=batch,
                K=k,
                jit=jit,
                mode=mode,
                estimator=estimator,
            )
            for mode, ratios in by_mode.items()
            for estimator, k in STEP_NET_ESTIMATORS
        ]
    return rows


def print_step_networks(rows: list[dict], rounds: int) -> None:
    print(
        f"\nStepNetworkTrainer step / straight-through step, 64-W-10 network, batch 64, median "
        f"of {rounds} alternating rounds (quartiles)"
    )
    print("| hidden width W | estimator | K | jit | compute only | through fit |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        if r["mode"] != "compute":
            continue
        fit = next(
            f
            for f in rows
            if f["mode"] == "fit"
            and all(f[key] == r[key] for key in ("config", "estimator", "jit"))
        )
        cells = [
            f"{row['ratio']:.2f}x ({row['ratio_q25']:.2f}-{row['ratio_q75']:.2f})"
            for row in (r, fit)
        ]
        jit = "on" if r["jit"] else "off"
        width = r["config"].split("_")[-1]
        print(f"| {width} | {r['estimator']} | {r['K']} | {jit} | {' | '.join(cells)} |")


# --- memory: each measurement in a fresh process --------------------------------------------------


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0  # kB
    raise RuntimeError(f"{field} not in /proc/self/status")


def memory_probe(config: str, method: str, num_samples: int, batch: int, size: int) -> dict:
    """Run in a child process (Linux): the resident memory before a training step and its peak
    during 5 steps, after a first step has traced the graph and allocated the weights and the
    optimizer state (the peak is reset through /proc/self/clear_refs)."""
    x, y = data(config, batch, 1, size)
    model = build(config, method, num_samples, jit=False, size=size)
    step = tf.function(model.train_step)
    batch_data = (tf.constant(x), tf.constant(y))
    step(batch_data)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak (VmHWM) to the current resident size
    before = _status_mb("VmRSS")
    for _ in range(5):
        step(batch_data)
    return {"before_mb": before, "after_mb": _status_mb("VmHWM")}


def measure_memory(config: str, method: str, num_samples: int, batch: int, size: int) -> dict:
    command = [
        sys.executable,
        __file__,
        "--estimator",
        ESTIMATOR,
        "--memory-probe",
        json.dumps([config, method, num_samples, batch, size]),
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    probe = json.loads(output.strip().splitlines()[-1])
    return {
        "config": config,
        "size": size,
        "batch": batch,
        "method": method,
        "K": num_samples,
        "peak_rss_mb": round(probe["after_mb"], 1),
        "step_peak_mb": round(probe["after_mb"] - probe["before_mb"], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and steps")
    parser.add_argument("--large", action="store_true", help="also 256x256 masks, K=8 (memory)")
    parser.add_argument("--out", default="bench_step_cost")
    parser.add_argument(
        "--estimator",
        default="auto",
        help="the policy-gradient estimator timed (default: the trainer's, 'auto')",
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the memory probes")
    parser.add_argument(
        "--configs",
        default="mlp,conv,ranking,ranking_top10",
        help="which models to time (the ranking row compares with a ListNet step; step_net, "
        "networks of step units against a straight-through step, is run only when named)",
    )
    parser.add_argument("--memory-probe", help=argparse.SUPPRESS)
    parser.add_argument("--specialist-memory-probe", help=argparse.SUPPRESS)
    args = parser.parse_args()
    global ESTIMATOR
    ESTIMATOR = args.estimator
    if args.memory_probe:
        print(json.dumps(memory_probe(*json.loads(args.memory_probe))))
        return
    if args.specialist_memory_probe:
        import _specialists

        print(json.dumps(_specialists.memory_probe(*json.loads(args.specialist_memory_probe))))
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rounds, steps = (5, 50) if args.quick else (9, 200)

    configs = args.configs.split(",")
    if "specialists" in configs:
        import _specialists

        _specialists.run(out, rounds, max(steps // 10, 10), memory=not args.no_memory)
        if configs == ["specialists"]:
            return
    rows = []
    for jit in (False, True):
        if "mlp" in configs:
            rows += time_config("mlp", 256, [1, 8, 32], jit, steps, rounds)
        if "conv" in configs:
            rows += time_config("conv", 16, [1, 8], jit, max(steps // 10, 10), rounds)
        if "conv_classes" in configs:
            rows += time_config("conv_classes", 16, [8], jit, max(steps // 10, 10), rounds)
        for config in ("ranking", "ranking_top10", "ranking_floor"):
            if config in configs:
                rows += time_config(config, 64, [8], jit, max(steps // 4, 10), rounds)
    if "user_metric" in configs:
        user_rows = [
            r
            for jit in (False, True)
            for c in USER_CONFIGS
            for r in time_user_metric(c, jit, rounds)
        ]
        write_csv(out / "step_cost_user_metric.csv", user_rows)
        print_user_metric(user_rows, rounds)
        if configs == ["user_metric"]:
            return
    if "decisions" in configs:
        decision_rows = [r for jit in (False, True) for r in time_decisions(jit, rounds)]
        write_csv(out / "step_cost_decisions.csv", decision_rows)
        print(
            f"\nStep time over a two-stage (MSE) step, path-regret's linear model, batch 32, "
            f"median of {rounds} alternating rounds (quartiles)"
        )
        print("| method | jit | compute only | through fit |")
        print("|---|---|---|---|")
        for row in decision_rows:
            if row["mode"] == "compute":
                fit = next(
                    r
                    for r in decision_rows
                    if (r["method"], r["jit"], r["mode"]) == (row["method"], row["jit"], "fit")
                )
                print(
                    f"| {row['method']} | {'on' if row['jit'] else 'off'} | "
                    f"{row['vs_two_stage']:.2f}x ({row['q25']:.2f}-{row['q75']:.2f}) | "
                    f"{fit['vs_two_stage']:.2f}x ({fit['q25']:.2f}-{fit['q75']:.2f}) |"
                )
        if configs == ["decisions"]:
            return
    if "step_net" in configs:
        step_rows = [r for jit in (False, True) for r in time_step_networks(jit, steps, rounds)]
        write_csv(out / "step_network_cost.csv", step_rows)
        print_step_networks(step_rows, rounds)
        if configs == ["step_net"]:
            return
    write_csv(out / "step_cost.csv", rows)
    print(
        f"\nPolicy-gradient step (estimator={ESTIMATOR!r}) / BCE step, median of {rounds} "
        "alternating rounds (quartiles)"
    )
    print(
        "| model | K | jit | compute only | compute, one XLA launch per step "
        "| through fit (steps_per_execution=32) |"
    )
    print("|---|---|---|---|---|---|")
    labels = (
        ("mlp", "MLP 30-64-1, batch 256"),
        ("conv", "conv 64x64, batch 16"),
        ("conv_classes", "conv 64x64, 4 classes, mean IoU (vs softmax cross-entropy)"),
        ("ranking", "ranking: per-item MLP, 64 lists x 100 items (vs a ListNet step)"),
        ("ranking_top10", "ranking, PlackettLuce(top_k=10): only the top 10 ranks drawn"),
        (
            "ranking_floor",
            "ranking floor: a ListNet step that also draws the K top-10 rankings (no estimator)",
        ),
    )
    for config, label in labels:
        for jit in (False, True):
            for k in sorted({r["K"] for r in rows if r["config"] == config}):
                cells = []
                for mode in MODES:
                    r = next(
                        (
                            r
                            for r in rows
                            if (r["config"], r["K"], r["jit"], r["mode"]) == (config, k, jit, mode)
                        ),
                        None,
                    )
                    cells.append(
                        "-"
                        if r is None
                        else f"{r['ratio']:.2f}x ({r['ratio_q25']:.2f}-{r['ratio_q75']:.2f})"
                    )
                print(f"| {label} | {k} | {'on' if jit else 'off'} | {' | '.join(cells)} |")

    if args.no_memory:
        print(f"\nwrote {out / 'step_cost.csv'}")
        return
    memory = [measure_memory("mlp", "bce", 0, 256, 0)]
    memory += [measure_memory("mlp", "pg", k, 256, 0) for k in (1, 8, 32)]
    memory += [measure_memory("conv", "bce", 0, 16, 64)]
    memory += [measure_memory("conv", "pg", k, 16, 64) for k in (1, 8)]
    if args.large:
        memory += [measure_memory("conv", "bce", 0, 8, 256)]
        memory += [measure_memory("conv", "pg", k, 8, 256) for k in (1, 8)]
    write_csv(out / "step_memory.csv", memory)
    print("\nPeak resident memory of a fresh process over 5 training steps")
    print("| model | method | K | peak RSS (MB) | step peak above resident (MB) |")
    print("|---|---|---|---|---|")
    for m in memory:
        model = (
            f"{m['config']} {m['size']}x{m['size']}, batch {m['batch']}"
            if m["size"]
            else (f"MLP, batch {m['batch']}")
        )
        print(
            f"| {model} | {m['method']} | {m['K'] or '-'} | {m['peak_rss_mb']} | "
            f"{m['step_peak_mb']} |"
        )
    print(f"\nwrote {out / 'step_cost.csv'}, {out / 'step_memory.csv'}")


if __name__ == "__main__":
    main()
