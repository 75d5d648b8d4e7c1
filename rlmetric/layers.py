"""Step activations: the surrogate ways to train through a piecewise-constant output.

A staircase ``f(x) = low + sum_i heights_i * H(x - thresholds_i)`` (``H`` the unit step) maps a
score to quantized levels, e.g. thresholds ``(.125, .375, .625, .875)`` and heights ``.25`` give
the levels ``0, .25, .5, .75, 1``. Its gradient is zero almost everywhere, so two workarounds are
common and are provided here as the competitors of a policy over the levels:

* :class:`SmoothStep` replaces each ``H`` by a sigmoid of slope ``sharpness`` (with its analytic
  derivative);
* :class:`StraightThroughStep` keeps the hard steps forward and passes the gradient through as if
  the layer were the identity.

:func:`staircase` is the hard function itself, used to score either at evaluation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

__all__ = ["SmoothStep", "StraightThroughStep", "staircase"]


def _check_steps(
    thresholds: Sequence[float], heights: float | Sequence[float] | None
) -> tuple[list[float], list[float]]:
    values = np.asarray(thresholds, dtype="float64")
    if values.ndim != 1 or values.size == 0 or not np.all(np.isfinite(values)):
        raise ValueError(
            f"thresholds must be a non-empty list of finite numbers; received {thresholds!r}."
        )
    if np.any(np.diff(values) <= 0):
        raise ValueError(f"thresholds must be strictly increasing; received {values.tolist()}.")
    if heights is None:
        steps = np.full(values.size, 1.0 / values.size)  # levels 0 .. 1 in equal steps
    else:
        steps = np.asarray(heights, dtype="float64")
        if steps.shape not in ((), values.shape) or not np.all(np.isfinite(steps)):
            raise ValueError(
                f"heights must be a finite number or one per threshold ({values.size}); "
                f"received {heights!r}."
            )
        steps = np.broadcast_to(steps, values.shape)
    return values.tolist(), steps.tolist()


def staircase(
    x: Any, thresholds: Sequence[float], heights: Sequence[float], low: float = 0.0
) -> tf.Tensor:
    """The hard staircase ``low + sum_i heights_i * 1[x > thresholds_i]``, elementwise.

    Args:
        x: ``[...]`` scores.
        thresholds: ``[T]`` increasing thresholds.
        heights: ``[T]`` the step height at each threshold.

    Returns:
        ``[...]`` levels, of the dtype of ``x``.

    Examples:
        >>> from rlmetric.layers import staircase
        >>> staircase([0.1, 0.4, 0.9], [0.25, 0.5, 0.75], heights=[1.0, 1.0, 1.0]).numpy()
        array([0., 1., 3.], dtype=float32)
    """
    x = tf.convert_to_tensor(x)
    t = tf.constant(thresholds, x.dtype)
    h = tf.constant(heights, x.dtype)
    above = tf.cast(x[..., None] > t, x.dtype)  # [..., T]
    return low + tf.reduce_sum(above * h, axis=-1)


class _StepLayer(keras.layers.Layer):
    def __init__(
        self,
        thresholds: Sequence[float],
        heights: float | Sequence[float] | None = None,
        low: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.thresholds, self.heights = _check_steps(thresholds, heights)
        if not isinstance(low, int | float) or not math.isfinite(low):
            raise ValueError(f"low must be a finite number; received low={low!r}.")
        self.low = float(low)

    def hard(self, x: Any) -> tf.Tensor:
        """The piecewise-constant staircase of ``x`` (what is scored)."""
        return staircase(x, self.thresholds, self.heights, self.low)

    @property
    def levels(self) -> list[float]:
        """The ``T + 1`` values the staircase takes, from ``low`` up."""
        return (self.low + np.concatenate([[0.0], np.cumsum(self.heights)])).tolist()

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "thresholds": self.thresholds,
            "heights": self.heights,
            "low": self.low,
        }


@keras.saving.register_keras_serializable(package="rlmetric")
class SmoothStep(_StepLayer):
    """A staircase smoothed into a sum of scaled sigmoids:
    ``low + sum_i heights_i * sigmoid(sharpness * (x - thresholds_i))``, elementwise, with the
    analytic derivative ``sum_i heights_i * sharpness * s_i (1 - s_i)``. As ``sharpness`` grows
    it approaches :meth:`hard` and its gradient vanishes between thresholds: the usual trade-off.

    Args:
        thresholds: ``T`` strictly increasing step positions.
        heights: the jump at each threshold (a number or ``T`` numbers); default ``1 / T``, so
            the levels run from ``low`` to ``low + 1``.
        sharpness: slope of the sigmoids (``> 0``).
        low: the level below the first threshold.

    Examples:
        >>> import numpy as np
        >>> from rlmetric.layers import SmoothStep
        >>> step = SmoothStep([0.25, 0.5, 0.75], sharpness=100.0)
        >>> x = np.array([[0.1], [0.4], [0.9]], "float32")
        >>> np.round(step(x).numpy().ravel(), 3)  # steps of 1/3 by default, from 0 to 1
        array([0.   , 0.333, 1.   ], dtype=float32)
    """

    def __init__(
        self,
        thresholds: Sequence[float],
        sharpness: float = 10.0,
        heights: float | Sequence[float] | None = None,
        low: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(thresholds, heights, low, **kwargs)
        if (
            isinstance(sharpness, bool)
            or not isinstance(sharpness, int | float)
            or not math.isfinite(sharpness)
            or sharpness <= 0
        ):
            raise ValueError(f"sharpness must be a finite number > 0; received {sharpness!r}.")
        self.sharpness = float(sharpness)

    def call(self, x):
        t = tf.constant(self.thresholds, x.dtype)
        h = tf.constant(self.heights, x.dtype)
        sharpness, low = self.sharpness, self.low

        @tf.custom_gradient
        def smooth(x):
            s = tf.sigmoid(sharpness * (x[..., None] - t))  # [..., T]

            def gradient(upstream):
                return upstream * tf.reduce_sum(h * sharpness * s * (1.0 - s), axis=-1)

            return low + tf.reduce_sum(h * s, axis=-1), gradient

        return smooth(x)

    def get_config(self) -> dict:
        return {**super().get_config(), "sharpness": self.sharpness}


@keras.saving.register_keras_serializable(package="rlmetric")
class StraightThroughStep(_StepLayer):
    """The hard staircase forward, the identity's gradient backward (the straight-through
    estimator, Bengio et al., 2013): ``x + stop_gradient(hard(x) - x)``.

    Args as :class:`SmoothStep`, without ``sharpness``.

    Examples:
        >>> import numpy as np
        >>> import tensorflow as tf
        >>> from rlmetric.layers import StraightThroughStep
        >>> step, x = StraightThroughStep([0.5]), tf.constant([[0.2], [0.7]])
        >>> with tf.GradientTape() as tape:
        ...     tape.watch(x)
        ...     y = step(x)
        >>> # hard forward, identity backward
        >>> y.numpy().ravel(), tape.gradient(y, x).numpy().ravel()
        (array([0., 1.], dtype=float32), array([1., 1.], dtype=float32))
    """

    def call(self, x):
        return x + tf.stop_gradient(self.hard(x) - x)
