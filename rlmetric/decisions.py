"""Decisions made by an optimizer from the model's predictions (predict, then optimize), and the
reward that scores them: the regret of the decision under the true parameters.

The model predicts the costs ``c_hat [B, d]`` of a linear problem ``min_{w in S} c . w`` over a
finite set ``S`` of feasible decisions (the paths of a grid, the subsets of items that fit); the
decision is ``w(c_hat)``; its regret under the true costs ``c`` is ``c . w(c_hat) - min_w c . w``.
The regret is piecewise constant in ``c_hat``: no gradient. Train on it with a Gaussian policy
over the costs (``policies.Gaussian(std=...)``) and [`Regret`][rlmetric.decisions.Regret] as the
reward, or compare with
the SPO+ surrogate ([`SPOPlus`][rlmetric.decisions.SPOPlus], Elmachtoub & Grigas 2022).

Examples:
    >>> import tensorflow as tf
    >>> from rlmetric import decisions
    >>> paths = decisions.grid_paths(3, 3)  # the 6 monotone paths of a 3x3 grid, 12 edges
    >>> paths.shape
    (6, 12)
    >>> solver = decisions.LinearOptimizer(paths)
    >>> costs = tf.ones([1, 12])
    >>> float(tf.reduce_sum(solver(costs) * costs))  # every path has 4 edges
    4.0
"""

from __future__ import annotations

import itertools
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from rlmetric.custom_rewards import ProbedReward

__all__ = [
    "grid_paths",
    "LinearOptimizer",
    "Regret",
    "SPOPlus",
    "normalized_regret",
    "KnapsackOptimizer",
    "KnapsackProfit",
]


