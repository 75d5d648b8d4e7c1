"""The surrogate-loss configurations that tests/test_surrogates.py trains and
tests/test_execution_modes.py compiles, on the same small segmentation data."""

import numpy as np

from rlmetric import surrogates

ALL_LOSSES = {
    "weighted_bce": (lambda: surrogates.WeightedBCE(2.0), "binary"),
    "focal": (lambda: surrogates.Focal(), "binary"),
    "soft_f1": (lambda: surrogates.SoftF1(), "binary"),
    "soft_dice": (lambda: surrogates.SoftDice(), "binary"),
    "soft_jaccard_batch": (lambda: surrogates.SoftJaccard(batch=True), "binary"),
    "lovasz_hinge": (lambda: surrogates.LovaszHinge(), "binary"),
    "lovasz_hinge_batch": (lambda: surrogates.LovaszHinge(per_image=False), "binary"),
    "soft_dice_softmax": (lambda: surrogates.SoftDice("softmax"), "classes"),
    "lovasz_softmax": (lambda: surrogates.LovaszSoftmax(ignore_index=255), "classes"),
    "lovasz_softmax_per_image": (lambda: surrogates.LovaszSoftmax(per_image=True), "classes"),
}


def segmentation_data(kind, rng):
    x = rng.normal(size=(8, 8, 8, 2)).astype("float32")
    if kind == "binary":
        return x, (x[..., :1] > 0.3).astype("int32"), 1
    return x, np.digitize(x[..., 0], [-0.5, 0.5]).astype("int32"), 3
