"""Train a breast-cancer classifier through MetricEnv: each step shows a batch, takes its
predictions and pays the batch F1; fit_env learns from those rewards alone.

Run: python examples/metric_env.py
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
from sklearn.datasets import load_breast_cancer  # noqa: E402
from sklearn.metrics import f1_score  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from rlmetric import PolicyGradientTrainer  # noqa: E402
from rlmetric.envs import MetricEnv  # noqa: E402

keras.utils.set_random_seed(0)
x, y = load_breast_cancer(return_X_y=True)
y = 1 - y  # malignant positive
x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, stratify=y, random_state=0)
scaler = StandardScaler().fit(x_train)
x_train, x_test = (scaler.transform(a).astype("float32") for a in (x_train, x_test))

batch = 32
env = MetricEnv(x_train, y_train, reward="f1", batch_size=batch, seed=0)
# the observation is a whole batch [32, 30]; the model scores every row: logits [32]
classifier = keras.Sequential(
    [
        keras.Input((batch, 30)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(1),
        keras.layers.Reshape((batch,)),
    ]
)
trainer = PolicyGradientTrainer(classifier, reward=None)  # the env pays the reward
trainer.compile(optimizer=keras.optimizers.Adam(3e-3))
# a step's reward depends on its own predictions only: no discounting across steps
history = trainer.fit_env(env, episodes=40, gamma=0.0, baseline="moving_average", seed=0, verbose=2)

scorer = keras.Sequential(classifier.layers[:-1])  # the same weights, one row at a time
predictions = (scorer.predict(x_test[:, None, :], verbose=0).ravel() > 0).astype(int)
first, last = (
    r / env.num_batches for r in history.episode_returns[:: len(history.episode_returns) - 1]
)
print(f"mean batch F1 of the first episode: {first:.3f}, of the last: {last:.3f}")
print(f"test F1: {f1_score(y_test, predictions):.3f}")
