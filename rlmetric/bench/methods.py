"""Benchmark methods: how each competitor trains a task's model and turns outputs into decisions.

Every method trains the task's body with its own head on the same split and keeps the weights
of the epoch with the best validation metric (the same hard decisions as at test time), with Adam
at the learning rate the suite passes. The policy-gradient methods use
[`rlmetric.PolicyGradientTrainer`][rlmetric.PolicyGradientTrainer] with ``K = 8`` samples
(``pg-best-response`` is the
trainer with its defaults); the surrogates are the losses of
[`rlmetric.surrogates`][rlmetric.surrogates] and
[`rlmetric.layers`][rlmetric.layers].
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from rlmetric import decisions, estimators, layers, policies, ranking, surrogates, thresholds
from rlmetric import rewards as rewards_lib
from rlmetric.bench import user_metrics
from rlmetric.bench.tasks import (
    HIT_WINDOW,
    KNAPSACK_PENALTY,
    STEP_THRESHOLDS,
    TOP_FRACTION,
    TOP_LIST,
    Task,
    knapsack_optimizer,
    shortest_path_optimizer,
)
from rlmetric.callbacks import SwitchEstimator
from rlmetric.trainer import PolicyGradientTrainer

__all__ = ["Method", "METHODS", "FitResult", "exact_level_reward"]

NUM_SAMPLES = 8
#: the tasks whose model predicts quantities (costs, weights, a target) that a decision uses
REGRESSION_KINDS = ("path", "knapsack", "hit")
#: the standard deviation of the Gaussian policy over those predictions
GAUSSIAN_NOISE = {"path": 0.5, "knapsack": 0.3, "hit": HIT_WINDOW}
SIGMOID_KINDS = ("binary", "multilabel", "binary-seg", "campaign")
ALL_KINDS = SIGMOID_KINDS + ("multiclass-seg", "steps")
RANKING = ("ranking",)
#: precision among the top-scored examples: lists for training, BCE applies to their items
TOP = ("top",)


@dataclass
class FitResult:
    """A trained model (best validation epoch) and what the run measured."""

    model: keras.Model  # outputs of the head: logits, or the pre-step score
    curve: list[float]  # validation metric after each epoch
    seconds: float  # training time, validation passes excluded
    step_seconds: float  # median over epochs (the first, which traces, left out) per step
    decide: Callable[[np.ndarray], np.ndarray]


class _BestEpoch(keras.callbacks.Callback):
    """Scores the validation set after every epoch with the method's hard decisions, keeps the
    best weights, and times the epochs without its own validation passes."""

    def __init__(self, task: Task, model: keras.Model, x_val, y_val, decide, steps_per_epoch):
        super().__init__()
        self.task, self.target, self.x_val, self.y_val = task, model, x_val, y_val
        self.decide, self.steps_per_epoch = decide, steps_per_epoch
        self.best, self.best_weights, self.curve, self.epoch_seconds = -math.inf, None, [], []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_seconds.append(time.perf_counter() - self._start)
        score = self.task.score(self.y_val, self.decide(predict(self.target, self.x_val)))
        self.curve.append(score)
        if score > self.best:
            self.best, self.best_weights = score, self.target.get_weights()

    def result(self) -> FitResult:
        self.target.set_weights(self.best_weights)
        later = self.epoch_seconds[1:] or self.epoch_seconds
        return FitResult(
            self.target,
            self.curve,
            float(sum(self.epoch_seconds)),
            float(np.median(later)) / self.steps_per_epoch,
            self.decide,
        )


def predict(model: keras.Model, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """The model's outputs on ``x`` by direct calls (no ``predict`` tracing per model)."""
    parts = [
        keras.ops.convert_to_numpy(model(x[i : i + batch_size], training=False))
        for i in range(0, len(x), batch_size)
    ]
    return np.concatenate(parts)


# --- heads and decisions -----------------------------------------------------------------------


