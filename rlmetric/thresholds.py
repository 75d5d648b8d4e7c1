"""Post-hoc threshold tuning: the baseline "train on cross-entropy, then pick the decision
threshold that maximizes the metric on validation data" that the benchmark's ``bce-tuned`` uses.

Not a loss: NumPy in, NumPy out, the candidates scored in one vectorized reward call.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from rlmetric import rewards as rewards_lib

__all__ = ["threshold_tuned"]


def threshold_tuned(
    model: Any,
    x_val: Any,
    y_val: Any,
    metric: Any = "f1",
    *,
    per_label: bool = False,
    max_candidates: int = 1024,
    batch_size: int = 1024,
) -> float | np.ndarray:
    """The decision threshold on the model's outputs that maximizes ``metric`` on validation
    data: the post-hoc baseline of "train on cross-entropy, then tune the threshold".

    Decisions are ``output > threshold`` on the model's raw outputs (logits for the models this
    library trains). Candidates are the midpoints between consecutive distinct outputs (at most
    ``max_candidates``, taken at quantiles) plus one below all; they are all scored in one
    vectorized call of the reward, as ``K`` sample sets.

    Args:
        model: a callable (Keras model) mapping ``x_val`` to outputs ``[N]``, ``[N, 1]`` or
            ``[N, L]``; or the outputs themselves as an array.
        x_val: validation inputs (ignored when ``model`` is an array).
        y_val: binary targets of the outputs' shape.
        metric: a Bernoulli [`rlmetric.rewards`][rlmetric.rewards] reward or alias (``"f1"``,
            ``"macro_f1"``,
            ``"iou"``, ...).
        per_label: for ``[N, L]`` outputs, tune one threshold per label, each maximizing the
            metric on its own column (what a macro average rewards); else one shared threshold.

    Returns:
        A float, or ``[L]`` thresholds with ``per_label=True``. Ties keep the lowest threshold.

    Examples:
        >>> import numpy as np
        >>> from rlmetric.thresholds import threshold_tuned
        >>> scores = np.array([-2.0, -1.0, 0.5, 1.0, 2.0])
        >>> threshold_tuned(scores, None, np.array([0, 1, 1, 1, 1]), "f1")  # all but the lowest
        -1.5
    """
    if isinstance(model, np.ndarray | tf.Tensor):
        outputs = np.asarray(model, dtype="float64")
    else:
        outputs = np.asarray(
            keras.ops.convert_to_numpy(
                model.predict(x_val, batch_size=batch_size, verbose=0)
                if hasattr(model, "predict")
                else model(x_val)
            ),
            dtype="float64",
        )
    y_val = np.asarray(y_val)
    if outputs.size == 0 or y_val.size == 0:
        raise ValueError(
            f"threshold_tuned needs validation data; received outputs of shape {outputs.shape} "
            f"and y_val of shape {y_val.shape}."
        )
    squeezed = tuple(d for d in y_val.shape if d != 1), tuple(d for d in outputs.shape if d != 1)
    if y_val.size != outputs.size or squeezed[0] != squeezed[1]:
        raise ValueError(
            f"y_val of shape {y_val.shape} does not fit the model's outputs of shape "
            f"{outputs.shape}: threshold_tuned needs one binary target per output, in the same "
            "layout (a transposed [L, N] is not read as [N, L])."
        )
    if not np.all(np.isfinite(outputs)):
        raise ValueError(
            f"The model's outputs hold {int((~np.isfinite(outputs)).sum())} non-finite values "
            "(NaN or inf): a threshold cannot order them."
        )
    labels = np.unique(y_val)
    if not np.all(np.isin(labels, (0, 1))):
        raise ValueError(
            f"y_val must hold binary targets 0 or 1; received values {labels[:8].tolist()} "
            "(soft targets would be truncated)."
        )
    if (
        isinstance(max_candidates, bool)
        or not isinstance(max_candidates, int)
        or max_candidates < 2
    ):
        raise ValueError(f"max_candidates must be an int >= 2; received {max_candidates!r}.")
    y_val = y_val.reshape(outputs.shape)
    reward = rewards_lib.get(metric)
    if not isinstance(reward, rewards_lib.CountReward | rewards_lib.ProbedReward):
        raise ValueError(
            f"metric {getattr(reward, 'name', metric)!r} does not score 0/1 decisions (it is "
            f"{type(reward).__name__}); threshold_tuned needs a metric of binary decisions "
            "such as 'f1', 'macro_f1', 'iou', or your own function of them."
        )
    if per_label:
        if outputs.ndim != 2:
            raise ValueError(
                f"per_label=True needs outputs of shape [N, L]; the model's outputs have shape "
                f"{outputs.shape}."
            )
        return np.array(
            [
                _best_threshold(outputs[:, j], y_val[:, j], reward, max_candidates)
                for j in range(outputs.shape[1])
            ]
        )
    return _best_threshold(outputs, y_val, reward, max_candidates)


def _best_threshold(outputs: np.ndarray, y_true: np.ndarray, reward, max_candidates: int) -> float:
    values = np.unique(outputs)
    if values.size > max_candidates:
        values = np.unique(np.quantile(values, np.linspace(0.0, 1.0, max_candidates)))
    candidates = np.concatenate([[values[0] - 1.0], (values[:-1] + values[1:]) / 2.0])
    # K = number of candidates: the reward scores every candidate's decisions at once
    actions = (outputs[None] > candidates.reshape([-1] + [1] * outputs.ndim)).astype("int32")
    scores = keras.ops.convert_to_numpy(
        reward(tf.constant(y_true.astype("int32")), tf.constant(actions))
    )
    return float(candidates[int(np.argmax(scores))])
