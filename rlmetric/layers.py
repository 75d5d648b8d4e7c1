"""Step activations: the surrogate ways to train through a piecewise-constant output.

A staircase ``f(x) = low + sum_i heights_i * H(x - thresholds_i)`` (``H`` the unit step) maps a
score to quantized levels, e.g. thresholds ``(.125, .375, .625, .875)`` and heights ``.25`` give
the levels ``0, .25, .5, .75, 1``. Its gradient is zero almost everywhere, so two workarounds are
common and are provided here as the competitors of a policy over the levels:

* [`SmoothStep`][rlmetric.layers.SmoothStep] replaces each ``H`` by a sigmoid of slope ``sharpness``
(with its analytic
  derivative);
* [`StraightThroughStep`][rlmetric.layers.StraightThroughStep] keeps the hard steps forward and
passes the gradient through as if
  the layer were the identity.

[`StochasticStep`][rlmetric.layers.StochasticStep] is the policy's way: a hidden (or output) layer
of step units whose level
is drawn during training from a distribution centred on the staircase and is the hard staircase
at inference;
[`rlmetric.step_networks.StepNetworkTrainer`][rlmetric.step_networks.StepNetworkTrainer] trains the
layers below it with
a policy gradient.

[`staircase`][rlmetric.layers.staircase] is the hard function itself, used to score either at
evaluation.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

__all__ = [
    "SharpnessSchedule",
    "SmoothStep",
    "StochasticStep",
    "StraightThroughStep",
    "level_log_prob",
    "levels_from_logits",
    "staircase",
]


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
    # unrolled over the few thresholds: a [..., T] comparison summed over its last axis ran
    # about twice as slow on CPU (4 thresholds, 512 x 128 values)
    zero = tf.constant(0, x.dtype)
    steps = [
        tf.where(x > t, tf.constant(h, x.dtype), zero)
        for t, h in zip(thresholds, heights, strict=True)
    ]
    return low + tf.add_n(steps)


def _positive_number(name: str, value: Any) -> float:
    """``value`` as a float, or ``ValueError`` naming ``name`` unless it is a finite number > 0."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{name} must be a finite number > 0; received {value!r}.")
    return float(value)


def _level_terms(logits: tf.Tensor) -> tuple[list[tf.Tensor], tf.Tensor, list[tf.Tensor]]:
    """The columns of ``logits`` ``[..., V]``, their maximum and ``exp(column - maximum)``,
    unrolled over the few levels: TensorFlow's softmax, cumsum and gathers over a last axis of
    2-5 entries run several times slower on CPU than these elementwise ops (measured: 28 ms for
    a softmax of 1M binary units against 3 ms)."""
    columns = tf.unstack(logits, axis=-1)
    top = functools.reduce(tf.maximum, columns)
    return columns, top, [tf.exp(column - top) for column in columns]


def levels_from_logits(logits: Any, uniforms: Any) -> tf.Tensor:
    """Inverse-CDF draws of categorical levels: ``logits`` ``[..., V]``, ``uniforms`` ``[...]``
    in ``(0, 1)`` -> ``[...]`` int32, the number of cumulative probabilities below the uniform.

    Examples:
        >>> from rlmetric.layers import levels_from_logits
        >>> levels_from_logits([[0.0, 0.0], [0.0, 0.0]], [0.3, 0.7]).numpy()  # p = (.5, .5)
        array([0, 1], dtype=int32)
    """
    _, _, exps = _level_terms(tf.convert_to_tensor(logits))
    # u > cumsum(p)_j  <=>  u * sum(exp) > cumsum(exp)_j: no division
    threshold = tf.cast(uniforms, exps[0].dtype) * tf.add_n(exps)
    level, running = tf.zeros_like(threshold, tf.int32), tf.zeros_like(threshold)
    for term in exps[:-1]:
        running += term
        level += tf.cast(threshold > running, tf.int32)
    return level


