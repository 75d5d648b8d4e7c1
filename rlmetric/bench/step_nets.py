"""Benchmark methods for networks of hard step units (``step-net`` tasks).

Every method trains the same network (the task's hidden widths, then a logit per class, the
same initial weights for a seed) and is scored with HARD steps, the network that is deployed:

* ``relu-net``: ReLU units instead of steps, cross-entropy: the ceiling, not a competitor;
* ``ste-net``: hard steps forward, the identity's gradient backward (straight-through);
* ``smooth-annealed-net``: sigmoid units whose slope rises from 1 to 100 over the epochs
  ([`SmoothStep`][rlmetric.layers.SmoothStep] with
  [`SharpnessSchedule`][rlmetric.layers.SharpnessSchedule]),
  scored with the hard steps;
* ``pg-step-reinforce``, ``pg-step-disarm``, ``pg-step-local``: stochastic step units trained
  by [`StepNetworkTrainer`][rlmetric.step_networks.StepNetworkTrainer] with ``K = 8`` (4 antithetic
  pairs for
  DisARM).
"""

from __future__ import annotations

import keras

from rlmetric import layers
from rlmetric.bench.methods import NUM_SAMPLES, Method, _argmax_decide, _callback, _fit
from rlmetric.bench.tasks import Task
from rlmetric.step_networks import StepNetworkTrainer

__all__ = ["STEP_NETWORK_METHODS", "STEP_TEMPERATURE", "SHARPNESS"]

STEP_NET = ("step-net",)
#: the StochasticStep temperature of the policy-gradient methods (the layer's default)
STEP_TEMPERATURE = 0.3
#: the slope of the annealed sigmoid units, first and last epoch
SHARPNESS = (1.0, 100.0)


def _network(task: Task, x_train, seed: int, unit) -> tuple[keras.Model, list]:
    """``Input -> [Dense(width) -> unit()] * hidden -> Dense(classes)`` as a Sequential; the
    Dense layers are created in the same order for every method, so a seed starts them all from
    the same weights."""
    keras.utils.set_random_seed(seed)
    denses = [keras.layers.Dense(width) for width in task.hidden]
    head = keras.layers.Dense(task.classes)
    stack = [keras.Input(x_train.shape[1:])]
    for dense in denses:
        stack += [dense, unit()]
    return keras.Sequential([*stack, head]), [*denses, head]


def _hard_twin(x_train, dense_layers) -> keras.Model:
    """The same Dense layers (shared weights) with hard steps ``H(x)`` between them."""
    inputs = keras.Input(x_train.shape[1:])
    h = inputs
    for dense in dense_layers[:-1]:
        h = layers.StraightThroughStep([0.0])(dense(h))
    return keras.Model(inputs, dense_layers[-1](h))


def _supervised(unit, scored_hard: bool = False, schedule=None):
    def train(task, data, seed, epochs, learning_rate):
        (x_train, y_train), _, _ = data
        model, dense_layers = _network(task, x_train, seed, unit)
        scored = _hard_twin(x_train, dense_layers) if scored_hard else model
        callback = _callback(task, scored, data, _argmax_decide)
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss)
        callbacks = [callback] + ([schedule()] if schedule else [])
        model.fit(
            x_train,
            y_train,
            batch_size=task.batch_size,
            epochs=epochs,
            verbose=0,
            callbacks=callbacks,
        )
        return callback.result()

    return train


def _policy_gradient(estimator: str):
    def train(task, data, seed, epochs, learning_rate):
        (x_train, y_train), _, _ = data
        unit = lambda: layers.StochasticStep(temperature=STEP_TEMPERATURE)  # noqa: E731
        model, _ = _network(task, x_train, seed, unit)
        callback = _callback(task, model, data, _argmax_decide)  # inference: the hard steps
        trainer = StepNetworkTrainer(model, estimator=estimator, num_samples=NUM_SAMPLES, seed=seed)
        _fit(trainer, x_train, y_train, task, epochs, callback, learning_rate)
        return callback.result()

    return train


STEP_NETWORK_METHODS = (
    Method(
        "relu-net",
        "the same network with ReLU units, cross-entropy (the ceiling; not a competitor)",
        STEP_NET,
        _supervised(lambda: keras.layers.ReLU()),
    ),
    Method(
        "ste-net",
        "hard steps H(x) forward, identity gradient backward (straight-through), cross-entropy",
        STEP_NET,
        _supervised(lambda: layers.StraightThroughStep([0.0])),
    ),
    Method(
        "smooth-annealed-net",
        f"sigmoid units, slope annealed {SHARPNESS[0]:g} -> {SHARPNESS[1]:g}, cross-entropy; "
        "scored with hard steps",
        STEP_NET,
        _supervised(
            lambda: layers.SmoothStep([0.0], sharpness=SHARPNESS[0], heights=1.0),
            scored_hard=True,
            schedule=lambda: layers.SharpnessSchedule(*SHARPNESS),
        ),
    ),
    Method(
        "pg-step-reinforce",
        "StepNetworkTrainer: stochastic step units, REINFORCE with a per-example "
        "leave-one-out baseline, K=8",
        STEP_NET,
        _policy_gradient("reinforce"),
    ),
    Method(
        "pg-step-disarm",
        "StepNetworkTrainer: DisARM, 4 antithetic pairs",
        STEP_NET,
        _policy_gradient("disarm"),
    ),
    Method(
        "pg-step-local",
        "StepNetworkTrainer: local expectation (every unit's other level, layers above "
        "re-run), K=8",
        STEP_NET,
        _policy_gradient("local_expectation"),
    ),
)
