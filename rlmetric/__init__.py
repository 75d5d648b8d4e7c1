"""rlmetric: train Keras models directly on non-differentiable metrics with policy gradients."""

from rlmetric import (
    baselines,
    callbacks,
    decisions,
    diagnostics,
    envs,  # registers the gymnasium env rlmetric/Metric-v0
    episodic,
    estimators,
    layers,
    metrics,
    plackett_luce,
    policies,
    ranking,
    ranking_losses,
    rewards,
    step_networks,
    surrogates,
    thresholds,
)
from rlmetric.step_networks import StepNetworkTrainer
from rlmetric.trainer import NonFiniteError, PolicyGradientTrainer

__version__ = "0.1.0"

__all__ = [
    "PolicyGradientTrainer",
    "StepNetworkTrainer",
    "NonFiniteError",
    "baselines",
    "callbacks",
    "decisions",
    "diagnostics",
    "envs",
    "episodic",
    "estimators",
    "layers",
    "metrics",
    "plackett_luce",
    "policies",
    "ranking",
    "ranking_losses",
    "rewards",
    "step_networks",
    "surrogates",
    "thresholds",
    "__version__",
]