def grid_paths(rows: int, cols: int) -> np.ndarray:
    """Every path from the top-left to the bottom-right node of a ``rows x cols`` grid that moves
    right or down, as 0/1 edge indicators ``[S, E]``.

    Edges are numbered row by row: first the ``rows (cols - 1)`` rightward edges, then the
    ``(rows - 1) cols`` downward edges (``E = 40`` for 5 x 5, ``S = 70`` paths).

    Examples:
        >>> from rlmetric import decisions
        >>> decisions.grid_paths(2, 2)  # edges: right 0, right 1, down 0, down 1
        array([[0., 1., 1., 0.],
               [1., 0., 0., 1.]], dtype=float32)
    """
    for arg, value in (("rows", rows), ("cols", cols)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 2:
            raise ValueError(f"{arg} must be an int >= 2; received {arg}={value!r}.")
    right = rows * (cols - 1)
    num_edges = right + (rows - 1) * cols
    paths = []
    moves = (rows - 1) + (cols - 1)
    for downs in itertools.combinations(range(moves), rows - 1):
        path = np.zeros(num_edges, np.float32)
        r = c = 0
        for step in range(moves):
            if step in downs:
                path[right + r * cols + c] = 1.0
                r += 1
            else:
                path[r * (cols - 1) + c] = 1.0
                c += 1
        paths.append(path)
    return np.stack(paths)


@keras.saving.register_keras_serializable(package="rlmetric")
class LinearOptimizer:
    """``w(c) = argmin_{w in S} c . w`` over an enumerated feasible set ``S [S, d]``, vectorized
    over any leading axes: ``costs [..., d] -> decisions [..., d]`` (float32).

    Exact, at ``O(S d)`` per problem: for sets of up to some thousands of decisions (the 70
    paths of a 5 x 5 grid, the 1,024 subsets of 10 items).

    Args:
        decisions: ``[S, d]`` the feasible decisions.
        sense: ``"min"`` (costs) or ``"max"`` (values).

    Examples:
        >>> from rlmetric import decisions
        >>> routes = decisions.LinearOptimizer([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        >>> routes([[1.0, 1.0, 3.0], [2.0, 2.0, 3.0]]).numpy()  # [B, d] -> the cheaper route
        array([[1., 1., 0.],
               [0., 0., 1.]], dtype=float32)
        >>> routes.optimal_value([[1.0, 1.0, 3.0]]).numpy()
        array([2.], dtype=float32)
    """

    def __init__(self, decisions: Any, sense: str = "min") -> None:
        decisions = np.asarray(decisions, np.float32)
        if decisions.ndim != 2 or decisions.shape[0] < 1:
            raise ValueError(
                f"decisions must be a [S, d] array of S >= 1 feasible decisions; received "
                f"shape {decisions.shape}."
            )
        if sense not in ("min", "max"):
            raise ValueError(f"sense must be 'min' or 'max'; received sense={sense!r}.")
        self.decisions, self.sense = decisions, sense

    @property
    def size(self) -> int:
        """``d``, the length of a decision."""
        return int(self.decisions.shape[1])

    def objectives(self, costs: tf.Tensor) -> tf.Tensor:
        """``costs [..., d] -> [..., S]``: the objective of every feasible decision."""
        costs = tf.convert_to_tensor(costs, tf.float32)
        return tf.einsum("...d,sd->...s", costs, tf.constant(self.decisions))

    def __call__(self, costs: tf.Tensor) -> tf.Tensor:
        objectives = self.objectives(costs)
        best = (
            tf.argmin(objectives, axis=-1)
            if self.sense == "min"
            else tf.argmax(objectives, axis=-1)
        )
        return tf.gather(tf.constant(self.decisions), best)

    def optimal_value(self, costs: tf.Tensor) -> tf.Tensor:
        """``costs [..., d] -> [...]``: the best objective."""
        objectives = self.objectives(costs)
        reduce = tf.reduce_min if self.sense == "min" else tf.reduce_max
        return reduce(objectives, axis=-1)

    def get_config(self) -> dict:
        return {"decisions": self.decisions.tolist(), "sense": self.sense}

    @classmethod
    def from_config(cls, config: dict) -> LinearOptimizer:
        return cls(**config)

    def __repr__(self) -> str:
        return (
            f"LinearOptimizer({self.decisions.shape[0]} decisions of {self.size}, {self.sense!r})"
        )


@keras.saving.register_keras_serializable(package="rlmetric")
class Regret(ProbedReward):
    """Minus the regret of deciding on predicted costs: one term per example,
    ``-(c . w(c_hat) - min_w c . w)``, with the true costs ``c`` as labels ``[B, d]`` and the
    policy's sampled costs ``c_hat [M, B, d]`` as actions. The reward is their mean over the
    batch (``per_example=True``: REINFORCE credits each example with its own regret and a
    leave-one-out baseline over its own samples).

    Args:
        optimizer: a [`LinearOptimizer`][rlmetric.decisions.LinearOptimizer] (or any callable
            ``costs [..., d] -> w [..., d]``
            with ``optimal_value``).
        name: the Keras metric name (``val_regret`` holds minus the mean regret).

    Examples:
        >>> import tensorflow as tf
        >>> from rlmetric import decisions
        >>> reward = decisions.Regret(decisions.LinearOptimizer([[1.0, 0.0], [0.0, 1.0]]))
        >>> true_costs = tf.constant([[1.0, 3.0]])  # the first option is best
        >>> predicted = tf.constant([[[1.0, 2.0]], [[2.0, 1.0]]])  # [M=2, B=1, d=2]
        >>> reward(true_costs, predicted).numpy()  # right, then wrong by 3 - 1
        array([ 0., -2.], dtype=float32)
    """

    def __init__(self, optimizer: LinearOptimizer, name: str = "regret") -> None:
        if not callable(optimizer) or not hasattr(optimizer, "optimal_value"):
            raise TypeError(
                "optimizer must be a callable costs -> decisions with optimal_value(costs), "
                f"such as decisions.LinearOptimizer; received {optimizer!r}."
            )
        self.optimizer = optimizer
        super().__init__(per_example=True, name=name)

    def terms(self, y_true: tf.Tensor, actions: tf.Tensor) -> tf.Tensor:
        costs = tf.cast(y_true, tf.float32)  # [B, d]
        chosen = self.optimizer(tf.cast(actions, tf.float32))  # [M, B, d]
        realized = tf.reduce_sum(chosen * costs[None], axis=-1)  # [M, B]
        return self.optimizer.optimal_value(costs)[None] - realized

    def get_config(self) -> dict:
        return {"optimizer": keras.saving.serialize_keras_object(self.optimizer), "name": self.name}

    @classmethod
    def from_config(cls, config: dict) -> Regret:
        config = dict(config)
        config["optimizer"] = keras.saving.deserialize_keras_object(config["optimizer"])
        return cls(**config)

    def __repr__(self) -> str:
        return f"Regret({self.optimizer!r})"


@keras.saving.register_keras_serializable(package="rlmetric")
class SPOPlus(keras.losses.Loss):
    """The SPO+ loss (Elmachtoub & Grigas 2022, "Smart Predict, then Optimize"), the convex
    surrogate of the regret of a linear problem: with ``w*`` the true optimum and
    ``w~ = w(2 c_hat - c)``, ``l = -(2 c_hat - c) . w~ + 2 c_hat . w* - c . w*``, whose gradient
    is ``2 (w* - w~)``. Labels are the true costs ``[B, d]``, predictions the costs ``[B, d]``.

    Examples:
        >>> import tensorflow as tf
        >>> from rlmetric import decisions
        >>> loss = decisions.SPOPlus(decisions.LinearOptimizer([[1.0, 0.0], [0.0, 1.0]]))
        >>> float(loss(tf.constant([[1.0, 3.0]]), tf.constant([[1.0, 3.0]])))  # right: 0
        0.0
    """

    def __init__(self, optimizer: LinearOptimizer, name: str = "spo_plus", **kwargs) -> None:
        super().__init__(name=name, **kwargs)
        self.optimizer = optimizer

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        costs = tf.cast(y_true, y_pred.dtype)
        best = tf.stop_gradient(self.optimizer(costs))
        contrast = tf.stop_gradient(self.optimizer(2.0 * y_pred - costs))
        return (
            -tf.reduce_sum((2.0 * y_pred - costs) * contrast, axis=-1)
            + 2.0 * tf.reduce_sum(y_pred * best, axis=-1)
            - tf.reduce_sum(costs * best, axis=-1)
        )

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "optimizer": keras.saving.serialize_keras_object(self.optimizer),
        }

    @classmethod
    def from_config(cls, config: dict) -> SPOPlus:
        config = dict(config)
        config["optimizer"] = keras.saving.deserialize_keras_object(config["optimizer"])
        return cls(**config)


