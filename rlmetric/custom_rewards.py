"""Rewards around user code: a TensorFlow function
([`CallableReward`][rlmetric.custom_rewards.CallableReward]) or a NumPy metric
such as scikit-learn's ([`NumpyReward`][rlmetric.custom_rewards.NumpyReward],
[`from_numpy`][rlmetric.custom_rewards.from_numpy]). Re-exported by
[`rlmetric.rewards`][rlmetric.rewards].

Both are [`ProbedReward`][rlmetric.custom_rewards.ProbedReward] s: the per-element credit that the
best response and local
expectation need
([`ProbedReward.local_rewards`][rlmetric.custom_rewards.ProbedReward.local_rewards],
[`ProbedReward.coupled_gains`][rlmetric.custom_rewards.ProbedReward.coupled_gains]) is
found by calling the function on changed decision sets, batched along the leading axis.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from rlmetric import _probe_kernels as kernels
from rlmetric.reward_base import Reward

__all__ = ["ProbedReward", "CallableReward", "NumpyReward", "from_numpy", "EXCHANGEABLE"]

#: The values of ``exchangeable``: ``None`` (probe on the first batch), ``True`` (the same as
#: ``"elements"``), ``False`` (no symmetry: a budget of elements per step), or a level of
#: ``rlmetric._probe_kernels.LEVELS``.
EXCHANGEABLE = (None, True, False, *kernels.LEVELS)


def _add_note(error: BaseException, note: str) -> None:
    if hasattr(error, "add_note"):  # Python >= 3.11
        error.add_note(note)


class ProbedReward(Reward):
    """A reward known only as a function, with per-element credit found by probing it.

    Subclasses implement [`terms`][rlmetric.rewards.ProbedReward.terms]: the reward of ``M``
    decision sets at once (``[M]``), or
    for ``per_example=True`` one term per example (``[M, B]``, the reward is their mean).

    How the credit is found (each is a batched call of the function on changed sets):

    * ``per_example=True``: a decision changes only its example's term, so each position
      inside an example is set to each value in all examples at once: ``P V`` sets for ``P``
      decisions per example and ``V`` values. Exact.
    * exchangeable (a permutation of the examples, labels and decisions together, leaves the
      value unchanged: F1, IoU, most batch metrics): the change of one element's decision has
      an effect that depends only on its (label, old value, new value), so ``V^2 (V - 1)``
      changed sets give every element's effect exactly, whatever the batch size (``G`` times
      that for ``G`` groups, e.g. the ``L`` labels of a macro average over labels).
    * ``exchangeable=False``: ``budget`` elements drawn at random per step are changed
      (``budget * V`` sets); the others get no credit that step.
    * [`coupled_gains`][rlmetric.rewards.ProbedReward.coupled_gains]
    (``LocalBestResponse(context="coupled")``): ``points + 1`` nested
      sets, the elements turning wrong in the order of decreasing error.

    Args:
        exchangeable: ``None`` (default: probed on the first batch of ``fit``, by scoring
            jointly permuted copies), ``True`` (all elements of the batch are interchangeable),
            ``"examples"`` (the examples are, the positions inside one are not),
            ``"within_examples"`` (the positions inside each example are), or ``False``.
        budget: for ``exchangeable=False``, the elements changed per step.
        points: the nested sets of [`coupled_gains`][rlmetric.rewards.ProbedReward.coupled_gains].
        per_example: the function returns one term per example ``[M, B]``.

    Examples:
        An if-else metric of one decision per example: +10 per hit, -3 per false alarm, -5
        when more than half the batch is flagged. Its local rewards are those of every set with
        one decision flipped, from 2^2 (2 - 1) = 4 changed sets however large the batch.

        >>> import tensorflow as tf
        >>> from rlmetric import rewards
        >>> def profit(y_true, sets):  # [B, 1], [M, B, 1] -> [M]
        ...     y, a = tf.cast(y_true[None], tf.float32), tf.cast(sets, tf.float32)
        ...     value = tf.reduce_sum(10 * a * y - 3 * a * (1 - y), axis=[1, 2])
        ...     return tf.where(tf.reduce_mean(a, axis=[1, 2]) > 0.5, value - 5, value)
        >>> reward = rewards.CallableReward(profit)  # a ProbedReward
        >>> y, actions = tf.constant([[1], [0], [0]]), tf.constant([[[1], [0], [0]]])
        >>> reward.prepare(y, actions)  # what fit does on the first batch
        >>> reward.structure
        'elements'
        >>> reward.local_rewards(y, actions, num_values=2)[0].numpy()  # [N, V]: set to 0 or 1
        array([[ 0., 10.],
               [10.,  2.],
               [10.,  2.]], dtype=float32)
    """

    def __init__(
        self,
        exchangeable: bool | str | None = None,
        budget: int = 64,
        points: int = 64,
        per_example: bool = False,
        name: str | None = None,
    ) -> None:
        if exchangeable not in EXCHANGEABLE:
            raise ValueError(
                f"exchangeable must be one of {list(EXCHANGEABLE)}; received "
                f"exchangeable={exchangeable!r}."
            )
        for arg, value in (("budget", budget), ("points", points)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{arg} must be an int >= 1; received {arg}={value!r}.")
        if not isinstance(per_example, bool):
            raise TypeError(f"per_example must be a bool; received per_example={per_example!r}.")
        self.exchangeable = exchangeable
        self.budget, self.points, self.per_example = int(budget), int(points), per_example
        # what the probe found: a level, False, or None while not probed
        self.structure = "elements" if exchangeable is True else exchangeable
        if name is not None:
            self.name = name

    supports_coupled_gains = True

    # -- the function ---------------------------------------------------------------------------
    def terms(self, y_true: tf.Tensor, actions: tf.Tensor) -> tf.Tensor:
        """The function on ``actions [M, B, ...]``: ``[M]``, or ``[M, B]`` per example."""
        raise NotImplementedError

    def _checked_terms(self, y_true: tf.Tensor, actions: tf.Tensor) -> tf.Tensor:
        actions = tf.convert_to_tensor(actions)
        if tf.executing_eagerly():
            try:
                values = self.terms(y_true, actions)
            except Exception as error:  # the user's own exception, with the reward named
                _add_note(error, f"(raised by the reward {self.name!r})")
                raise
        else:
            values = self.terms(y_true, actions)
        values = tf.convert_to_tensor(values)
        expected = "[M, B]" if self.per_example else "[M]"
        rank = 2 if self.per_example else 1
        wanted = actions.shape[:rank]
        if values.shape.rank is not None and (
            values.shape.rank != rank or not values.shape.is_compatible_with(wanted)
        ):
            raise ValueError(
                f"Reward {self.name!r} returned shape {values.shape} for decision sets of shape "
                f"{actions.shape}; expected {expected} = {wanted}: one score per sample set"
                + (" and example (per_example=True)" if self.per_example else "")
                + ". The reward receives M sets along the leading axis: the [K] samples, or the "
                "changed sets of the per-element credit."
                + (
                    " To score each example, pass per_example=True (the reward is the mean)."
                    if not self.per_example and values.shape[:2] == actions.shape[:2]
                    else ""
                )
            )
        return tf.cast(values, tf.float32)

    def per_example_terms(self, y_true: tf.Tensor, actions: tf.Tensor) -> tf.Tensor:
        """``[M, B]`` per-example terms of ``actions [M, B, ...]`` (``per_example=True``)."""
        if not self.per_example:
            raise ValueError(f"Reward {self.name!r} has no per-example terms (per_example=False).")
        return self._checked_terms(y_true, actions)

    def __call__(self, y_true: tf.Tensor, actions: tf.Tensor) -> tf.Tensor:
        values = self._checked_terms(y_true, actions)
        return tf.reduce_mean(values, axis=1) if self.per_example else values

    # -- per-element credit ---------------------------------------------------------------------
    def prepare(self, y_true: Any, actions: Any) -> None:
        """Probes exchangeability on ``y_true [B, ...]`` and decisions ``[K, B, ...]`` (eager;
        the trainer calls it on the first batch) when it was not declared."""
        if self.structure is not None or self.per_example:  # declared (False too), or probed
            return
        y = np.asarray(y_true)
        actions = np.asarray(actions)
        rng = np.random.default_rng(0)
        # a uniform draw beside the policy's: permutations of an all-zero set prove nothing
        uniform = rng.integers(0, max(2, int(max(actions.max(), y.max())) + 1), actions.shape)
        sets = np.concatenate([actions, uniform.astype(actions.dtype)])

        def score(y_probe, sets_probe):
            return keras.ops.convert_to_numpy(self(tf.constant(y_probe), tf.constant(sets_probe)))

        level = kernels.probe_exchangeability(score, y, sets)
        self.structure = False if level is None else level

    def _resolved_structure(self, y_true: tf.Tensor, actions: tf.Tensor) -> str | bool:
        if self.structure is None and tf.executing_eagerly():
            self.prepare(y_true, actions)
        if self.structure is None:
            warnings.warn(
                f"Reward {self.name!r}: exchangeability was not probed (the first call is in a "
                "graph); its per-element credit uses the budget of exchangeable=False. Pass "
                "exchangeable=... or train with PolicyGradientTrainer.fit, which probes first.",
                UserWarning,
                stacklevel=3,
            )
            return False
        return self.structure

    def local_rewards(
        self, y_true: tf.Tensor, actions: tf.Tensor, num_values: int = 2
    ) -> tf.Tensor:
        """The reward of every sample set with one element's decision replaced by each value.

        Args:
            y_true: ``[B, ...]`` labels in ``[0, V)``.
            actions: ``[K, B, ...]`` decisions in ``[0, V)``.
            num_values: ``V`` (2 for Bernoulli decisions, ``C`` for categorical).

        Returns:
            ``[K, N, V]``, as
            [`rlmetric.rewards.CountReward.local_rewards`][rlmetric.rewards.CountReward.local_rewards].
        """
        y_true = tf.cast(y_true, tf.int32)
        if self.per_example:
            return kernels.per_example_local_rewards(
                self._checked_terms, y_true, actions, num_values
            )
        structure = self._resolved_structure(y_true, actions)
        if structure is False:
            return kernels.sampled_local_rewards(self, y_true, actions, num_values, self.budget)
        groups, num_groups = kernels.group_ids(structure, y_true)
        return kernels.exchangeable_local_rewards(
            self, y_true, actions, num_values, groups, num_groups
        )

    def coupled_gains(self, y_true: tf.Tensor, value_probs: tf.Tensor) -> tf.Tensor:
        """What each element's correct decision is worth when the decisions turn wrong one after
        another in the order of decreasing error (``y_true [B, ...]``, ``value_probs
        [B, ..., V]`` -> ``[N]``); see ``rlmetric._probe_kernels.ordered_gains``. Replica-local
        under ``tf.distribute``."""
        return kernels.ordered_gains(self, y_true, value_probs, self.points)

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "exchangeable": self.exchangeable,
            "budget": self.budget,
            "points": self.points,
            "per_example": self.per_example,
        }


@keras.saving.register_keras_serializable(package="rlmetric")
class CallableReward(ProbedReward):
    """Wraps a TensorFlow function ``fn(y_true [B, ...], actions [M, B, ...]) -> [M]``.

    ``fn`` scores any number ``M`` of decision sets (the ``K`` samples, or the changed sets of
    the per-element credit): write it with a leading axis of any size. With
    ``per_example=True`` it returns ``[M, B]``, one term per example, and the reward is their
    mean. The other arguments are [`ProbedReward`][rlmetric.custom_rewards.ProbedReward]'s.

    Saved by reference, as Keras saves custom loss functions: loading finds ``fn`` in its module
    if that is importable, else by its name in ``custom_objects`` (or registered with
    ``keras.saving.register_keras_serializable``).

    Examples:
        >>> import tensorflow as tf
        >>> from rlmetric import rewards
        >>> def positives(y_true, actions):  # any TF function [B, ...], [M, B, ...] -> [M]
        ...     return tf.reduce_mean(tf.cast(actions, tf.float32), axis=1)
        >>> reward = rewards.get(positives)  # wrapped in a CallableReward
        >>> reward.name, reward(tf.constant([1, 0]), tf.constant([[1, 1], [0, 1]])).numpy()
        ('positives', array([1. , 0.5], dtype=float32))
        >>> reward.local_rewards(tf.constant([1, 0]), tf.constant([[1, 1]]))[0].numpy()
        array([[0.5, 1. ],
               [0.5, 1. ]], dtype=float32)
    """

    def __init__(
        self,
        fn: Callable[[tf.Tensor, tf.Tensor], tf.Tensor],
        name: str | None = None,
        **structure: Any,
    ):
        if not callable(fn):
            raise TypeError(f"reward must be callable; received {fn!r}.")
        self.fn = fn
        super().__init__(name=name or getattr(fn, "__name__", "reward"), **structure)

    def terms(self, y_true: tf.Tensor, actions: tf.Tensor) -> tf.Tensor:
        return self.fn(y_true, actions)

    def get_config(self) -> dict:
        return {"fn": keras.saving.serialize_keras_object(self.fn), **super().get_config()}

    @classmethod
    def from_config(cls, config: dict) -> CallableReward:
        config = dict(config)
        fn_config = config.pop("fn")
        try:
            fn = keras.saving.deserialize_keras_object(fn_config)
        except (TypeError, ValueError) as error:
            fn_name = fn_config.get("config") if isinstance(fn_config, dict) else None
            raise TypeError(
                f"The reward function {fn_name!r} is not known here: load with "
                f"custom_objects={{{fn_name!r}: {fn_name}}} (as for a custom Keras loss), or "
                "register it with @keras.saving.register_keras_serializable()."
            ) from error
        return cls(fn, **config)

    def __repr__(self) -> str:
        return f"CallableReward({self.name})"


class NumpyReward(ProbedReward):
    """Scores decision sets with a Python function of NumPy arrays.

    * ``vectorized=False`` (default): ``fn(y_true, y_pred) -> float``, one call per set, as
      scikit-learn's metrics are called.
    * ``vectorized=True``: ``fn(y_true, sets) -> [M]``, all ``M`` sets in one call (``sets`` has
      a leading axis). Recommended for your own metric: the per-element credit scores tens of
      sets per step, and one vectorized call costs about what one set's call does.

    Runs through ``tf.numpy_function``: a host round trip per step, and not compatible with XLA
    (``jit_compile=True``). Arrays reach ``fn`` as scikit-learn expects them: ``[B, L]``
    multi-label decisions stay 2-D, every other shape is raveled to 1-D (``[N]``, and ``[M, N]``
    vectorized). They are read-only: a function that writes into them is refused.

    Examples:
        >>> import numpy as np
        >>> from sklearn.metrics import f1_score
        >>> from rlmetric.rewards import NumpyReward
        >>> reward = NumpyReward(f1_score)  # what rewards.from_numpy(f1_score) returns
        >>> reward(np.array([[1], [0]]), np.array([[[1], [0]], [[0], [0]]])).numpy()
        array([1., 0.], dtype=float32)
    """

    xla_compatible = False

    def __init__(
        self,
        fn: Callable[[np.ndarray, np.ndarray], Any],
        name: str | None = None,
        vectorized: bool = False,
        **structure: Any,
    ):
        if not callable(fn):
            raise TypeError(f"rewards.from_numpy expects a callable; received {fn!r}.")
        if not isinstance(vectorized, bool):
            raise TypeError(f"vectorized must be a bool; received vectorized={vectorized!r}.")
        self.fn = fn
        self.vectorized = vectorized
        super().__init__(name=name or getattr(fn, "__name__", "reward"), **structure)

    def _score_all(self, y_true: np.ndarray, actions: np.ndarray) -> np.ndarray:
        multilabel = actions.ndim == 3 and actions.shape[-1] > 1
        if not multilabel:
            y_true = y_true.reshape(-1)
            actions = actions.reshape(actions.shape[0], -1)
        y_true, actions = np.array(y_true), np.array(actions)  # private read-only copies
        y_true.flags.writeable = actions.flags.writeable = False
        try:
            if self.vectorized:
                scores = np.asarray(self.fn(y_true, actions), dtype=np.float32)
            else:
                scores = np.asarray([self.fn(y_true, s) for s in actions], dtype=np.float32)
        except ValueError as error:
            if "read-only" in str(error):
                raise ValueError(
                    f"Reward {self.name!r} writes into the arrays passed to it ({error}); a "
                    "reward must not change the labels or decision sets: copy them first "
                    "(y_pred = y_pred.copy())."
                ) from error
            raise
        wanted = (actions.shape[0], actions.shape[1]) if self.per_example else actions.shape[:1]
        if scores.shape != wanted:
            raise ValueError(
                f"Reward {self.name!r} returned shape {list(scores.shape)} for {actions.shape[0]} "
                f"decision sets; expected {list(wanted)} ({'[M, B]' if self.per_example else '[M]'}"
                f"{', one score per set' if not self.per_example else ''})."
                + (
                    " To score each example, pass per_example=True (the reward is the mean)."
                    if not self.per_example and scores.shape == tuple(actions.shape[:2])
                    else ""
                )
            )
        return scores

    def terms(self, y_true: tf.Tensor, actions: tf.Tensor) -> tf.Tensor:
        actions = tf.convert_to_tensor(actions)
        if tf.executing_eagerly():  # a direct call: the function's own errors, unwrapped
            return tf.constant(self._score_all(np.asarray(y_true), actions.numpy()))
        scores = tf.numpy_function(
            self._score_all, [tf.convert_to_tensor(y_true), actions], tf.float32, stateful=False
        )
        if self.per_example:
            return tf.reshape(scores, tf.shape(actions)[:2])
        return tf.reshape(scores, tf.shape(actions)[:1])

    def get_config(self) -> dict:
        raise TypeError(
            f"The reward {self.name!r} wraps a Python function (rewards.from_numpy) and cannot be "
            "serialized; save the wrapped Keras model (trainer.model.save(...)) instead."
        )

    def __repr__(self) -> str:
        return f"NumpyReward({self.name}, vectorized={self.vectorized})"


def from_numpy(
    fn: Callable[[np.ndarray, np.ndarray], Any],
    name: str | None = None,
    vectorized: bool = False,
    **structure: Any,
) -> NumpyReward:
    """Wraps a NumPy metric: ``fn(y_true, y_pred) -> float`` (e.g. ``sklearn.metrics.f1_score``)
    or, with ``vectorized=True``, ``fn(y_true, sets [M, ...]) -> [M]``. ``structure``:
    [`ProbedReward`][rlmetric.custom_rewards.ProbedReward]'s ``exchangeable``, ``budget``,
    ``points``, ``per_example``.

    Slower than the built-in rewards and not usable with ``jit_compile=True``.

    Examples:
        >>> import numpy as np
        >>> from sklearn.metrics import balanced_accuracy_score
        >>> from rlmetric import rewards
        >>> reward = rewards.from_numpy(balanced_accuracy_score)
        >>> reward(np.array([1, 0, 0, 0]), np.array([[1, 0, 0, 0], [0, 0, 0, 0]])).numpy()
        array([1. , 0.5], dtype=float32)
        >>> def profit(y_true, sets):  # vectorized: +10 per hit, -3 per false alarm
        ...     return (10 * (sets & y_true) - 3 * (sets & (1 - y_true))).sum(axis=-1)
        >>> rewards.from_numpy(profit, vectorized=True)(
        ...     np.array([1, 0]), np.array([[1, 1], [1, 0]])).numpy()
        array([ 7., 10.], dtype=float32)
    """
    return NumpyReward(fn, name, vectorized=vectorized, **structure)
