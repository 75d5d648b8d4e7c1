"""The policy interface: [`Policy`][rlmetric.policy_base.Policy], a distribution over decisions
parameterised by logits,
and the label helpers the policies share. Re-exported by
[`rlmetric.policies`][rlmetric.policies]."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

__all__ = ["Policy"]


def _same_except_batch(shape: tf.TensorShape, expected: tf.TensorShape) -> bool:
    return shape.rank == expected.rank and shape[1:].is_compatible_with(expected[1:])


def _label_values(y_true: Any) -> np.ndarray:
    values = np.unique(np.asarray(y_true))
    if values.dtype == bool:
        values = values.astype(np.int64)
    return values


def _describe(values: np.ndarray, limit: int = 8) -> str:
    shown = ", ".join(repr(v.item()) for v in values[:limit])
    return f"[{shown}{', ...' if len(values) > limit else ''}]"


class Policy:
    """Base class: a distribution over decisions parameterised by logits.

    Subclasses implement the five methods below; all of them accept logits of the shapes named
    by [`check_logits`][rlmetric.policies.Policy.check_logits] and never copy the model's work: only
    the cheap distribution part is
    repeated over the ``K`` samples.

    Examples:
        >>> import tensorflow as tf
        >>> from rlmetric import policies
        >>> policy = policies.get("bernoulli")  # every policy: sample, log_prob, mode, entropy
        >>> logits = tf.constant([[0.0], [2.0]])
        >>> actions = policy.sample(logits, num_samples=3, seed=0)  # [K, B, 1]
        >>> policy.log_prob(logits, actions).shape, policy.joint_log_prob(logits, actions).shape
        (TensorShape([3, 2, 1]), TensorShape([3]))
    """

    name: str = "policy"
    #: What the actions are: ``"decisions"`` (0/1 or class ids per element), ``"rankings"``
    #: (the item index at each rank), ``"values"`` (real numbers) or ``None`` (not declared).
    draws: str | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "greedy" in cls.__dict__ and "mode" not in cls.__dict__:
            # a policy written before mode() existed: its greedy is its mode
            warnings.warn(
                f"{cls.__name__} overrides Policy.greedy, which is deprecated: rename it mode.",
                DeprecationWarning,
                stacklevel=2,
            )
            cls.mode = cls.__dict__["greedy"]

    def check_logits(self, logits_shape: tf.TensorShape) -> None:
        """Raises ``ValueError`` if the policy cannot read logits of this static shape."""
        raise NotImplementedError

    def check_reward(self, reward: Any) -> None:
        """Raises ``ValueError`` before training if the policy's decisions cannot be scored by
        ``reward``: a reward that reads another kind of action (``Reward.reads``, e.g. a
        ranking metric given 0/1 decisions, which it would read as item indices)."""
        reads = getattr(reward, "reads", None)
        if reads is None or self.draws is None or reads == self.draws:
            return
        suggestion = {
            "rankings": "policy='plackett_luce' (a score per item; labels [B, L] of relevance)",
            "decisions": "policy='bernoulli' (0/1 per label) or policy='categorical' (a class "
            "per example or pixel)",
        }.get(reads, "a policy that draws them")
        raise ValueError(
            f"reward={getattr(reward, 'name', reward)!r} scores {reads}, but policy="
            f"{self.name!r} draws {self.draws}: the reward would read them as {reads} and "
            f"report a wrong value. Use {suggestion}, or a reward of {self.draws}."
        )

    def action_shape(self, logits_shape: tf.TensorShape) -> tf.TensorShape:
        """The shape of one set of decisions ``[B, ...]`` for logits of ``logits_shape``."""
        raise NotImplementedError

    def distribution(self, logits: tf.Tensor) -> tfd.Distribution:
        """The ``tfp.distributions`` object for logits ``[B, ...]``."""
        raise NotImplementedError

    def sample(self, logits: tf.Tensor, num_samples: int, seed: Any = None) -> tf.Tensor:
        """Draws ``K = num_samples`` action sets: logits ``[B, ...]`` -> int32 ``[K, B, ...]``."""
        raise NotImplementedError

    def log_prob(self, logits: tf.Tensor, actions: tf.Tensor) -> tf.Tensor:
        """Per-element log-probability: logits ``[B, ...]``, actions ``[K, B, ...]``.

        Returns ``[K, B, ...]``.

        Actions of the plain action shape ``[B, ...]`` are accepted too (``K`` omitted).
        """
        raise NotImplementedError

    def joint_log_prob(self, logits: tf.Tensor, actions: tf.Tensor) -> tf.Tensor:
        """Log-probability of each whole decision set: logits ``[B, ...]``, actions
        ``[K, B, ...]`` -> ``[K]``, the sum of [`log_prob`][rlmetric.policies.Policy.log_prob] over
        the set's elements."""
        log_probs = self.log_prob(logits, actions)
        return tf.reduce_sum(tf.reshape(log_probs, [tf.shape(actions)[0], -1]), axis=1)

    def mask_logits(self, logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        """The logits ``[B, ...]`` with the elements that ``labels`` (action shape) mark as
        absent made impossible: padded items of a ranking. The identity here."""
        return logits

    def mode(self, logits: tf.Tensor) -> tf.Tensor:
        """The most likely decision of every element: logits ``[B, ...]`` -> ``[B, ...]`` (int32
        for discrete decisions), what the trainer predicts and evaluates."""
        raise NotImplementedError

    def greedy(self, logits: tf.Tensor) -> tf.Tensor:
        """Deprecated name of [`mode`][rlmetric.policies.Policy.mode] (``"greedy"`` names the
        self-critical baseline)."""
        warnings.warn(
            "Policy.greedy is deprecated: use Policy.mode (the most likely decision); "
            "'greedy' now names only the self-critical baseline.",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.mode(logits)

    def value_probs(self, logits: tf.Tensor) -> tf.Tensor:
        """Probability of each value of each element: logits ``[B, ...]`` -> ``[*action, V]``
        (``V = 2`` for Bernoulli, ``C`` for categorical), differentiable."""
        raise NotImplementedError

    def entropy(self, logits: tf.Tensor) -> tf.Tensor:
        """Per-element entropy in nats: logits ``[B, ...]`` -> ``[B, ...]`` (action shape)."""
        raise NotImplementedError

    def format_labels(self, y_true: Any, logits_shape: tf.TensorShape) -> tf.Tensor:
        """Labels ``[B, ...]`` in the action shape, as int32.

        A trailing singleton axis may be present or absent (``[B]`` labels for ``[B, 1]``
        logits and the reverse). Any other mismatch raises ``ValueError``.
        """
        y_true = tf.convert_to_tensor(y_true)
        logits_shape = tf.TensorShape(logits_shape)
        action_shape = self.action_shape(logits_shape)
        labels = self._match_label_shape(y_true, logits_shape, action_shape)
        if labels is None:
            raise ValueError(
                f"Labels of shape {y_true.shape} do not match the model's logits of shape "
                f"{logits_shape}: policy={self.name!r} expects labels of shape {action_shape}"
                f"{self._label_hint}."
            )
        return tf.cast(labels, self._label_dtype)

    _label_hint = " (0/1 per logit)"
    _label_dtype = tf.int32  # decisions are ids; a ranking's labels are graded relevance

    def _match_label_shape(self, y_true, logits_shape, action_shape):
        shape = y_true.shape
        if shape.rank is None or action_shape.rank is None:
            return y_true
        if _same_except_batch(shape, action_shape):
            return y_true
        if shape.rank == action_shape.rank + 1 and shape[-1] == 1:
            if _same_except_batch(shape[:-1], action_shape):
                return tf.squeeze(y_true, axis=-1)
        if action_shape.rank >= 2 and action_shape[-1] == 1:
            if _same_except_batch(shape, action_shape[:-1]):
                return tf.expand_dims(y_true, axis=-1)
        return None

    def check_label_values(self, y_true: Any, logits_shape: tf.TensorShape, arg: str) -> None:
        """Raises ``ValueError`` naming ``arg`` if the label values cannot be decisions of this
        policy (checked eagerly on in-memory labels before training)."""
        raise NotImplementedError

    def labels_valid(self, y_true: tf.Tensor, logits_shape: tf.TensorShape) -> tf.Tensor:
        """A scalar bool tensor: whether every value of ``y_true`` ``[B, ...]`` (as received,
        before [`format_labels`][rlmetric.policies.Policy.format_labels] casts it) is a decision of
        this policy. One reduction, run
        inside the training and test steps, where
        [`check_label_values`][rlmetric.policies.Policy.check_label_values] cannot."""
        raise NotImplementedError

    def crossentropy(self, logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        """Per-element supervised loss ``-log p(labels)``: logits ``[B, ...]`` -> ``[B, ...]``."""
        return -self.log_prob(logits, labels)

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict) -> Policy:
        return cls(**config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
