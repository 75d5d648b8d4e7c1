"""A scikit-learn classifier trained directly on its metric: ``fit``/``predict``/
``predict_proba``/``score`` and ``get_params``/``set_params``, for ``Pipeline``, ``GridSearchCV``
and ``TunedThresholdClassifierCV``.

[`MetricClassifier`][rlmetric.scikit_learn.MetricClassifier] builds a small Keras network (or
yours), trains it with
[`rlmetric.PolicyGradientTrainer`][rlmetric.PolicyGradientTrainer] on the reward, and reads the
classes back. Its
``score`` is the reward of the predicted classes, so a grid search selects on the metric the
model trains on. It needs scikit-learn (``pip install 'rlmetric[bench]'``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data
except ImportError:  # pragma: no cover - older scikit-learn

    def validate_data(estimator, X, y="no_validation", reset=True, **kwargs):
        if isinstance(y, str):
            return estimator._validate_data(X, reset=reset, **kwargs)
        return estimator._validate_data(X, y, reset=reset, **kwargs)


from rlmetric import rewards as rewards_lib
from rlmetric.trainer import PolicyGradientTrainer

__all__ = ["MetricClassifier"]


class MetricClassifier(ClassifierMixin, BaseEstimator):
    """A classifier whose network is trained on ``reward`` (F1 by default) by
    [`rlmetric.PolicyGradientTrainer`][rlmetric.PolicyGradientTrainer].

    Two classes are one Bernoulli decision per example (the positive class is ``classes_[1]``,
    as in scikit-learn's ``f1_score``); more classes are one categorical decision.

    Args:
        reward: an [`rlmetric.rewards`][rlmetric.rewards] alias or object. ``None``: ``"f1"`` for
            two classes,
            ``"macro_f1"`` for more. A reward of two classes (``"f1"``) is refused on more.
        model: ``None`` for a network of ``hidden_units`` ReLU layers, or a callable
            ``model(n_features, n_outputs) -> keras.Model`` that returns logits.
        hidden_units: the widths of the hidden layers of the default network.
        learning_rate: Adam's learning rate.
        epochs: passes over the data.
        batch_size: the batch the metric is computed on (capped at the number of examples).
        estimator: the trainer's ``estimator`` (``"auto"``: its default).
        random_state: seed of the weights and of the trainer (an int; ``None``: 0).
        verbose: Keras' ``fit`` verbosity.

    Attributes:
        classes_: the classes seen in ``fit``.
        n_features_in_: the number of features seen in ``fit``.
        model_: the trained Keras model (it outputs logits).
        trainer_: the [`PolicyGradientTrainer`][rlmetric.PolicyGradientTrainer].
        history_: ``fit``'s ``keras.callbacks.History`` logs.

    Examples:
        >>> import numpy as np
        >>> from rlmetric.scikit_learn import MetricClassifier
        >>> rng = np.random.default_rng(0)
        >>> X = rng.normal(size=(400, 4))
        >>> y = np.where(X[:, 0] > 0.8, "yes", "no")  # about 20% "yes"
        >>> clf = MetricClassifier(epochs=30, learning_rate=1e-2).fit(X, y)
        >>> clf.classes_.tolist(), clf.trainer_.reward.name  # F1 of "yes", classes_[1]
        (['no', 'yes'], 'f1')
        >>> clf.predict(X[:2]).dtype.kind  # your labels come back
        'U'
        >>> clf.predict_proba(X[:3]).shape
        (3, 2)
    """

    def __init__(
        self,
        reward: Any = None,
        model: Callable[[int, int], keras.Model] | None = None,
        hidden_units: Sequence[int] = (32,),
        learning_rate: float = 3e-3,
        epochs: int = 20,
        batch_size: int = 256,
        estimator: Any = "auto",
        random_state: int | None = None,
        verbose: int = 0,
    ) -> None:
        self.reward = reward
        self.model = model
        self.hidden_units = hidden_units
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.batch_size = batch_size
        self.estimator = estimator
        self.random_state = random_state
        self.verbose = verbose

    # -- scikit-learn's contract ----------------------------------------------------------------
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags

    def _check_params(self) -> None:
        for arg in ("epochs", "batch_size"):
            value = getattr(self, arg)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{arg} must be an int >= 1; received {arg}={value!r}.")
        rate = self.learning_rate
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate < 1:
            raise ValueError(f"learning_rate must be in (0, 1); received learning_rate={rate!r}.")
        if self.model is not None and not callable(self.model):
            raise TypeError(
                "model must be None or a callable (n_features, n_outputs) -> keras.Model; "
                f"received {type(self.model).__name__}."
            )

    def _reward(self, num_classes: int) -> rewards_lib.Reward:
        if self.reward is not None:
            return rewards_lib.get(self.reward)
        return rewards_lib.get("f1" if num_classes == 2 else "macro_f1")

    def _network(self, n_features: int, n_outputs: int) -> keras.Model:
        if self.model is not None:
            return self.model(n_features, n_outputs)
        layers = [keras.Input((n_features,))]
        layers += [keras.layers.Dense(int(units), activation="relu") for units in self.hidden_units]
        return keras.Sequential([*layers, keras.layers.Dense(n_outputs)])

    def _targets(self, y: np.ndarray) -> np.ndarray:
        """Class ids (0/1 for two classes, as ``[N, 1]``) of labels ``y`` ``[N]``."""
        ids = np.searchsorted(self.classes_, y).astype("int32")
        return ids[:, None] if len(self.classes_) == 2 else ids

    def fit(self, X: Any, y: Any) -> MetricClassifier:
        """Trains on ``X`` ``[N, features]`` and labels ``y`` ``[N]`` (any two or more
        classes)."""
        self._check_params()
        X, y = validate_data(self, X, y, dtype="float32")
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ValueError(
                f"MetricClassifier needs at least 2 classes in y; received 1 class, "
                f"{self.classes_.tolist()}, in {len(y)} sample(s)."
            )
        binary = len(self.classes_) == 2
        seed = 0 if self.random_state is None else int(self.random_state)
        keras.utils.set_random_seed(seed)
        self.model_ = self._network(X.shape[1], 1 if binary else len(self.classes_))
        self.trainer_ = PolicyGradientTrainer(
            self.model_,
            reward=self._reward(len(self.classes_)),
            policy="bernoulli" if binary else "categorical",
            estimator=self.estimator,
            seed=seed,
        )
        self.trainer_.compile(optimizer=keras.optimizers.Adam(self.learning_rate))
        history = self.trainer_.fit(
            X,
            self._targets(y),
            batch_size=min(int(self.batch_size), len(X)),
            epochs=int(self.epochs),
            verbose=self.verbose,
        )
        self.history_ = history.history
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """The network's logits: ``[N]`` for two classes (positive: ``classes_[1]``), else
        ``[N, C]``."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype="float32")
        logits = keras.ops.convert_to_numpy(self.model_(X, training=False))
        return logits[:, 0] if len(self.classes_) == 2 else logits

    def predict_proba(self, X: Any) -> np.ndarray:
        """The policy's probability of each class, ``[N, C]`` (columns in ``classes_`` order)."""
        logits = self.decision_function(X).astype("float64")
        if logits.ndim == 1:
            positive = 1.0 / (1.0 + np.exp(-logits))
            return np.stack([1.0 - positive, positive], axis=1)
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        """The most likely class of each row (the decisions the metric scores), ``[N]``."""
        logits = self.decision_function(X)
        ids = (logits > 0).astype(int) if logits.ndim == 1 else logits.argmax(axis=1)
        return self.classes_[ids]

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """The reward (the metric trained on) of the predicted classes of ``X`` against ``y``,
        over the whole set; what ``GridSearchCV`` selects on by default."""
        if sample_weight is not None:
            raise ValueError(
                "MetricClassifier.score does not support sample_weight: the metric is computed "
                "on the whole set."
            )
        check_is_fitted(self)
        y = np.asarray(y)
        unknown = np.setdiff1d(np.unique(y), self.classes_)
        if unknown.size:
            raise ValueError(
                f"y holds classes {unknown.tolist()} that fit did not see ({self.classes_})."
            )
        predicted = self._targets(self.predict(X))
        reward = self.trainer_.reward
        return float(keras.ops.convert_to_numpy(reward(self._targets(y), predicted[None]))[0])
