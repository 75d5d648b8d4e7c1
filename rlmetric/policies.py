"""Action distributions over a model's logits.

A policy turns the logits a Keras model outputs into a distribution over discrete decisions
(``tfp.distributions``), draws ``K`` sets of decisions for a whole batch at once, and scores them.
Shapes follow one convention throughout the library: logits are ``[B, ...]``, actions drawn from
them are ``[K, B, ...]`` (``K`` sample sets stacked on a new leading axis), and per-element
quantities (``log_prob``, ``entropy``) keep the action shape.

Sampling uses stateless counter-based draws (inverse CDF for Bernoulli, Gumbel-max for
Categorical) rather than ``Distribution.sample``: the draws are exact samples of the same
distributions and are reproducible from an explicit ``seed`` of shape ``[2]``. They use Philox,
TensorFlow's kernel, and Threefry inside XLA-compiled functions, where it is the fastest
generator on CPU (the auto-selected default is some 20x slower there).
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from rlmetric._inputs import are_class_ids
from rlmetric._registry import resolve
from rlmetric._sampling import _as_seed, _random_algorithm, batch_uniform, stateless_uniform
from rlmetric.policy_base import Policy, _describe, _label_values, _same_except_batch

tfd = tfp.distributions

__all__ = [
    "Policy",
    "Bernoulli",
    "Categorical",
    "Gaussian",
    "get",
    "stateless_uniform",
    "batch_uniform",
    "ALIASES",
]


@keras.saving.register_keras_serializable(package="rlmetric")
class Bernoulli(Policy):
    """An independent Bernoulli decision per logit.

    Logits ``[B]`` or ``[B, 1]`` (binary classification), ``[B, L]`` (multi-label) or
    ``[B, H, W, 1]`` (binary segmentation; any rank works). The actions have the logits' shape.

    Examples:
        >>> import tensorflow as tf
        >>> from rlmetric import policies
        >>> policy = policies.Bernoulli()
        >>> logits = tf.constant([[3.0], [-3.0]])
        >>> policy.sample(logits, num_samples=4, seed=0).shape  # [K, B, 1]
        TensorShape([4, 2, 1])
        >>> print(policy.mode(logits).numpy().ravel())  # positive at logit > 0
        [1 0]
    """

    name = "bernoulli"
    draws = "decisions"

    def check_logits(self, logits_shape: tf.TensorShape) -> None:
        logits_shape = tf.TensorShape(logits_shape)
        if logits_shape.rank is not None and logits_shape.rank < 1:
            raise ValueError(
                "policy='bernoulli' expects logits of shape [B], [B, 1], [B, L] or "
                f"[B, H, W, 1]; the model returned logits of shape {logits_shape}."
            )

    def action_shape(self, logits_shape: tf.TensorShape) -> tf.TensorShape:
        return tf.TensorShape(logits_shape)

    def distribution(self, logits: tf.Tensor) -> tfd.Distribution:
        return tfd.Bernoulli(logits=logits, dtype=tf.int32)

    def sample(self, logits: tf.Tensor, num_samples: int, seed: Any = None) -> tf.Tensor:
        logits = tf.convert_to_tensor(logits)
        shape = tf.concat([[num_samples], tf.shape(logits)], axis=0)
        uniform = batch_uniform(shape, seed, logits.dtype)
        # One sigmoid per logit rather than a logistic transform of all K x B draws; the draws
        # are multiples of 2^-23 either way, which bounds the resolution of both forms alike.
        return tf.cast(uniform < tf.sigmoid(logits), tf.int32)

    def log_prob(self, logits: tf.Tensor, actions: tf.Tensor) -> tf.Tensor:
        # log sigmoid(l) = l - softplus(l) and log(1 - sigmoid(l)) = -softplus(l): the closed
        # form of tfd.Bernoulli.log_prob in two fused ops (this runs every training step)
        logits = tf.convert_to_tensor(logits)
        return tf.cast(actions, logits.dtype) * logits - tf.nn.softplus(logits)

    def joint_log_prob(self, logits: tf.Tensor, actions: tf.Tensor) -> tf.Tensor:
        # sum_i (a_i l_i - softplus(l_i)) = a . l - sum_i softplus(l_i): one [K, N] x [N]
        # product, and the softplus once per logit instead of once per sampled decision
        logits = tf.convert_to_tensor(logits)
        flat_logits = tf.reshape(logits, [-1, 1])  # [N, 1]
        flat_actions = tf.reshape(tf.cast(actions, logits.dtype), [-1, tf.size(logits)])
        return tf.matmul(flat_actions, flat_logits)[:, 0] - tf.reduce_sum(tf.nn.softplus(logits))

    def mode(self, logits: tf.Tensor) -> tf.Tensor:
        return tf.cast(logits > 0, tf.int32)

    def value_probs(self, logits: tf.Tensor) -> tf.Tensor:
        probability = tf.sigmoid(logits)
        return tf.stack([1.0 - probability, probability], axis=-1)

    def entropy(self, logits: tf.Tensor) -> tf.Tensor:
        # p softplus(-l) + (1 - p) softplus(l) = softplus(l) - p l
        logits = tf.convert_to_tensor(logits)
        return tf.nn.softplus(logits) - tf.sigmoid(logits) * logits

    def labels_valid(self, y_true, logits_shape):
        y_true = tf.cast(y_true, tf.float32)
        return tf.reduce_all((y_true == 0.0) | (y_true == 1.0))

    def check_label_values(self, y_true, logits_shape, arg):
        values = _label_values(y_true)
        if not are_class_ids(values, 2):
            raise ValueError(
                f"{arg} must hold binary labels (0 or 1) for policy='bernoulli'; received "
                f"values {_describe(values)}."
            )


@keras.saving.register_keras_serializable(package="rlmetric")
class Categorical(Policy):
    """One categorical decision over the last axis of the logits.

    Logits ``[B, C]`` (multi-class) or ``[B, H, W, C]`` (per-pixel classes); actions drop the
    class axis: ``[B]`` or ``[B, H, W]`` class ids.

    Examples:
        >>> import tensorflow as tf
        >>> from rlmetric import policies
        >>> policy = policies.Categorical()
        >>> logits = tf.zeros([2, 8, 8, 3])  # 3 classes per pixel
        >>> policy.sample(logits, num_samples=4, seed=0).shape  # [K, B, H, W]
        TensorShape([4, 2, 8, 8])
        >>> print(policy.log_prob(logits, tf.zeros([2, 8, 8], tf.int32))[0, 0, 0].numpy().round(4))
        -1.0986
    """

    name = "categorical"
    draws = "decisions"

    def check_logits(self, logits_shape: tf.TensorShape) -> None:
        logits_shape = tf.TensorShape(logits_shape)
        if logits_shape.rank is not None and logits_shape.rank < 2:
            raise ValueError(
                "policy='categorical' expects logits of shape [B, C] or [B, H, W, C] with the "
                f"classes on the last axis; the model returned logits of shape {logits_shape}."
            )
        num_classes = logits_shape[-1] if logits_shape.rank else None
        if num_classes is not None and num_classes < 2:
            raise ValueError(
                "policy='categorical' needs at least 2 classes on the last logits axis; the model "
                f"returned logits of shape {logits_shape}. For one logit per decision use "
                "policy='bernoulli'."
            )

    def action_shape(self, logits_shape: tf.TensorShape) -> tf.TensorShape:
        return tf.TensorShape(logits_shape)[:-1]

    def distribution(self, logits: tf.Tensor) -> tfd.Distribution:
        return tfd.Categorical(logits=logits, dtype=tf.int32)

    def sample(self, logits: tf.Tensor, num_samples: int, seed: Any = None) -> tf.Tensor:
        logits = tf.convert_to_tensor(logits)
        shape = tf.concat([[num_samples], tf.shape(logits)], axis=0)
        gumbel = -tf.math.log(-tf.math.log(batch_uniform(shape, seed, logits.dtype)))
        return tf.argmax(logits + gumbel, axis=-1, output_type=tf.int32)

    def log_prob(self, logits: tf.Tensor, actions: tf.Tensor) -> tf.Tensor:
        # A gather from the [B, ..., C] log-softmax table costs O(K * B) memory, where
        # tfd.Categorical.log_prob would broadcast the logits to [K, B, ..., C].
        log_probs = tf.nn.log_softmax(logits, axis=-1)
        num_classes = tf.shape(log_probs)[-1]
        flat_table = tf.reshape(log_probs, [-1])
        actions = tf.cast(actions, tf.int32)
        num_elements = tf.size(log_probs) // num_classes
        flat_actions = tf.reshape(actions, [-1, num_elements])
        offsets = tf.range(num_elements, dtype=tf.int32) * num_classes
        picked = tf.gather(flat_table, flat_actions + offsets)
        return tf.reshape(picked, tf.shape(actions))

    def mode(self, logits: tf.Tensor) -> tf.Tensor:
        return tf.argmax(logits, axis=-1, output_type=tf.int32)

    def value_probs(self, logits: tf.Tensor) -> tf.Tensor:
        return tf.nn.softmax(logits, axis=-1)

    def entropy(self, logits: tf.Tensor) -> tf.Tensor:
        return self.distribution(logits).entropy()

    def crossentropy(self, logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        return tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=tf.cast(labels, tf.int32), logits=logits
        )

    _label_hint = " (class ids), or one-hot labels of the logits' shape"

    def _match_label_shape(self, y_true, logits_shape, action_shape):
        shape = y_true.shape
        if shape.rank is not None and _same_except_batch(shape, logits_shape):
            return tf.argmax(y_true, axis=-1, output_type=tf.int32)  # one-hot
        return super()._match_label_shape(y_true, logits_shape, action_shape)

    def labels_valid(self, y_true, logits_shape):
        y_true = tf.cast(y_true, tf.float32)
        if _same_except_batch(y_true.shape, tf.TensorShape(logits_shape)):  # one-hot rows
            binary = tf.reduce_all((y_true == 0.0) | (y_true == 1.0))
            return binary & tf.reduce_all(tf.reduce_sum(y_true, axis=-1) == 1.0)
        num_classes = tf.TensorShape(logits_shape)[-1]
        in_range = y_true >= 0.0
        if num_classes is not None:
            in_range &= y_true < float(num_classes)
        return tf.reduce_all(in_range & (y_true == tf.floor(y_true)))

    def check_label_values(self, y_true, logits_shape, arg):
        y_true = np.asarray(y_true)
        num_classes = tf.TensorShape(logits_shape)[-1]
        if _same_except_batch(tf.TensorShape(y_true.shape), tf.TensorShape(logits_shape)):
            values = _label_values(y_true)
            if not np.all(np.isin(values, [0, 1])) or not np.all(y_true.sum(axis=-1) == 1):
                raise ValueError(
                    f"{arg} has the logits' shape {y_true.shape}, so it is read as one-hot "
                    f"labels, but its rows are not one-hot (values {_describe(values)})."
                )
            return
        values = _label_values(y_true)
        if not are_class_ids(values, num_classes):
            raise ValueError(
                f"{arg} must hold class ids in [0, {num_classes}) for policy='categorical' with "
                f"{num_classes} logits per decision; received values {_describe(values)}."
            )


@keras.saving.register_keras_serializable(package="rlmetric")
class Gaussian(Policy):
    """A diagonal Gaussian over continuous actions: gymnasium ``Box`` spaces, or predictions
    that a reward scores (costs fed to a solver, a regression scored by a tolerance).

    Logits ``[B, ..., 2 d]`` hold the means and the log standard deviations of ``d`` action
    dimensions (first half, second half); the log standard deviations are clipped to
    ``[min_log_std, max_log_std]``. With ``std`` set, the logits ``[B, ..., d]`` are the means
    and every standard deviation is ``std``: the model keeps its usual outputs. Actions are
    ``[B, ..., d]`` floats; ``mode`` is the mean.

    Labels are not decisions here: they are passed to the reward as they are (any float array
    with the batch axis first, e.g. the true costs of a decision), and must be finite.

    Examples:
        >>> import tensorflow as tf
        >>> from rlmetric.policies import Gaussian
        >>> logits = tf.constant([[0.5, -1.0]])  # one mean, one log standard deviation
        >>> Gaussian().sample(logits, num_samples=3, seed=0).shape  # [K, B, d]
        TensorShape([3, 1, 1])
        >>> float(Gaussian().mode(logits)[0, 0])  # the mean
        0.5
        >>> Gaussian(std=0.1).sample(logits, num_samples=3, seed=0).shape  # two means
        TensorShape([3, 1, 2])
    """

    name = "gaussian"
    draws = "values"
    _label_hint = " (finite floats, passed to the reward as they are)"
    _label_dtype = tf.float32

    def __init__(
        self, min_log_std: float = -5.0, max_log_std: float = 2.0, std: float | None = None
    ) -> None:
        self.min_log_std, self.max_log_std = float(min_log_std), float(max_log_std)
        if std is not None and (
            isinstance(std, bool) or not isinstance(std, int | float) or not std > 0
        ):
            raise ValueError(f"std must be a number > 0 or None; received std={std!r}.")
        self.std = None if std is None else float(std)

    def check_logits(self, logits_shape: tf.TensorShape) -> None:
        logits_shape = tf.TensorShape(logits_shape)
        last = logits_shape[-1] if logits_shape.rank else None
        if logits_shape.rank is not None and logits_shape.rank < 2:
            raise ValueError(
                f"policy='gaussian' expects logits [B, ...]; received shape {logits_shape}."
            )
        if self.std is None and last and last % 2:
            raise ValueError(
                "policy='gaussian' expects logits [B, 2 d]: d means, then d log standard "
                f"deviations (or Gaussian(std=...) for means only); the model returned logits "
                f"of shape {logits_shape}."
            )

    def action_shape(self, logits_shape: tf.TensorShape) -> tf.TensorShape:
        logits_shape = tf.TensorShape(logits_shape)
        if self.std is not None:
            return logits_shape
        last = logits_shape[-1]
        return logits_shape[:-1].concatenate([None if last is None else last // 2])

    def _mean_and_log_std(self, logits: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        logits = tf.convert_to_tensor(logits)
        if self.std is not None:
            return logits, tf.fill(tf.shape(logits), tf.math.log(tf.cast(self.std, logits.dtype)))
        mean, log_std = tf.split(logits, 2, axis=-1)
        return mean, tf.clip_by_value(log_std, self.min_log_std, self.max_log_std)

    def distribution(self, logits: tf.Tensor) -> tfd.Distribution:
        mean, log_std = self._mean_and_log_std(logits)
        return tfd.Normal(mean, tf.exp(log_std))

    def sample(self, logits: tf.Tensor, num_samples: int, seed: Any = None) -> tf.Tensor:
        mean, log_std = self._mean_and_log_std(logits)
        shape = tf.concat([[num_samples], tf.shape(mean)], axis=0)
        noise = tf.random.stateless_normal(
            shape, seed=_as_seed(seed), dtype=mean.dtype, alg=_random_algorithm()
        )
        return mean + tf.exp(log_std) * noise

    def log_prob(self, logits: tf.Tensor, actions: tf.Tensor) -> tf.Tensor:
        return self.distribution(logits).log_prob(tf.cast(actions, logits.dtype))

    def mode(self, logits: tf.Tensor) -> tf.Tensor:
        return self._mean_and_log_std(logits)[0]

    def entropy(self, logits: tf.Tensor) -> tf.Tensor:
        return self.distribution(logits).entropy()

    def _match_label_shape(self, y_true, logits_shape, action_shape):
        return y_true  # the reward's context: any shape with the batch axis first

    def labels_valid(self, y_true, logits_shape):
        return tf.reduce_all(tf.math.is_finite(tf.cast(y_true, tf.float32)))

    def check_label_values(self, y_true, logits_shape, arg):
        values = np.asarray(y_true, dtype=np.float64)
        if not np.all(np.isfinite(values)):
            raise ValueError(
                f"{arg} must be finite for policy='gaussian' (the labels are passed to the "
                f"reward); received {int((~np.isfinite(values)).sum())} non-finite values."
            )

    def get_config(self) -> dict:
        return {"min_log_std": self.min_log_std, "max_log_std": self.max_log_std, "std": self.std}

    def __repr__(self) -> str:
        return f"Gaussian(std={self.std})" if self.std is not None else "Gaussian()"


ALIASES = {"bernoulli": Bernoulli, "categorical": Categorical, "gaussian": Gaussian}


def get(identifier: Any) -> Policy:
    """A policy from an alias (``"bernoulli"``, ``"categorical"``, ``"gaussian"``,
    ``"plackett_luce"``), a config dict or a Policy.

    Examples:
        >>> from rlmetric import policies
        >>> policies.get("plackett_luce")
        PlackettLuce(top_k=None)
    """
    from rlmetric import plackett_luce  # (imports this module: its alias joins here)

    return resolve(identifier, {**ALIASES, **plackett_luce.POLICY_ALIASES}, Policy, "policy")
