"""Your own metric as the training objective: an if-else business rule written in NumPy.

A marketing team contacts customers from daily lists of 100. Each contacted buyer earns 10,
each contacted non-buyer costs 3, and a list of which more than 20% is contacted costs 50 more
(the call centre's overtime). The metric is that profit, written as plain Python with an `if`.
The trainer's defaults train on it directly; the usual recipe, cross-entropy and then a
threshold tuned on validation for the same profit, is trained beside it.

Run: python examples/custom_metric.py
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import make_classification  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from rlmetric import PolicyGradientTrainer, rewards  # noqa: E402

LIST = 100  # customers per daily list: the batch the metric scores


def campaign_profit(y_true, y_pred):
    """The profit of one list: y_true (bought) and y_pred (contacted) are 0/1 arrays."""
    profit = 10.0 * np.sum(y_pred * y_true) - 3.0 * np.sum(y_pred * (1 - y_true))
    if y_pred.mean() > 0.2:
        profit -= 50.0
    return profit


def profit_per_list(y_true, contacted):
    lists = zip(y_true.reshape(-1, LIST), contacted.reshape(-1, LIST), strict=True)
    return float(np.mean([campaign_profit(y, c) for y, c in lists]))


keras.utils.set_random_seed(0)
x, y = make_classification(
    n_samples=10_000,
    n_features=20,
    n_informative=6,
    weights=[0.9],
    flip_y=0.02,
    class_sep=0.8,
    random_state=0,
)  # 10% buyers
x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, stratify=y, random_state=0)
x_train, x_val, y_train, y_val = train_test_split(
    x_train, y_train, test_size=0.25, stratify=y_train, random_state=0
)
scaler = StandardScaler().fit(x_train)
x_train, x_val, x_test = (scaler.transform(a).astype("float32") for a in (x_train, x_val, x_test))


def mlp():
    return keras.Sequential(
        [keras.Input((20,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(1)]
    )


# 1. The metric itself as the objective, with the trainer's defaults.
trainer = PolicyGradientTrainer(mlp(), reward=rewards.from_numpy(campaign_profit), seed=0)
trainer.compile(optimizer=keras.optimizers.Adam(3e-3))
trainer.fit(
    x_train,
    y_train,
    batch_size=LIST,
    epochs=20,
    validation_data=(x_val, y_val),
    callbacks=[
        keras.callbacks.EarlyStopping(
            "val_campaign_profit", mode="max", patience=5, restore_best_weights=True
        )
    ],
    verbose=2,
)
print(
    f"estimator: {trainer.estimator!r}; the metric is exchangeable at the level of "
    f"{trainer.reward.structure!r}"
)
contacted = trainer.predict_actions(x_test).ravel()
metric_trained = profit_per_list(y_test, contacted)

# 2. The usual recipe: cross-entropy, then the threshold with the best validation profit.
model = mlp()
model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=keras.losses.BinaryCrossentropy(True))
model.fit(
    x_train,
    y_train,
    batch_size=LIST,
    epochs=20,
    validation_data=(x_val, y_val),
    callbacks=[keras.callbacks.EarlyStopping(patience=5, restore_best_weights=True)],
    verbose=0,
)
val_logits = model.predict(x_val, verbose=0).ravel()
candidates = np.unique(val_logits)
threshold = max(candidates, key=lambda t: profit_per_list(y_val, (val_logits > t).astype(int)))
tuned = profit_per_list(y_test, (model.predict(x_test, verbose=0).ravel() > threshold).astype(int))

print(
    f"test profit per list of {LIST}: trained on the metric {metric_trained:.1f}, "
    f"cross-entropy + tuned threshold {tuned:.1f}, contact nobody 0.0"
)