def level_log_prob(logits: Any, levels: Any) -> tf.Tensor:
    """``[...]`` ``log softmax(logits)[levels]`` for ``logits`` ``[..., V]`` and int
    ``levels`` ``[...]``.

    Examples:
        >>> from rlmetric.layers import level_log_prob
        >>> round(float(level_log_prob([[0.0, 0.0]], [1])[0]), 4)  # log(1/2)
        -0.6931
    """
    columns, top, exps = _level_terms(tf.convert_to_tensor(logits))
    levels = tf.convert_to_tensor(levels)
    chosen = tf.add_n(
        [tf.where(tf.equal(levels, j), column, 0.0) for j, column in enumerate(columns)]
    )
    return chosen - top - tf.math.log(tf.add_n(exps))


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
    it approaches ``hard`` and its gradient vanishes between thresholds: the usual trade-off.

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
        self.sharpness = _positive_number("sharpness", sharpness)

    def build(self, input_shape):
        # a variable, so that a schedule (SharpnessSchedule) can raise it during training
        self._sharpness = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(self.sharpness),
            trainable=False,
            name="sharpness",
        )

    def set_sharpness(self, sharpness: float) -> None:
        """Sets the current slope (``sharpness`` in the config stays the initial one)."""
        sharpness = _positive_number("sharpness", sharpness)
        if not self.built:
            raise ValueError(f"Layer {self.name!r} is not built yet; call it on data first.")
        self._sharpness.assign(sharpness)

    def load_own_variables(self, store):
        if len(store.keys()) == 0:  # saved before the slope was a variable: the config's slope
            return
        super().load_own_variables(store)

    def call(self, x):
        t = tf.constant(self.thresholds, x.dtype)
        h = tf.constant(self.heights, x.dtype)
        sharpness, low = tf.cast(self._sharpness, x.dtype), self.low

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

    Args as [`SmoothStep`][rlmetric.layers.SmoothStep], without ``sharpness``.

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


