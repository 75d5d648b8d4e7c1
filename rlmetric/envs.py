"""gymnasium environments in which the reward is a metric of a batch of predictions.

``MetricEnv`` turns a labelled data set into an episodic environment: each step shows a batch of
inputs, takes the predictions for the whole batch as one action, and pays the batch's metric
(F1, IoU, ...). An episode is one pass over the data. Registered as ``rlmetric/Metric-v0``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import tensorflow as tf

from rlmetric import rewards as rewards_lib
from rlmetric._inputs import are_class_ids

__all__ = ["MetricEnv"]


class MetricEnv(gym.Env):
    """One pass over ``(x, y)`` in batches; the reward of a step is the metric of its batch.

    Args:
        x: inputs ``[N, ...]``; observations are float32 batches ``[batch_size, ...]``.
        y: labels ``[N, ...]``: 0/1 for ``policy="bernoulli"``, class ids for ``"categorical"``.
        reward: a [`rlmetric.rewards`][rlmetric.rewards] reward or alias (``"f1"``, ``"miou"``, ...)
            or a TF
            callable ``reward(y_true [B, ...], actions [K, B, ...]) -> [K]``.
        batch_size: examples per step. The last ``N % batch_size`` examples of each (shuffled)
            pass are left out so that every observation has the same shape.
        policy: ``"bernoulli"`` (action space ``MultiBinary`` of the label shape) or
            ``"categorical"`` (``MultiDiscrete`` with ``num_classes`` values per element).
        shuffle: draw a new order for every episode from the env's ``np_random``.
        seed: seeds the first ``reset`` (``reset(seed=...)`` reseeds, as in gymnasium).
        num_classes: classes for ``"categorical"``; default ``y.max() + 1``.

    Examples:
        >>> import numpy as np
        >>> from rlmetric.envs import MetricEnv
        >>> x, y = np.zeros([8, 3], "float32"), np.array([1, 0, 1, 1, 0, 0, 1, 0])
        >>> env = MetricEnv(x, y, reward="accuracy", batch_size=4, shuffle=False)
        >>> observation, _ = env.reset(seed=0)
        >>> observation.shape
        (4, 3)
        >>> _, reward, terminated, _, _ = env.step(np.array([1, 0, 1, 0]))  # 3 of 4 right
        >>> reward, terminated
        (0.75, False)
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        x: Any,
        y: Any,
        reward: Any = "f1",
        batch_size: int = 64,
        policy: str = "bernoulli",
        shuffle: bool = True,
        seed: int | None = None,
        num_classes: int | None = None,
    ) -> None:
        x = np.asarray(x, dtype=np.float32)
        y = np.asarray(y)
        if not np.all(np.isfinite(x)):
            raise ValueError(
                f"x holds {int(np.sum(~np.isfinite(x)))} NaN or infinite value(s); observations "
                "must be finite (impute or drop those rows first)."
            )
        if not (np.issubdtype(y.dtype, np.number) or y.dtype == bool):
            raise TypeError(
                f"y must hold numeric labels; received an array of dtype {y.dtype}. Map string "
                "labels to ids first (e.g. sklearn.preprocessing.LabelEncoder)."
            )
        if x.ndim < 1 or y.ndim < 1 or len(x) != len(y):
            raise ValueError(
                f"x and y must have the same number of rows; received x of shape {x.shape} and "
                f"y of shape {y.shape}."
            )
        if not isinstance(batch_size, int | np.integer) or not 1 <= batch_size <= len(x):
            raise ValueError(
                f"batch_size must be an int in [1, {len(x)}] (the number of rows); received "
                f"batch_size={batch_size!r}."
            )
        if policy not in ("bernoulli", "categorical"):
            raise ValueError(
                f"policy must be 'bernoulli' or 'categorical'; received policy={policy!r}."
            )
        label_values = np.unique(y)
        if policy == "bernoulli":
            self._num_values = 2
            if not are_class_ids(label_values, 2):
                raise ValueError(
                    f"y must hold binary labels (0 or 1) for policy='bernoulli'; received values "
                    f"{label_values[:8].tolist()}."
                )
            self.action_space = gym.spaces.MultiBinary(list((batch_size, *y.shape[1:])))
        else:
            num_classes = int(num_classes or label_values.max() + 1)
            self._num_values = num_classes
            if not are_class_ids(label_values, num_classes):
                raise ValueError(
                    f"y must hold class ids in [0, {num_classes}); received values "
                    f"{label_values[:8].tolist()}."
                )
            self.action_space = gym.spaces.MultiDiscrete(
                np.full((batch_size, *y.shape[1:]), num_classes, dtype=np.int64)
            )
        reward = rewards_lib.get(reward)
        if policy == "categorical" and isinstance(reward, rewards_lib.CountReward):
            if reward.num_classes is None:
                reward = type(reward).from_config(
                    {**reward.get_config(), "num_classes": num_classes}
                )
        self.reward = reward
        batch_shape = (batch_size, *x.shape[1:])
        self.observation_space = gym.spaces.Box(  # bounded by the data's range per feature
            np.broadcast_to(x.min(axis=0), batch_shape),
            np.broadcast_to(x.max(axis=0), batch_shape),
            shape=batch_shape,
            dtype=np.float32,
        )
        self.x, self.y = x, y.astype(np.int32)
        self.batch_size = int(batch_size)
        self.policy = policy
        self.shuffle = shuffle
        self.num_batches = len(x) // self.batch_size
        self._seed = seed
        self._order = np.arange(len(x))
        self._position = 0

    def _decision_hint(self) -> str:
        if self.policy == "bernoulli":
            return "0 or 1 (policy='bernoulli')"
        return f"in [0, {self._num_values}) (policy='categorical')"

    def _batch(self, index: int) -> np.ndarray:
        rows = self._order[index * self.batch_size : (index + 1) * self.batch_size]
        return rows

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is None and self._seed is not None:
            seed, self._seed = self._seed, None
        super().reset(seed=seed)
        if self.shuffle:
            self._order = self.np_random.permutation(len(self.x))
        self._position = 0
        return self.x[self._batch(0)].copy(), {"batch": 0}

    def step(self, action: Any):
        action = np.asarray(action)
        if action.shape != self.action_space.shape:
            raise ValueError(
                f"MetricEnv.step expects predictions of shape {self.action_space.shape} (one per "
                f"label of the batch); received an action of shape {action.shape}."
            )
        values = np.unique(action)
        if not are_class_ids(values, self._num_values):
            raise ValueError(
                f"MetricEnv.step expects decisions {self._decision_hint()}; received an action "
                f"with values {values[:8].tolist()}."
            )
        rows = self._batch(self._position)
        scores = self.reward(tf.constant(self.y[rows]), tf.constant(action[None], tf.int32))
        score = float(np.asarray(scores).reshape(-1)[0])
        self._position += 1
        terminated = self._position >= self.num_batches
        next_index = self._position if not terminated else self._position - 1
        observation = self.x[self._batch(next_index)].copy()
        return observation, score, terminated, False, {"batch": self._position}


gym.register(id="rlmetric/Metric-v0", entry_point="rlmetric.envs:MetricEnv")