def _build(task: Task, x_train, y_train, seed: int, head: str = "classes") -> keras.Model:
    """The task's body with the method's head; ``head`` picks the steps task's output: 5 level
    logits (``classes``), a score for a step layer (``score``) or 4 step logits (``steps``)."""
    keras.utils.set_random_seed(seed)  # same body weights for every method of a seed
    # lists of any length for top-precision (training lists, then one list of a whole set)
    body = task.body((None, x_train.shape[-1]) if task.kind == "top" else x_train.shape[1:])
    if task.kind == "binary-seg":
        layer = keras.layers.Conv2D(1, 1)
    elif task.kind == "multiclass-seg":
        layer = keras.layers.Conv2D(task.classes, 1)
    elif task.kind in ("multilabel", "path", "knapsack"):
        layer = keras.layers.Dense(y_train.shape[1])
    elif task.kind == "steps":
        layer = keras.layers.Dense({"classes": 5, "score": 1, "steps": 4}[head])
    elif task.kind in ("ranking", "top"):  # one score per item: [Q, L, H] -> [Q, L]
        scores = keras.layers.Dense(1)(body.output)
        shape = (-1,) if task.kind == "top" else tuple(y_train.shape[1:])
        return keras.Model(body.input, keras.layers.Reshape(shape)(scores))
    else:
        layer = keras.layers.Dense(1)
    return keras.Model(body.input, layer(body.output))


def _threshold_decide(threshold=0.0):
    def decide(outputs):
        decisions = (outputs > threshold).astype("int32")
        return decisions[..., 0] if decisions.shape[-1] == 1 and decisions.ndim == 2 else decisions

    return decide


def _argmax_decide(outputs):
    return outputs.argmax(-1).astype("int32")


def _level_decide(outputs):  # the hard staircase of the score: its level index
    return np.digitize(outputs[..., 0], STEP_THRESHOLDS).astype("int32")


def _count_decide(outputs):  # Bernoulli per step: the level is the number of steps taken
    return (outputs > 0).sum(-1).astype("int32")


def _scores_decide(outputs):  # rankings are read from the scores by the task's metric
    return outputs


def _path_decide(outputs):  # the shortest path under the predicted costs
    return keras.ops.convert_to_numpy(shortest_path_optimizer()(outputs))


def _knapsack_decide(safety: float = 1.0):
    def decide(outputs):  # pack the items by their predicted weights
        return keras.ops.convert_to_numpy(knapsack_optimizer(safety)(outputs))

    return decide


def _value_decide(outputs):  # a regression's prediction is its decision
    return outputs


def _default_decide(task: Task):
    if task.kind in ("ranking", "top"):
        return _scores_decide
    if task.kind == "path":
        return _path_decide
    if task.kind == "knapsack":
        return _knapsack_decide()
    if task.kind == "hit":
        return _value_decide
    return _threshold_decide() if task.kind in SIGMOID_KINDS else _argmax_decide


def _steps_per_epoch(task: Task, n: int) -> int:
    return math.ceil(n / task.batch_size)


# --- training ------------------------------------------------------------------------------------


def _crossentropy(task: Task):
    if task.kind in REGRESSION_KINDS:  # the two-stage recipe's regression (costs, weights)
        return keras.losses.MeanSquaredError()
    if task.kind in SIGMOID_KINDS + TOP:
        return keras.losses.BinaryCrossentropy(from_logits=True)
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _fit(
    trainable, x, y, task, epochs, callback, learning_rate, epochs_done=0, more=(), **compile_args
):
    """Compiles ``trainable`` with Adam at ``learning_rate`` and fits ``epochs`` more epochs
    (``more``: other callbacks)."""
    trainable.compile(optimizer=keras.optimizers.Adam(learning_rate), **compile_args)
    trainable.fit(
        x,
        y,
        batch_size=task.batch_size,
        epochs=epochs_done + epochs,
        initial_epoch=epochs_done,
        verbose=0,
        callbacks=[callback, *more],
    )


def _fit_loss(model, loss, task, data, epochs, callback, learning_rate, train_model=None):
    (x_train, y_train), _, _ = data
    _fit(train_model or model, x_train, y_train, task, epochs, callback, learning_rate, loss=loss)


def _reward(task: Task):
    if task.kind == "top":  # the top 1% of a training list
        return ranking.PrecisionAtK(k=math.ceil(TOP_FRACTION * TOP_LIST))
    if task.kind == "path":
        return decisions.Regret(shortest_path_optimizer())
    if task.kind == "knapsack":
        return decisions.KnapsackProfit(knapsack_optimizer(), KNAPSACK_PENALTY)
    if task.kind == "hit":  # a user's per-example metric
        return rewards_lib.CallableReward(user_metrics.hit_tf, per_example=True)
    if task.kind == "campaign":  # no built-in reward: the user's metric is the task
        return user_metrics.profit_tf
    return {
        "binary": "f1",
        "multilabel": "macro_f1",
        "binary-seg": "iou",
        "multiclass-seg": "miou",
        "steps": "accuracy",
        "ranking": "ndcg@10",
    }[task.kind]


