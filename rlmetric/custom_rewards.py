"""Rewards around user code: a TensorFlow function (:class:`CallableReward`) or a NumPy metric
such as scikit-learn's (:class:`NumpyReward`, :func:`from_numpy`). Re-exported by
:mod:`rlmetric.rewards`."""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from rlmetric.reward_base import Reward

__all__ = ["CallableReward", "NumpyReward", "from_numpy"]


@keras.saving.register_keras_serializable(package="rlmetric")
class CallableReward(Reward):
    """Wraps a TensorFlow function ``fn(y_true [B, ...], actions [K, B, ...]) -> [K]``.

    Saved by reference, as Keras saves custom loss functions: loading finds ``fn`` in its module
    if that is importable, else by its name in ``custom_objects`` (or registered with
    ``keras.saving.register_keras_serializable``).

    Examples:
        >>> import tensorflow as tf
        >>> from rlmetric import rewards
        >>> def positives(y_true, actions):  # any TF function [B, ...], [K, B, ...] -> [K]
        ...     return tf.reduce_mean(tf.cast(actions, tf.float32), axis=1)
        >>> reward = rewards.get(positives)  # wrapped in a CallableReward
        >>> reward.name, reward(tf.constant([1, 0]), tf.constant([[1, 1], [0, 1]])).numpy()
        ('positives', array([1. , 0.5], dtype=float32))
    """

    def __init__(self, fn: Callable[[tf.Tensor, tf.Tensor], tf.Tensor], name: str | None = None):
        if not callable(fn):
            raise TypeError(f"reward must be callable; received {fn!r}.")
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "reward")

    def __call__(self, y_true: tf.Tensor, actions: tf.Tensor) -> tf.Tensor:
        return self.fn(y_true, actions)

    def get_config(self) -> dict:
        return {"fn": keras.saving.serialize_keras_object(self.fn), "name": self.name}

    @classmethod
    def from_config(cls, config: dict) -> CallableReward:
        try:
            fn = keras.saving.deserialize_keras_object(config["fn"])
        except (TypeError, ValueError) as error:
            fn_name = config["fn"].get("config") if isinstance(config["fn"], dict) else None
            raise TypeError(
                f"The reward function {fn_name!r} is not known here: load with "
                f"custom_objects={{{fn_name!r}: {fn_name}}} (as for a custom Keras loss), or "
                "register it with @keras.saving.register_keras_serializable()."
            ) from error
        return cls(fn, config.get("name"))


class NumpyReward(Reward):
    """Scores each of the ``K`` decision sets with a Python function ``fn(y_true, y_pred)``.

    Runs through ``tf.numpy_function``: slower than the TensorFlow rewards (a Python call per
    sample set and step, and a host round trip), and not compatible with XLA
    (``jit_compile=True``). Arrays reach ``fn`` as scikit-learn expects them: ``[B, L]`` multi-label
    decisions stay 2-D, every other shape is raveled to 1-D.

    Examples:
        >>> import numpy as np
        >>> from sklearn.metrics import f1_score
        >>> from rlmetric.rewards import NumpyReward
        >>> reward = NumpyReward(f1_score)  # what rewards.from_numpy(f1_score) returns
        >>> reward(np.array([[1], [0]]), np.array([[[1], [0]], [[0], [0]]])).numpy()
        array([1., 0.], dtype=float32)
    """

    xla_compatible = False

    def __init__(self, fn: Callable[[np.ndarray, np.ndarray], float], name: str | None = None):
        if not callable(fn):
            raise TypeError(f"rewards.from_numpy expects a callable; received {fn!r}.")
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "reward")

    def _score_all(self, y_true: np.ndarray, actions: np.ndarray) -> np.ndarray:
        multilabel = actions.ndim == 3 and actions.shape[-1] > 1
        if not multilabel:
            y_true = y_true.reshape(-1)
            actions = actions.reshape(actions.shape[0], -1)
        return np.asarray([self.fn(y_true, sample) for sample in actions], dtype=np.float32)

    def __call__(self, y_true: tf.Tensor, actions: tf.Tensor) -> tf.Tensor:
        actions = tf.convert_to_tensor(actions)
        scores = tf.numpy_function(
            self._score_all, [tf.convert_to_tensor(y_true), actions], tf.float32, stateful=False
        )
        return tf.reshape(scores, tf.shape(actions)[:1])

    def get_config(self) -> dict:
        raise TypeError(
            f"The reward {self.name!r} wraps a Python function (rewards.from_numpy) and cannot be "
            "serialized; save the wrapped Keras model (trainer.model.save(...)) instead."
        )


def from_numpy(
    fn: Callable[[np.ndarray, np.ndarray], float], name: str | None = None
) -> NumpyReward:
    """Wraps a black-box ``fn(y_true, y_pred) -> float`` (e.g. ``sklearn.metrics.f1_score``).

    Slower than the built-in rewards and not usable with ``jit_compile=True``.

    Examples:
        >>> import numpy as np
        >>> from sklearn.metrics import balanced_accuracy_score
        >>> from rlmetric import rewards
        >>> reward = rewards.from_numpy(balanced_accuracy_score)
        >>> reward(np.array([1, 0, 0, 0]), np.array([[1, 0, 0, 0], [0, 0, 0, 0]])).numpy()
        array([1. , 0.5], dtype=float32)
    """
    return NumpyReward(fn, name)
