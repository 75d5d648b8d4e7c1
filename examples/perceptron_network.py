"""A network of perceptrons: hidden units that are hard steps H(x), trained with a policy
gradient, deployed as integer weights and thresholds.

The unit step passes no gradient back, so the first layer cannot be trained by backprop. Each
unit is a decision instead (StochasticStep: drawn during training, H(x) at inference), and
StepNetworkTrainer credits the first layer with the local-expectation estimator.

Run: python examples/perceptron_network.py
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from rlmetric.layers import StochasticStep  # noqa: E402
from rlmetric.step_networks import StepNetworkTrainer  # noqa: E402

keras.utils.set_random_seed(0)
x, y = load_digits(return_X_y=True)  # 8x8 images, pixel values 0..16 (integers)
x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, stratify=y, random_state=0)
# the raw integer pixels go in, so the deployed perceptrons read integers
x_train, x_test = x_train.astype("float32"), x_test.astype("float32")

model = keras.Sequential(
    [
        keras.Input((64,)),
        keras.layers.Rescaling(1 / 16),  # (folded into the integer weights below)
        keras.layers.Dense(64),
        StochasticStep(),  # 64 hard units: 0 or 1
        keras.layers.Dense(10),
    ]
)
trainer = StepNetworkTrainer(model, estimator="local_expectation", num_samples=2, seed=0)
trainer.compile(optimizer=keras.optimizers.Adam(3e-3), metrics=["accuracy"])
trainer.fit(x_train, y_train, batch_size=64, epochs=40, verbose=0)
hard = trainer.evaluate(x_test, y_test, return_dict=True, verbose=0)["accuracy"]
print(f"test accuracy, hard step units (the Keras model): {hard:.4f}")

# The deployed network: unit j fires iff sum_i w_ji * pixel_i > t_j, with integer w and t.
kernel, bias = model.layers[1].get_weights()
kernel = kernel / 16.0  # the Rescaling layer, folded in
scale = 127.0 / np.abs(kernel).max(axis=0)  # per unit: weights in -127..127 (int8)
weights = np.round(kernel * scale).astype(np.int32)  # [64 pixels, 64 units]
thresholds = np.round(-bias * scale).astype(np.int32)
head_kernel, head_bias = model.layers[3].get_weights()


def deployed(pixels: np.ndarray) -> np.ndarray:
    fired = (pixels.astype(np.int32) @ weights > thresholds).astype(np.float32)  # integers only
    return (fired @ head_kernel + head_bias).argmax(-1)


print(f"test accuracy, int8 perceptrons: {np.mean(deployed(x_test) == y_test):.4f}")
print("unit 0: fires iff sum(w * pixel) >", thresholds[0], "with w (8x8) =")
print(weights[:, 0].reshape(8, 8))