def normalized_regret(
    optimizer: LinearOptimizer, true_costs: np.ndarray, decisions: np.ndarray
) -> float:
    """``sum(c . w - min c . w) / sum(min c . w)`` over the examples: the test metric of the
    SPO paper and PyEPO (``true_costs`` and ``decisions`` ``[N, d]``).

    Examples:
        >>> import numpy as np
        >>> from rlmetric import decisions
        >>> routes = decisions.LinearOptimizer([[1.0, 0.0], [0.0, 1.0]])
        >>> costs = np.array([[1.0, 3.0], [2.0, 1.0]])  # optimal total 1 + 1 = 2
        >>> decisions.normalized_regret(routes, costs, np.array([[0, 1], [0, 1]]))  # 2 over 2
        1.0
    """
    costs = tf.constant(true_costs, tf.float32)
    optimal = optimizer.optimal_value(costs).numpy()
    realized = np.sum(np.asarray(true_costs) * np.asarray(decisions), axis=-1)
    return float(np.sum(realized - optimal) / np.sum(optimal))


@keras.saving.register_keras_serializable(package="rlmetric")
class KnapsackOptimizer:
    """The most valuable subset of ``n`` items whose predicted weights fit a capacity, by
    enumerating the ``2^n`` subsets: ``weights [..., n] -> chosen [..., n]`` (0/1 float32).

    Args:
        values: ``[n]`` the items' values (known).
        capacity: the capacity the predicted weights must fit (times ``safety``).
        safety: plan for ``safety * capacity`` (below 1: a margin against weights above their
            prediction).

    Examples:
        >>> from rlmetric import decisions
        >>> knapsack = decisions.KnapsackOptimizer([3.0, 2.0, 2.0], capacity=2.0)
        >>> knapsack([[1.0, 1.5, 1.0]]).numpy()  # 3 + 2 fits (weight 2); item 2 would not
        array([[1., 0., 1.]], dtype=float32)
    """

    def __init__(self, values: Any, capacity: float, safety: float = 1.0) -> None:
        values = np.asarray(values, np.float32)
        if values.ndim != 1 or not 1 <= values.size <= 16:
            raise ValueError(
                f"values must be [n] with 1 <= n <= 16 items (2^n subsets are enumerated); "
                f"received shape {values.shape}."
            )
        for arg, value in (("capacity", capacity), ("safety", safety)):
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"{arg} must be a finite number > 0; received {arg}={value!r}.")
        self.values, self.capacity, self.safety = values, float(capacity), float(safety)
        bits = np.arange(2**values.size)[:, None] >> np.arange(values.size)[None, :]
        self.subsets = (bits & 1).astype(np.float32)  # [S, n]

    def __call__(self, weights: tf.Tensor) -> tf.Tensor:
        weights = tf.convert_to_tensor(weights, tf.float32)
        subsets = tf.constant(self.subsets)
        load = tf.einsum("...n,sn->...s", weights, subsets)  # [..., S]
        worth = tf.linalg.matvec(subsets, tf.constant(self.values))  # [S]
        fits = load <= self.safety * self.capacity
        score = tf.where(fits, worth, -1.0)  # the empty set always fits (worth 0)
        return tf.gather(subsets, tf.argmax(score, axis=-1))

    def get_config(self) -> dict:
        return {"values": self.values.tolist(), "capacity": self.capacity, "safety": self.safety}

    @classmethod
    def from_config(cls, config: dict) -> KnapsackOptimizer:
        return cls(**config)