def exact_level_reward(y_steps: tf.Tensor, actions: tf.Tensor) -> tf.Tensor:
    """Exact-level accuracy of step decisions: ``y_steps`` ``[B, T]`` thermometer-coded levels
    and ``actions`` ``[K, B, T]`` 0/1 steps; a level is the number of steps taken. -> ``[K]``."""
    true_level = tf.reduce_sum(tf.cast(y_steps, tf.int32), axis=-1)
    level = tf.reduce_sum(tf.cast(actions, tf.int32), axis=-1)
    return tf.reduce_mean(tf.cast(tf.equal(level, true_level), tf.float32), axis=-1)


def _fit_policy_gradient(
    model,
    task,
    data,
    epochs,
    callback,
    estimator,
    seed,
    learning_rate,
    epochs_done=0,
    more=(),
    reward=None,
):
    (x_train, y_train), _, _ = data
    policy = "categorical" if task.kind in ("multiclass-seg", "steps") else "bernoulli"
    if task.kind in ("ranking", "top"):
        policy = "plackett_luce"
    if task.kind in REGRESSION_KINDS:  # noise on the predictions; the solver in the reward
        policy = policies.Gaussian(std=GAUSSIAN_NOISE[task.kind])
    reward = reward(task) if reward is not None else _reward(task)
    if task.kind == "steps" and model.output.shape[-1] == len(STEP_THRESHOLDS):
        policy, reward = "bernoulli", exact_level_reward
        y_train = (y_train[:, None] > np.arange(len(STEP_THRESHOLDS))).astype("int32")
    # estimator None: the trainer's default, what a user who sets nothing gets
    options = {} if estimator is None else {"estimator": estimator}
    trainer = PolicyGradientTrainer(
        model, reward=reward, policy=policy, num_samples=NUM_SAMPLES, seed=seed, **options
    )
    _fit(trainer, x_train, y_train, task, epochs, callback, learning_rate, epochs_done, more)


def _callback(task, model, data, decide):
    (x_train, _), (x_val, y_val), _ = data
    return _BestEpoch(task, model, x_val, y_val, decide, _steps_per_epoch(task, len(x_train)))


def _surrogate(make_loss: Callable[[Task, np.ndarray], keras.losses.Loss]):
    def train(task, data, seed, epochs, learning_rate):
        model = _build(task, data[0][0], data[0][1], seed)
        callback = _callback(task, model, data, _default_decide(task))
        loss = make_loss(task, data[0][1])
        _fit_loss(model, loss, task, data, epochs, callback, learning_rate)
        return callback.result()

    return train


_train_crossentropy = _surrogate(lambda t, y: _crossentropy(t))


def _tuned(task, data, seed, epochs, learning_rate, trained: FitResult | None = None):
    """Cross-entropy, then the validation-optimal threshold (reuses a ``bce`` run's model)."""
    result = trained or _train_crossentropy(task, data, seed, epochs, learning_rate)
    _, (x_val, y_val), _ = data
    outputs = predict(result.model, x_val)
    if task.kind == "campaign":  # the task's own metric, per list: every output a candidate
        candidates = np.unique(np.concatenate([outputs.ravel(), [np.inf]]))
        scores = [task.score(y_val, _threshold_decide(t)(outputs)) for t in candidates]
        threshold = float(candidates[int(np.argmax(scores))])  # decisions: outputs > threshold
        return dataclasses.replace(result, decide=_threshold_decide(threshold))
    y_val = y_val.reshape(outputs.shape)
    threshold = thresholds.threshold_tuned(
        outputs, None, y_val, _reward(task), per_label=task.kind == "multilabel"
    )
    return dataclasses.replace(result, decide=_threshold_decide(threshold))


