"""rlmetric: train Keras models directly on non-differentiable metrics with policy gradients."""

import os as _os

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from rlmetric import (  # noqa: E402
    baselines,
    diagnostics,
    envs,  # registers the gymnasium env rlmetric/Metric-v0
    episodic,
    estimators,
    layers,
    metrics,
    policies,
    rewards,
    surrogates,
)
from rlmetric.trainer import NonFiniteError, PolicyGradientTrainer  # noqa: E402

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
    "policies",
    "rewards",
    "surrogates",
    "__version__",
]
