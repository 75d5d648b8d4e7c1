"""rlmetric: train Keras models directly on non-differentiable metrics with policy gradients."""

import os as _os

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from rlmetric import baselines, estimators, metrics, policies, rewards  # noqa: E402
from rlmetric.trainer import NonFiniteError, PolicyGradientTrainer  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "PolicyGradientTrainer",
    "NonFiniteError",
    "baselines",
    "estimators",
    "metrics",
    "policies",
    "rewards",
    "__version__",
]
