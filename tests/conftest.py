import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed_everything():
    keras.utils.set_random_seed(1234)


@pytest.fixture(scope="session")
def cancer():
    """Breast cancer (malignant = 1), standardized, split 70/30 with a fixed seed."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    x, y = load_breast_cancer(return_X_y=True)
    y = (1 - y).astype("int32")
    x = ((x - x.mean(0)) / x.std(0)).astype("float32")
    return train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)


@pytest.fixture(params=["eager", "tf.function", "xla"])
def execution(request):
    """Runs a function eagerly, inside a ``tf.function``, or compiled with XLA: the numeric
    tests of tests/test_execution_modes.py take it to check all three give the same values."""
    import tensorflow as tf

    if request.param == "eager":
        return lambda function: function
    return lambda function: tf.function(function, jit_compile=request.param == "xla")