@keras.saving.register_keras_serializable(package="rlmetric")
class KnapsackProfit(ProbedReward):
    """The realized worth of the subset chosen on predicted weights: its items' values minus
    ``penalty`` per unit of realized weight over the capacity. Labels are the realized weights
    ``[B, n]``, actions the policy's sampled weights ``[M, B, n]``; one term per example.

    Examples:
        >>> import tensorflow as tf
        >>> from rlmetric import decisions
        >>> knapsack = decisions.KnapsackOptimizer([3.0, 2.0], capacity=2.0)
        >>> reward = decisions.KnapsackProfit(knapsack, penalty=10.0)
        >>> realized = tf.constant([[1.5, 1.0]])  # together 2.5: both do not fit
        >>> predicted = tf.constant([[[1.0, 1.0]], [[1.5, 1.0]]])  # both / the first only
        >>> reward(realized, predicted).numpy()  # 5 - 10 * 0.5, then 3
        array([0., 3.], dtype=float32)
    """

    def __init__(
        self, optimizer: KnapsackOptimizer, penalty: float = 10.0, name: str = "profit"
    ) -> None:
        if not np.isfinite(penalty) or penalty < 0:
            raise ValueError(f"penalty must be a finite number >= 0; received {penalty!r}.")
        self.optimizer, self.penalty = optimizer, float(penalty)
        super().__init__(per_example=True, name=name)

    def terms(self, y_true: tf.Tensor, actions: tf.Tensor) -> tf.Tensor:
        realized = tf.cast(y_true, tf.float32)[None]  # [1, B, n]
        chosen = self.optimizer(tf.cast(actions, tf.float32))  # [M, B, n]
        worth = tf.linalg.matvec(chosen, tf.constant(self.optimizer.values))
        overflow = tf.nn.relu(tf.reduce_sum(chosen * realized, -1) - self.optimizer.capacity)
        return worth - self.penalty * overflow

    def get_config(self) -> dict:
        return {
            "optimizer": keras.saving.serialize_keras_object(self.optimizer),
            "penalty": self.penalty,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config: dict) -> KnapsackProfit:
        config = dict(config)
        config["optimizer"] = keras.saving.deserialize_keras_object(config["optimizer"])
        return cls(**config)
