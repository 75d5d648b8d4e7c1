"""Binary segmentation of synthetic shapes trained directly on IoU (a Bernoulli per pixel).

Run: python examples/segmentation_iou.py
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from rlmetric import PolicyGradientTrainer, rewards  # noqa: E402


def make_shapes(n, size=32, seed=0):
    """Images of a bright disc or square on noise, and the mask of the shape."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:size, :size]
    images = rng.normal(0.0, 0.6, (n, size, size, 1)).astype("float32")
    masks = np.zeros((n, size, size, 1), "int32")
    for i in range(n):
        r, c = rng.integers(6, size - 6, 2)
        radius = rng.integers(3, 7)
        if rng.random() < 0.5:
            shape = (rows - r) ** 2 + (cols - c) ** 2 <= radius**2
        else:
            shape = (np.abs(rows - r) <= radius) & (np.abs(cols - c) <= radius)
        masks[i, ..., 0] = shape
        images[i, ..., 0] += shape * 1.0
    return images, masks


keras.utils.set_random_seed(0)
x_train, y_train = make_shapes(512, seed=0)
x_test, y_test = make_shapes(128, seed=1)

net = keras.Sequential(
    [
        keras.Input((32, 32, 1)),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
        keras.layers.Conv2D(1, 1),  # one logit per pixel
    ]
)
trainer = PolicyGradientTrainer(net, reward=rewards.IoU(), seed=0)
trainer.compile(optimizer=keras.optimizers.Adam(3e-3), metrics=["dice"])

train = tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(512, seed=0).batch(32)
before = trainer.evaluate(x_test, y_test, return_dict=True, verbose=0)
trainer.fit(train, epochs=15, verbose=2)
after = trainer.evaluate(x_test, y_test, return_dict=True, verbose=0)
print(
    f"test IoU before: {before['iou']:.3f}  after: {after['iou']:.3f}  (Dice {after['dice']:.3f})"
)
