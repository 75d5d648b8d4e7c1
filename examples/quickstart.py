"""Train a classifier directly on F1 (breast cancer, malignant = positive).

Run: python examples/quickstart.py
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_breast_cancer  # noqa: E402
from sklearn.metrics import f1_score  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from rlmetric import PolicyGradientTrainer, rewards  # noqa: E402

keras.utils.set_random_seed(0)
x, y = load_breast_cancer(return_X_y=True)
y = 1 - y  # scikit-learn codes malignant as 0; make it the positive class
x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, stratify=y, random_state=0)
x_train, x_val, y_train, y_val = train_test_split(
    x_train, y_train, test_size=0.2, stratify=y_train, random_state=0
)
scaler = StandardScaler().fit(x_train)
x_train, x_val, x_test = (scaler.transform(a).astype("float32") for a in (x_train, x_val, x_test))

model = keras.Sequential(
    [keras.Input((30,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(1)]
)
# the default estimator (the best response) scores the most likely decisions: no samples
trainer = PolicyGradientTrainer(model, reward=rewards.F1(), seed=0)
trainer.compile(optimizer=keras.optimizers.Adam(3e-3), metrics=["precision", "recall"])

before = trainer.evaluate(x_test, y_test, return_dict=True, verbose=0)
trainer.fit(
    x_train,
    y_train,
    batch_size=64,
    epochs=60,
    validation_data=(x_val, y_val),
    callbacks=[
        keras.callbacks.EarlyStopping("val_f1", mode="max", patience=10, restore_best_weights=True)
    ],
    verbose=2,
)
after = trainer.evaluate(x_test, y_test, return_dict=True, verbose=0)
predicted = trainer.predict_actions(x_test).ravel()
print(f"test F1 before training: {before['f1']:.3f}")
print(
    f"test F1 after training:  {after['f1']:.3f} (precision {after['precision']:.3f}, "
    f"recall {after['recall']:.3f}); scikit-learn agrees: {f1_score(y_test, predicted):.3f}"
)
assert np.isclose(after["f1"], f1_score(y_test, predicted), atol=1e-6)
