"""Checks before training: run the model on the first rows and check logits, labels and the
reward eagerly, so that bad input fails with a clear message before any weight changes."""

from __future__ import annotations

import math
import warnings
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from rlmetric import baselines as baselines_lib
from rlmetric import estimators as estimators_lib
from rlmetric import policies as policies_lib
from rlmetric import rewards as rewards_lib
from rlmetric._distribute import check_xla_strategy
from rlmetric._inputs import as_float32, as_numeric_labels, first_rows, refuse_unbatched

__all__ = [
    "preflight",
    "fit_reward_to_logits",
    "check_trainer_arguments",
    "check_fit_arguments",
    "check_components",
    "DEFAULT_NUM_SAMPLES",
]


#: the trainer's default ``num_samples`` (K)
DEFAULT_NUM_SAMPLES = 8


def preflight(trainer, x: Any, y: Any, x_name: str, y_name: str) -> None:
    """Runs the model on the first rows and checks logits, labels and reward eagerly, so
    that bad input fails with a clear message before any weight changes."""
    if trainer.reward is None:
        raise ValueError(
            "This trainer was created with reward=None, for fit_env on gymnasium envs only; "
            "pass a reward (e.g. reward='f1') to train or evaluate on labelled data."
        )
    first = first_rows(x, y)
    if first is None:
        return
    x_rows, y_rows, all_labels = first
    if isinstance(x, tf.data.Dataset):
        refuse_unbatched(x_rows, trainer.model)
    if y_rows is None:
        raise ValueError(
            f"{y_name} is missing: PolicyGradientTrainer needs labels to compute the reward."
        )
    logits = as_float32(trainer.model(x_rows, training=False))
    trainer._setup_outputs(logits.shape)
    trainer.policy.check_logits(logits.shape)
    labels = trainer.policy.format_labels(as_numeric_labels(y_rows, y_name), logits.shape)
    trainer.policy.check_label_values(
        all_labels if all_labels is not None else y_rows, logits.shape, y_name
    )
    actions = trainer.policy.sample(logits, trainer.num_samples, seed=0)
    scores = estimators_lib.score_samples(trainer.reward, labels, actions)
    per_element = isinstance(trainer.policy, policies_lib.Bernoulli | policies_lib.Categorical)
    if per_element and isinstance(trainer.reward, rewards_lib.ProbedReward):
        trainer.reward.prepare(labels, actions)  # probes exchangeability once
    # the metrics score one set, the greedy one: a reward whose output size does not follow
    # K is caught here even when it happens to match num_samples
    estimators_lib.score_samples(trainer.reward, labels, trainer.policy.mode(logits)[None])
    if not np.all(np.isfinite(keras.ops.convert_to_numpy(scores))):
        raise ValueError(
            f"Reward {trainer.reward.name!r} returned non-finite values "
            f"{keras.ops.convert_to_numpy(scores)} on the first rows of {y_name}."
        )


def fit_reward_to_logits(
    reward: rewards_lib.Reward, policy: Any, logits_shape: tf.TensorShape, arg: str
) -> rewards_lib.Reward:
    """Fills in ``num_classes`` of a count reward for a categorical policy, or refuses a
    reward whose ``num_classes`` contradicts the logits."""
    if not isinstance(reward, rewards_lib.CountReward):
        return reward
    categorical = isinstance(policy, policies_lib.Categorical)
    if categorical:
        num_classes = logits_shape[-1]
        if reward.num_classes is None and num_classes is not None:
            return type(reward).from_config({**reward.get_config(), "num_classes": num_classes})
        if reward.num_classes is not None and num_classes not in (None, reward.num_classes):
            raise ValueError(
                f"{arg}={reward!r} has num_classes={reward.num_classes}, but the model "
                f"returns logits of shape {logits_shape} ({num_classes} classes)."
            )
    elif reward.num_classes is not None:
        raise ValueError(
            f"{arg}={reward!r} sets num_classes, which is for policy='categorical'; the "
            f"policy is {policy.name!r}. Leave num_classes=None for Bernoulli decisions."
        )
    return reward