def _policy_gradient(estimator, head: str = "classes", warm: bool = False, then=None, reward=None):
    def train(task, data, seed, epochs, learning_rate):
        model = _build(task, data[0][0], data[0][1], seed, head)
        decide = _count_decide if head == "steps" else _default_decide(task)
        callback = _callback(task, model, data, decide)
        done = 0
        if warm:  # cross-entropy for the first half, then the reward (SCST-style warm start)
            done = epochs // 2
            _fit_loss(model, _crossentropy(task), task, data, done, callback, learning_rate)
            callback.epoch_seconds.clear()  # time the policy-gradient epochs
        # `estimator` for the first half, then `then`, in one fit (the optimizer carries on)
        more = () if then is None else (SwitchEstimator(then, at=0.5),)
        _fit_policy_gradient(
            model,
            task,
            data,
            epochs - done,
            callback,
            estimator,
            seed,
            learning_rate,
            done,
            more,
            reward,
        )
        return callback.result()

    return train


def _safety_tuned(task, data, seed, epochs, learning_rate, trained: FitResult | None = None):
    """The two-stage fit, then the capacity fraction with the best validation profit."""
    result = trained or _train_crossentropy(task, data, seed, epochs, learning_rate)
    _, (x_val, y_val), _ = data
    outputs = predict(result.model, x_val)
    grid = np.round(np.arange(0.5, 1.001, 0.05), 2)
    safety = max(grid, key=lambda s: task.score(y_val, _knapsack_decide(s)(outputs)))
    return dataclasses.replace(result, decide=_knapsack_decide(float(safety)))


class SmoothWindow(keras.losses.Loss):
    """Minus ``P(|y - (y_hat + e)| <= window)`` for ``e ~ N(0, scale^2)``: the hit of a
    Gaussian-smoothed prediction, differentiable (the ``smooth-window`` specialist)."""

    def __init__(self, window: float, scale: float):
        super().__init__(name="smooth_window")
        self.window, self.scale = window, scale

    def call(self, y_true, y_pred):
        gap = (tf.cast(y_true, y_pred.dtype) - y_pred) / (self.scale * np.sqrt(2.0))
        half = self.window / (self.scale * np.sqrt(2.0))
        return -0.5 * (tf.math.erf(gap + half) - tf.math.erf(gap - half))[..., 0]


def _step_layer(cls, **kwargs):
    def train(task, data, seed, epochs, learning_rate):
        model = _build(task, data[0][0], data[0][1], seed, head="score")
        step = cls(list(STEP_THRESHOLDS), **kwargs)
        train_model = keras.Sequential([model, step])
        callback = _callback(task, model, data, _level_decide)
        (x_train, y_train), _, _ = data
        levels = np.asarray(step.levels, "float32")[y_train][:, None]
        _fit_loss(
            model,
            "mse",
            task,
            ((x_train, levels), data[1], data[2]),
            epochs,
            callback,
            learning_rate,
            train_model=train_model,
        )
        return callback.result()

    return train


def _pos_weight(task: Task, y_train: np.ndarray):
    """``n_negative / n_positive`` of the training labels (per label for multi-label)."""
    y = y_train.reshape(len(y_train), -1)
    positives = y.sum(0) if task.kind == "multilabel" else y.sum()
    negatives = (1 - y).sum(0) if task.kind == "multilabel" else (1 - y).sum()
    weights = np.maximum(negatives, 1) / np.maximum(positives, 1)
    return weights.tolist() if task.kind == "multilabel" else float(weights)


@dataclass(frozen=True)
class Method:
    """A competitor: ``train(task, data, seed, epochs, learning_rate) -> FitResult`` on the
    kinds it fits (Adam at ``learning_rate``).

    ``shares_training_with`` names a method whose trained model this one can reuse (``bce`` for
    ``bce-tuned``), so a suite trains it once.
    """

    name: str
    description: str
    kinds: tuple[str, ...]
    train: Callable
    shares_training_with: str | None = None


def _soft_overlap(cls):
    """A SoftDice/SoftJaccard maker: softmax over classes for multi-class masks, else sigmoid."""
    return lambda task, y: cls("softmax" if task.kind == "multiclass-seg" else "sigmoid")


