"""rlmetric: train Keras models directly on non-differentiable metrics with policy gradients."""

from rlmetric import (
    baselines,
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
    surrogates,
    thresholds,
)
from rlmetric.trainer import NonFiniteError, PolicyGradientTrainer

__version__ = "0.1.0"

__all__ = [
    "PolicyGradientTrainer",
    "NonFiniteError",
    "baselines",
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
    "surrogates",
    "thresholds",
    "__version__",
]