def check_trainer_arguments(
    model: Any, num_samples: Any, seed: Any, entropy_weight: Any, crossentropy_weight: Any
) -> None:
    """Refuses, with the argument named, what ``PolicyGradientTrainer.__init__`` cannot use."""
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"model must be a keras.Model that outputs logits; received {type(model).__name__}."
        )
    if isinstance(num_samples, bool) or not isinstance(num_samples, int | np.integer):
        raise TypeError(f"num_samples must be an int; received {num_samples!r}.")
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1; received num_samples={num_samples}.")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | np.integer)):
        raise TypeError(f"seed must be an int or None; received seed={seed!r}.")
    for arg, value in (
        ("entropy_weight", entropy_weight),
        ("crossentropy_weight", crossentropy_weight),
    ):
        if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{arg} must be a finite number >= 0; received {arg}={value!r}.")


def check_fit_arguments(x: Any, kwargs: dict) -> None:
    """Refuses ``fit(x=None)`` and per-example weights, which a batch metric has none of."""
    if x is None:
        raise ValueError(
            "fit needs x: arrays of inputs with labels y, or a tf.data.Dataset of (x, y) "
            "batches; received x=None."
        )
    for arg in ("class_weight", "sample_weight"):
        if kwargs.get(arg) is not None:
            raise ValueError(
                f"PolicyGradientTrainer.fit does not support {arg}: a batch metric such as "
                "F1 has no per-example weights. Weight the metric itself instead."
            )


def check_components(
    policy: Any, reward: Any, baseline: Any, estimator: Any, num_samples: int
) -> None:
    """Refuses a policy, reward, baseline and estimator that cannot work together, before
    training; warns when a chosen baseline would be ignored."""
    # (leave-one-out is the default, which loaded configs carry too: not a choice)
    if not estimator.uses_baseline and not isinstance(baseline, baselines_lib.LeaveOneOut):
        warnings.warn(
            f"baseline={baseline.name!r} is ignored: the estimator "
            f"{estimator.name!r} does not use a baseline (it credits each decision "
            "with its own effect, or pairs its samples). Pass estimator='reinforce' to use "
            "the baseline.",
            UserWarning,
            stacklevel=3,
        )
    if not estimator.uses_samples and num_samples != DEFAULT_NUM_SAMPLES:
        warnings.warn(
            f"num_samples={num_samples} is ignored: the estimator {estimator!r} scores one "
            "decision set per step (the policy's mode, or one coupled draw), not K samples. "
            "Pass estimator=LocalBestResponse(context='samples') or 'reinforce' to sample.",
            UserWarning,
            stacklevel=3,
        )
    if reward is not None:
        policy.check_reward(reward)
        estimator.check(
            policy=policy,
            reward=reward,
            baseline=baseline,
            num_samples=num_samples,
        )


def resolve_jit_compile(rewards: list, jit_compile: Any, strategy: Any) -> Any:
    """``compile``'s ``jit_compile`` given the rewards it will run: ``False`` where a reward calls
    Python (``rewards.from_numpy``), an error where ``True`` was asked for one, and the strategy
    checked for XLA."""
    not_xla = [r.name for r in rewards if r is not None and not r.xla_compatible]
    if not_xla:
        if jit_compile is True:
            raise ValueError(
                f"jit_compile=True cannot run the reward(s) {not_xla}: they call Python "
                "through tf.numpy_function (rewards.from_numpy), which XLA cannot compile. "
                "Use jit_compile=False, or a TensorFlow reward."
            )
        return False
    if jit_compile is True:
        check_xla_strategy(strategy)
    return jit_compile


def check_metric_names(names: list[str], reserved: tuple[str, ...]) -> None:
    """Reward metric names must be unique and leave the trainer's own logs alone."""
    if len(set(names)) != len(names):
        raise ValueError(f"Metric names must be unique; received {names}.")
    clashing = sorted(set(names) & set(reserved))
    if clashing:
        raise ValueError(
            f"Reward name(s) {clashing} would overwrite the trainer's own log(s) of that name "
            f"({', '.join(reserved)}); give the reward another name (name=...)."
        )


def preflight_validation(trainer: Any, validation_data: Any) -> None:
    """[`preflight`][rlmetric._preflight.preflight] of ``fit``'s ``validation_data`` (``(x, y)`` or
    a dataset)."""
    if isinstance(validation_data, tuple | list) and len(validation_data) >= 2:
        preflight(trainer, validation_data[0], validation_data[1], "validation x", "validation y")
    elif validation_data is not None:
        preflight(trainer, validation_data, None, "validation_data", "validation y")