def _lovasz(task, y):
    if task.kind == "multiclass-seg":
        return surrogates.LovaszSoftmax(per_image=False)
    return surrogates.LovaszHinge(per_image=task.kind == "binary-seg")


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method(
            "bce",
            "cross-entropy (binary, or softmax over classes/levels), decisions at logit 0 / argmax",
            ALL_KINDS + TOP,
            _train_crossentropy,
        ),
        Method(
            "bce-tuned",
            "binary cross-entropy, then the threshold that maximizes the validation metric",
            SIGMOID_KINDS,
            _tuned,
            shares_training_with="bce",
        ),
        Method(
            "wbce",
            "binary cross-entropy with pos_weight = n_negative / n_positive",
            SIGMOID_KINDS + TOP,
            _surrogate(lambda t, y: surrogates.WeightedBCE(_pos_weight(t, y))),
        ),
        Method(
            "focal",
            "focal loss, gamma 2, alpha 0.25",
            SIGMOID_KINDS + TOP,
            _surrogate(lambda t, y: surrogates.Focal(2.0, 0.25)),
        ),
        Method(
            "soft-f1",
            "sigmoid-F1 on the batch (macro over labels for multi-label)",
            ("binary", "multilabel"),
            _surrogate(
                lambda t, y: surrogates.SoftF1("macro" if t.kind == "multilabel" else "binary")
            ),
        ),
        Method(
            "soft-dice",
            "soft Dice per image (MONAI semantics)",
            ("binary-seg", "multiclass-seg"),
            _surrogate(_soft_overlap(surrogates.SoftDice)),
        ),
        Method(
            "soft-jaccard",
            "soft Jaccard per image (MONAI semantics)",
            ("binary-seg", "multiclass-seg"),
            _surrogate(_soft_overlap(surrogates.SoftJaccard)),
        ),
        Method(
            "lovasz",
            "Lovasz hinge (binary; per image for masks) or Lovasz-softmax (classes)",
            ("binary", "binary-seg", "multiclass-seg"),
            _surrogate(_lovasz),
        ),
        Method(
            "smooth-step",
            "SmoothStep staircase (sharpness 10) on a score, MSE to the level",
            ("steps",),
            _step_layer(layers.SmoothStep, sharpness=10.0),
        ),
        Method(
            "straight-through",
            "hard staircase forward, identity gradient, MSE to the level",
            ("steps",),
            _step_layer(layers.StraightThroughStep),
        ),
        Method(
            "listnet",
            "ListNet: softmax cross-entropy over each list (labels normalised)",
            RANKING,
            _surrogate(lambda t, y: surrogates.ListNet()),
        ),
        Method(
            "ranknet",
            "RankNet: pairwise logistic loss over the pairs of each list",
            RANKING,
            _surrogate(lambda t, y: surrogates.PairwiseLogistic()),
        ),
        Method(
            "approx-ndcg",
            "ApproxNDCG (smooth ranks, alpha 10)",
            RANKING,
            _surrogate(lambda t, y: surrogates.ApproxNDCG()),
        ),
        Method(
            "lambdaloss",
            "LambdaLoss with NDCG@10 weights (LambdaRank)",
            RANKING,
            _surrogate(lambda t, y: surrogates.LambdaLoss(k=10)),
        ),
        Method(
            "two-stage-mse",
            "predict the costs or weights (mean squared error), then solve: the practitioner's "
            "recipe",
            ("path", "knapsack"),
            _train_crossentropy,
        ),
        Method(
            "spo-plus",
            "SPO+ loss (Elmachtoub & Grigas 2022), the convex surrogate of the regret",
            ("path",),
            _surrogate(lambda t, y: decisions.SPOPlus(shortest_path_optimizer())),
        ),
        Method(
            "pg-regret",
            "PolicyGradientTrainer: Gaussian policy over the costs (std 0.5), reward minus "
            "the regret of the solver's decision (decisions.Regret, per example), REINFORCE with "
            "a leave-one-out baseline per example (the default), K=8",
            ("path",),
            _policy_gradient(None),
        ),
        Method(
            "pg-regret-warm",
            "the mean squared error for half the epochs, then pg-regret (warm start from the "
            "two-stage fit)",
            ("path",),
            _policy_gradient(None, warm=True),
        ),
        Method(
            "two-stage-tuned",
            "predict the weights (mean squared error), then pack to a fraction of the capacity "
            "tuned on validation (0.5 to 1.0)",
            ("knapsack",),
            _safety_tuned,
            shares_training_with="two-stage-mse",
        ),
        Method(
            "pg-decision",
            "PolicyGradientTrainer: Gaussian policy over the predictions (std 0.3 for weights, "
            "HIT_WINDOW for a target), the decision's realized value per example as the reward "
            "(the solver inside it), REINFORCE with a leave-one-out baseline per example, K=8",
            ("knapsack", "hit"),
            _policy_gradient(None),
        ),
        Method(
            "pg-decision-warm",
            "the mean squared error for half the epochs, then pg-decision",
            ("knapsack", "hit"),
            _policy_gradient(None, warm=True),
        ),
        Method(
            "mse",
            "mean squared error; the prediction is the decision",
            ("hit",),
            _train_crossentropy,
        ),
        Method(
            "mae",
            "mean absolute error (the conditional median)",
            ("hit",),
            _surrogate(lambda t, y: keras.losses.MeanAbsoluteError()),
        ),
        Method(
            "huber",
            "Huber loss (delta 1)",
            ("hit",),
            _surrogate(lambda t, y: keras.losses.Huber()),
        ),
        Method(
            "smooth-window",
            "minus the expected hit under a Gaussian of std HIT_WINDOW around the prediction "
            "(the window convolved with the noise: a smooth surrogate of the hit)",
            ("hit",),
            _surrogate(lambda t, y: SmoothWindow(HIT_WINDOW, HIT_WINDOW)),
        ),
        Method(
            "pg-reinforce",
            "PolicyGradientTrainer: REINFORCE + leave-one-out baseline, K=8 (Plackett-Luce "
            "rankings for ranking tasks)",
            ALL_KINDS + RANKING,
            _policy_gradient("reinforce"),
        ),
        Method(
            "pg-local",
            "PolicyGradientTrainer: local-expectation estimator, K=8",
            ALL_KINDS,
            _policy_gradient("local_expectation"),
        ),
        Method(
            "pg-best-response",
            "PolicyGradientTrainer with its defaults (estimator='auto': the local best "
            "response for count rewards, the pairwise best response for NDCG@10 of "
            "Plackett-Luce rankings and precision@5 of the top-precision task's lists), K=8",
            ALL_KINDS + RANKING + TOP,
            _policy_gradient(None),
        ),
        Method(
            "pg-user-tf",
            "PolicyGradientTrainer with its defaults on the task's metric written as a plain "
            "TensorFlow function of [M, B, ...] decision sets (bench.user_metrics), K=8",
            user_metrics.KINDS,
            _policy_gradient(None, reward=lambda t: user_metrics.tf_metric(t.kind)),
        ),
        Method(
            "pg-user-numpy",
            "PolicyGradientTrainer with its defaults on the task's metric written in NumPy "
            "(rewards.from_numpy(fn, vectorized=True), bench.user_metrics), K=8",
            user_metrics.KINDS,
            _policy_gradient(
                None,
                reward=lambda t: rewards_lib.from_numpy(
                    user_metrics.numpy_metric(t.kind), vectorized=True
                ),
            ),
        ),
        Method(
            "pg-switch",
            "PolicyGradientTrainer with its defaults for the first half of the epochs, then the "
            "local-expectation estimator (the exact gradient of the expected reward) in the same "
            "fit (callbacks.SwitchEstimator: the optimizer's state carries on), K=8",
            ALL_KINDS,
            _policy_gradient(None, then="local_expectation"),
        ),
        Method(
            "pg-pl-rank",
            "PolicyGradientTrainer: PL-Rank (unbiased, reuses each sampled ranking for every "
            "item), K=8 Plackett-Luce rankings",
            RANKING + TOP,
            _policy_gradient("pl_rank"),
        ),
        Method(
            "pg-coupled",
            "PolicyGradientTrainer: the best response with coupled decisions "
            "(LocalBestResponse(context='coupled')), K=8",
            ("binary", "multilabel", "binary-seg", "multiclass-seg"),
            _policy_gradient(estimators.LocalBestResponse(context="coupled")),
        ),
        Method(
            "pg-disarm",
            "PolicyGradientTrainer: DisARM, K=8 pairs (steps: a Bernoulli per step)",
            SIGMOID_KINDS + ("steps",),
            lambda task, data, seed, epochs, learning_rate: _policy_gradient(
                "disarm", head="steps" if task.kind == "steps" else "classes"
            )(task, data, seed, epochs, learning_rate),
        ),
        Method(
            "pg-warm",
            "cross-entropy for half the epochs, then REINFORCE + leave-one-out (warm start)",
            ALL_KINDS,
            _policy_gradient("reinforce", warm=True),
        ),
    )
}
