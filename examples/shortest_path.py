"""Predict, then optimize: train a cost model on the regret of the route it picks.

Edge costs of a 5 x 5 grid depend non-linearly on 5 features (the shortest-path data of
Elmachtoub & Grigas, "Smart Predict, then Optimize"); a linear model predicts the 40 costs and
the route is the shortest path under the prediction. Least squares fits the costs, not the
route; here the model is trained on the regret of the route itself: a Gaussian policy over the
predicted costs, the solver inside the reward (decisions.Regret), REINFORCE with a baseline per
example. The SPO+ loss, the specialist for linear problems, is trained beside it.

Run: python examples/shortest_path.py
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from rlmetric import PolicyGradientTrainer, decisions, policies  # noqa: E402

rng = np.random.default_rng(0)
b = rng.binomial(1, 0.5, size=(40, 5))
x = rng.normal(size=(2_250, 5)).astype("float32")
costs = ((x @ b.T) / np.sqrt(5) + 3.0) ** 8 + 1.0  # degree 8: far from linear
costs = (costs / 3.5**8 * rng.uniform(0.5, 1.5, size=costs.shape)).astype("float32")
(x_train, x_val, x_test), (c_train, c_val, c_test) = (
    np.split(a, [1_000, 1_250]) for a in (x, costs)
)
solver = decisions.LinearOptimizer(decisions.grid_paths(5, 5))  # the 70 monotone routes


def test_regret(model) -> float:
    routes = solver(model.predict(x_test, verbose=0)).numpy()
    return decisions.normalized_regret(solver, c_test, routes)


def linear():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((5,)), keras.layers.Dense(40)])


def fit_loss(loss, epochs=40, model=None):
    model = model or linear()
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss)
    model.fit(x_train, c_train, batch_size=32, epochs=epochs, verbose=0)
    return model


least_squares = fit_loss("mse")
spo_plus = fit_loss(decisions.SPOPlus(solver))

# least squares for a warm start, then the regret of the chosen route
model = fit_loss("mse", epochs=20)
trainer = PolicyGradientTrainer(
    model, reward=decisions.Regret(solver), policy=policies.Gaussian(std=0.5), seed=0
)
trainer.compile(optimizer=keras.optimizers.Adam(1e-2))
trainer.fit(x_train, c_train, batch_size=32, epochs=20, validation_data=(x_val, c_val), verbose=2)

print(
    f"normalized test regret: least squares then solve {test_regret(least_squares):.3f}, "
    f"SPO+ {test_regret(spo_plus):.3f}, trained on the regret {test_regret(model):.3f}"
)