@keras.saving.register_keras_serializable(package="rlmetric")
class StochasticStep(_StepLayer):
    r"""Step units whose level is a decision: drawn during training, the hard staircase at
    inference.

    Each unit of the input (its pre-activation ``x``) chooses one of the ``T + 1`` levels of the
    staircase with the categorical distribution of logits

    .. math:: z_0 = 0, \qquad z_j = \sum_{i \le j} (x - t_i) / \tau \quad (j = 1 \dots T),

    so consecutive logits differ by :math:`(x - t_j)/\tau`: the most likely level is the number
    of thresholds below ``x``, which is the hard staircase, and with one threshold the unit is a
    Bernoulli of probability :math:`\sigma((x - t)/\tau)` (the perceptron's :math:`H(x - t)`
    made stochastic). The default ``thresholds=(0.0,)`` is :math:`H(x)` with levels 0 and 1.

    * ``training=False`` (inference, ``predict``, ``evaluate``): the hard staircase,
      deterministic — the network that is deployed.
    * ``training=True``: a draw from the distribution (keras.random, the layer's own seed). The
      draw passes no gradient;
      [`rlmetric.step_networks.StepNetworkTrainer`][rlmetric.step_networks.StepNetworkTrainer] gives
      the
      layers below a policy gradient instead.

    Args:
        thresholds: ``T`` strictly increasing step positions (default ``(0.0,)``).
        heights: the jump at each threshold (a number or ``T`` numbers); default ``1 / T``.
        low: the level below the first threshold.
        temperature: :math:`\tau > 0`, the spread of the levels around the staircase (in the
            units of ``x``). The default 0.3 trained better than 1.0 and 0.1 on XOR and on
            the digits network of the bench (benchmarks/RESULTS.md, "Networks of step units").
        seed: seed of the draws of a plain ``training=True`` call.

    References:
        Williams (1992), Simple statistical gradient-following algorithms for connectionist
        reinforcement learning. Bengio, Leonard & Courville (2013), Estimating or propagating
        gradients through stochastic neurons for conditional computation.

    Examples:
        >>> import numpy as np
        >>> from rlmetric.layers import StochasticStep
        >>> step = StochasticStep(temperature=1.0)  # H(x)
        >>> x = np.array([[-2.0, 0.5, 3.0]], "float32")
        >>> step(x).numpy()  # inference: the hard step
        array([[0., 1., 1.]], dtype=float32)
        >>> np.round(step.level_probabilities(x).numpy()[0, :, 1], 3)  # P(level 1) = sigmoid(x)
        array([0.119, 0.622, 0.953], dtype=float32)
    """

    def __init__(
        self,
        thresholds: Sequence[float] = (0.0,),
        heights: float | Sequence[float] | None = None,
        low: float = 0.0,
        temperature: float = 0.3,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(thresholds, heights, low, **kwargs)
        self.temperature = _positive_number("temperature", temperature)
        self.seed = seed
        self._seed_generator = keras.random.SeedGenerator(seed, name="step_seed")

    @property
    def num_levels(self) -> int:
        """``T + 1``, the number of levels a unit chooses from."""
        return len(self.thresholds) + 1

    def level_logits(self, x: Any) -> tf.Tensor:
        """``[..., T + 1]`` logits of each unit's level, for pre-activations ``x`` ``[...]``."""
        x = tf.convert_to_tensor(x)
        t = tf.constant(self.thresholds, x.dtype)
        steps = (x[..., None] - t) / self.temperature  # [..., T]
        # z_j = sum_{i < j} steps_i as one product ([T, T + 1] strictly upper triangular ones):
        # a cumsum over the short last axis is several times slower on CPU
        count = len(self.thresholds)
        partial_sums = np.triu(np.ones((count, count + 1)), k=1)
        return tf.tensordot(steps, tf.constant(partial_sums, x.dtype), axes=1)

    def level_probabilities(self, x: Any) -> tf.Tensor:
        """``[..., T + 1]`` the probability of each level."""
        return tf.nn.softmax(self.level_logits(x), axis=-1)

    def mode_levels(self, x: Any) -> tf.Tensor:
        """``[...]`` int32 index of the hard staircase's level (the most likely level)."""
        x = tf.convert_to_tensor(x)
        t = tf.constant(self.thresholds, x.dtype)
        return tf.reduce_sum(tf.cast(x[..., None] > t, tf.int32), axis=-1)

    def sample_levels(self, x: Any, uniforms: Any) -> tf.Tensor:
        """``[...]`` int32 level indices drawn by inverting the CDF at ``uniforms`` ``[...]``
        (same shape as ``x``): the level is the number of cumulative probabilities below the
        uniform. With one threshold, level 1 iff ``uniform > 1 - sigmoid((x - t) / tau)``, so
        ``uniforms`` and ``1 - uniforms`` give DisARM's antithetic pair."""
        return levels_from_logits(self.level_logits(x), uniforms)

    def level_values(self, levels: Any, dtype: Any = "float32") -> tf.Tensor:
        """``[...]`` the output value of level indices ``levels`` ``[...]``."""
        # the staircase of the level index, with a step after each index (a gather from the
        # table of levels is several times slower under XLA on CPU)
        index = tf.cast(levels, dtype)
        return staircase(index, np.arange(len(self.heights)) + 0.5, self.heights, self.low)

    def call(self, x, training=None):
        if not training:
            return self.hard(x)
        uniforms = keras.random.uniform(tf.shape(x), seed=self._seed_generator, dtype=x.dtype)
        return self.level_values(self.sample_levels(x, uniforms), x.dtype)

    def get_config(self) -> dict:
        return {**super().get_config(), "temperature": self.temperature, "seed": self.seed}


class SharpnessSchedule(keras.callbacks.Callback):
    """Raises the slope of every [`SmoothStep`][rlmetric.layers.SmoothStep] of the model
    geometrically from ``start``
    (first epoch) to ``end`` (last epoch of ``fit``): smooth early, when gradients must flow,
    and close to the hard staircase by the end (annealing the smoothed staircase).

    Examples:
        >>> import keras, numpy as np
        >>> from rlmetric.layers import SharpnessSchedule, SmoothStep
        >>> step = SmoothStep([0.0], sharpness=1.0)
        >>> model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1), step])
        >>> model.compile("sgd", "mse")
        >>> x = np.zeros((8, 1), "float32")
        >>> _ = model.fit(x, x, epochs=3, verbose=0, callbacks=[SharpnessSchedule(1.0, 100.0)])
        >>> round(float(step._sharpness.numpy()), 3)  # the last epoch's slope
        100.0
    """

    def __init__(self, start: float, end: float) -> None:
        super().__init__()
        values = (start, end)
        if not all(isinstance(v, int | float) and math.isfinite(v) and v > 0 for v in values):
            raise ValueError(f"start and end must be finite numbers > 0; received {values}.")
        self.start, self.end = float(start), float(end)

    def on_epoch_begin(self, epoch, logs=None):
        last = max(int(self.params.get("epochs", 1)) - 1, 1)
        sharpness = self.start * (self.end / self.start) ** (min(epoch, last) / last)
        for layer in self.model._flatten_layers(include_self=False):
            if isinstance(layer, SmoothStep):
                layer.set_sharpness(sharpness)
