"""Benchmark tasks: data (scikit-learn's bundled sets or generated here; nothing is downloaded),
the model every method trains, and the test metric computed with scikit-learn.

Each task's data are split train/validation/test by the seed; every method of a seed sees the
same split and starts from the same initial weights of the shared layers.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np

__all__ = [
    "Task",
    "TASKS",
    "make_shapes",
    "make_ranking_lists",
    "mean_ndcg",
    "shortest_path_optimizer",
    "knapsack_optimizer",
    "knapsack_profit",
    "HIT_WINDOW",
    "top_precision",
    "STEP_THRESHOLDS",
]

#: The steps task's staircase: levels 0, .25, .5, .75, 1 between these thresholds.
STEP_THRESHOLDS = (0.125, 0.375, 0.625, 0.875)


@dataclass(frozen=True)
class Task:
    """One benchmark task.

    Attributes:
        name: CLI name (``cancer-f1``).
        kind: ``"path"`` (edge costs [B, 40] predicted, then the shortest path taken; labels
            are the true costs), ``"binary"`` (one decision per example), ``"campaign"`` (one
            per example, scored by the campaign's profit per list of customers),
            ``"multilabel"``, ``"binary-seg"``
            (a decision per pixel), ``"multiclass-seg"`` (a class per pixel), ``"steps"`` or
            ``"ranking"`` (a score per item of each list; labels ``[Q, L]``, ``-1`` padding) or
            ``"step-net"`` (classes from a network whose hidden units are hard steps).
        metric: the name of the test metric in tables.
        load: ``(seed, quick) -> (train, val, test)`` pairs ``(x, y)``.
        body: ``input_shape -> keras.Model`` of the features (the head is the method's).
        batch_size, epochs, quick_epochs: training settings shared by methods (each method's
            Adam learning rate is searched by
            [`rlmetric.bench.run_suite`][rlmetric.bench.run_suite]).
        classes: number of classes of ``multiclass-seg`` (background included) and of
            ``step-net``.
        hidden: the widths of the hidden layers of step units of a ``step-net`` task (a
            network of hard steps; its methods build it, ``body`` is ``None``).
    """

    name: str
    kind: str
    metric: str
    load: Callable
    body: Callable | None
    batch_size: int
    epochs: int
    quick_epochs: int
    classes: int = 2
    hidden: tuple[int, ...] = ()

    def score(self, y_true: np.ndarray, decisions: np.ndarray) -> float:
        """The test metric of ``decisions`` (same shape as ``y_true``), by scikit-learn."""
        from sklearn.metrics import accuracy_score, f1_score, jaccard_score

        if self.kind == "binary":
            return f1_score(y_true.ravel(), decisions.ravel(), zero_division=0.0)
        if self.kind == "multilabel":
            return f1_score(y_true, decisions, average="macro", zero_division=0.0)
        if self.kind == "binary-seg":
            return jaccard_score(y_true.ravel(), decisions.ravel(), zero_division=0.0)
        if self.kind == "ranking":
            return mean_ndcg(y_true, decisions, k=10)
        if self.kind == "path":  # minus the normalized regret of the chosen paths
            from rlmetric.decisions import normalized_regret

            return -normalized_regret(shortest_path_optimizer(), y_true, decisions)
        if self.kind == "top":  # the precision among each list's top 1% scores
            return top_precision(y_true, decisions)
        if self.kind == "knapsack":  # the realized profit of the chosen subsets
            return knapsack_profit(y_true, decisions)
        if self.kind == "hit":  # the share of predictions within HIT_WINDOW of the target
            return float(np.mean(np.abs(decisions.ravel() - y_true.ravel()) <= HIT_WINDOW))
        if self.kind == "campaign":
            from rlmetric.bench.user_metrics import campaign_profit

            return campaign_profit(y_true, decisions)
        if self.kind == "multiclass-seg":
            return jaccard_score(
                y_true.ravel(),
                decisions.ravel(),
                average="macro",
                labels=list(range(self.classes)),
                zero_division=0.0,
            )
        return accuracy_score(y_true.ravel(), decisions.ravel())


def _split(x: np.ndarray, y: np.ndarray, seed: int, stratify: bool = True):
    """60/20/20 train/validation/test, stratified on a 1-D ``y``; features standardized on the
    training part."""
    from sklearn.model_selection import train_test_split

    strata = y if stratify else None
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, stratify=strata, random_state=seed
    )
    strata = y_train if stratify else None
    x_train, x_val, y_train, y_val = train_test_split(
        x_train, y_train, test_size=0.25, stratify=strata, random_state=seed
    )
    mean, std = x_train.mean(0), x_train.std(0) + 1e-8
    scale = lambda a: ((a - mean) / std).astype("float32")  # noqa: E731
    return tuple(
        (scale(a), b.astype("int32"))
        for a, b in ((x_train, y_train), (x_val, y_val), (x_test, y_test))
    )


def _cancer(seed: int, quick: bool):
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True)
    return _split(x, 1 - y, seed)  # malignant (target 0 in scikit-learn) is the positive class


def _digits(seed: int, quick: bool):
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return _split(x, (y == 9).astype(int), seed)  # one-vs-rest, ~10% positive


def _digits_classes(seed: int, quick: bool):
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return _split(x, y, seed)  # the 10 classes


def _imbalanced(seed: int, quick: bool, flip: float = 0.02):
    """3% positives; ``flip``: the fraction of labels drawn at random (label noise)."""
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=5_000 if quick else 20_000,
        n_features=20,
        n_informative=8,
        weights=[0.97],
        flip_y=flip,
        class_sep=1.0,
        random_state=seed,
    )
    return _split(x, y, seed)


def _campaign(seed: int, quick: bool):
    """Buyers (10%) among customers; 10,000 rows (3,000 quick): every split is whole lists of
    ``user_metrics.CAMPAIGN_CHUNK`` customers."""
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=3_000 if quick else 10_000,
        n_features=20,
        n_informative=6,
        weights=[0.9],
        flip_y=0.02,
        class_sep=0.8,
        random_state=500 + seed,
    )
    return _split(x, y, seed)


def _split_sizes(x: np.ndarray, y: np.ndarray, sizes: tuple[int, int, int]):
    """Consecutive train/validation/test parts of generated ``x`` and ``y`` of these sizes."""
    cuts = np.cumsum(sizes)[:2]
    return tuple(zip(np.split(x, cuts), np.split(y, cuts), strict=True))


@functools.cache  # (the bench decides and scores with it after every epoch)
def shortest_path_optimizer():
    """The 70 monotone paths of the 5 x 5 grid of the ``path-regret`` tasks (40 edges)."""
    from rlmetric.decisions import LinearOptimizer, grid_paths

    return LinearOptimizer(grid_paths(5, 5))


def _shortest_path(seed: int, quick: bool, degree: int):
    """The shortest-path data of Elmachtoub & Grigas (2022) and PyEPO: features x ~ N(0, I_5),
    edge costs c_j = [((B x)_j / sqrt(5) + 3)^deg + 1] / 3.5^deg times uniform noise in
    [0.5, 1.5], B a fixed random 0/1 matrix (per seed). 1,000 training instances, 250 for
    validation, 1,000 for test (quick: the same data; fewer epochs)."""
    rng = np.random.default_rng(3000 + seed)
    features, edges = 5, 40
    b = rng.binomial(1, 0.5, size=(edges, features))
    sizes = (1_000, 250, 1_000)  # a linear model: the full data is cheap, and less says little
    x = rng.normal(size=(sum(sizes), features))
    costs = ((x @ b.T) / np.sqrt(features) + 3.0) ** degree + 1.0
    costs = costs / 3.5**degree * rng.uniform(0.5, 1.5, size=costs.shape)
    x, costs = x.astype("float32"), costs.astype("float32")
    return _split_sizes(x, costs, sizes)


#: the knapsack task: 10 items, their values, the capacity and the penalty per unit of overflow
KNAPSACK_VALUES = (4.0, 7.0, 2.0, 9.0, 5.0, 3.0, 8.0, 6.0, 1.0, 5.0)
KNAPSACK_CAPACITY = 8.0
KNAPSACK_PENALTY = 10.0
#: the hit-rate task: a prediction within this distance of the target is a hit
HIT_WINDOW = 0.15


@functools.cache
def knapsack_optimizer(safety: float = 1.0):
    """The knapsack task's solver: the most valuable subset whose weights fit the capacity."""
    from rlmetric.decisions import KnapsackOptimizer

    return KnapsackOptimizer(KNAPSACK_VALUES, KNAPSACK_CAPACITY, safety)


def knapsack_profit(realized_weights: np.ndarray, chosen: np.ndarray) -> float:
    """The mean realized profit: the chosen items' values minus the penalty per unit of
    realized weight over the capacity."""
    worth = chosen @ np.asarray(KNAPSACK_VALUES)
    overflow = np.maximum((chosen * realized_weights).sum(-1) - KNAPSACK_CAPACITY, 0.0)
    return float(np.mean(worth - KNAPSACK_PENALTY * overflow))


def _knapsack(seed: int, quick: bool):
    """Item weights that depend on 5 features, with multiplicative noise whose spread also
    depends on them (lognormal, sigma 0.05 to 0.6): the mean weight is the wrong plan for the
    items whose weight is uncertain. 2,000 / 500 / 2,000 instances (quick: 400 / 200 / 400)."""
    rng = np.random.default_rng(4000 + seed)
    features, items = 5, len(KNAPSACK_VALUES)
    mix = rng.normal(size=(items, features)) / np.sqrt(features)
    spread_mix = rng.normal(size=(items, features)) / np.sqrt(features)
    sizes = (400, 200, 400) if quick else (2_000, 500, 2_000)
    x = rng.normal(size=(sum(sizes), features))
    mean_weight = 1.5 * np.exp(0.4 * x @ mix.T)
    spread = 0.05 + 0.55 / (1.0 + np.exp(-2.0 * x @ spread_mix.T))
    weights = mean_weight * np.exp(spread * rng.normal(size=mean_weight.shape) - spread**2 / 2)
    x, weights = x.astype("float32"), weights.astype("float32")
    return _split_sizes(x, weights, sizes)


def _hit_rate(seed: int, quick: bool):
    """A target with skewed, bimodal noise whose shape changes with x: with probability
    sigmoid(2 x_0) a narrow mode at f(x), else a wide one 1.2 above it. 4,000 / 1,000 / 4,000
    rows (quick: 1,000 / 300 / 1,000)."""
    rng = np.random.default_rng(5000 + seed)
    sizes = (1_000, 300, 1_000) if quick else (4_000, 1_000, 4_000)
    x = rng.normal(size=(sum(sizes), 4))
    center = np.sin(x[:, 1]) + 0.5 * x[:, 2]
    narrow = rng.random(len(x)) < 1.0 / (1.0 + np.exp(-2.0 * x[:, 0]))
    wide = center + 1.2 + np.abs(rng.normal(scale=0.4 + 0.2 * np.abs(x[:, 3]), size=len(x)))
    y = np.where(narrow, center + rng.normal(scale=0.05, size=len(x)), wide)
    x, y = x.astype("float32"), y[:, None].astype("float32")
    return _split_sizes(x, y, sizes)


#: the top-precision task: training lists of this many examples, scored at their top 1%
TOP_LIST = 500
TOP_FRACTION = 0.01


def top_precision(y_true: np.ndarray, scores: np.ndarray) -> float:
    """The mean over lists ``[Q, L]`` of the precision among the ``ceil(1% L)`` best scores."""
    y_true, scores = np.atleast_2d(y_true), np.atleast_2d(scores)
    k = int(np.ceil(TOP_FRACTION * y_true.shape[1]))
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.take_along_axis(y_true, top, axis=1) > 0))


def _top_precision(seed: int, quick: bool):
    """10% positives in 4 clusters per class, 10 features (6 informative), 3% of the labels
    flipped: a linear score cannot
    fit the whole boundary, and the top 1% needs only its surest part. Training: lists of
    ``TOP_LIST`` examples ([Q, L, F], relevance 0/1); validation and test: one list each of all
    their examples (20,000 / 5,000 / 20,000 rows; quick: 10,000 / 5,000 / 10,000). The model is
    logistic (a linear score)."""
    from sklearn.datasets import make_classification

    sizes = (10_000, 5_000, 10_000) if quick else (20_000, 5_000, 20_000)
    x, y = make_classification(
        n_samples=sum(sizes),
        n_features=10,
        n_informative=6,
        n_clusters_per_class=4,
        weights=[0.9],
        class_sep=1.0,
        flip_y=0.03,
        random_state=6000 + seed,
    )
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = _split_sizes(x, y, sizes)
    mean, std = x_train.mean(0), x_train.std(0) + 1e-8
    lists = sizes[0] // TOP_LIST

    def as_lists(a, b, count):
        a = ((a - mean) / std).astype("float32")
        return a.reshape(count, -1, a.shape[-1]), b.reshape(count, -1).astype("float32")

    return (
        as_lists(x_train, y_train, lists),
        as_lists(x_val, y_val, 1),
        as_lists(x_test, y_test, 1),
    )


def _identity_body(input_shape) -> keras.Model:
    """No hidden layer: the method's head on the features is the linear model."""
    inputs = keras.Input(input_shape)
    return keras.Model(inputs, inputs)


def _multilabel(seed: int, quick: bool):
    from sklearn.datasets import make_multilabel_classification

    x, y = make_multilabel_classification(
        n_samples=1_500 if quick else 5_000,
        n_features=40,
        n_classes=10,
        n_labels=2,
        random_state=seed,
    )
    return _split(np.log1p(x), y, seed, stratify=False)


def make_shapes(
    count: int, size: int = 32, seed: int = 0, noise: float = 0.6
) -> tuple[np.ndarray, np.ndarray]:
    """Images of 1-3 random discs, squares and triangles on Gaussian noise.

    Returns:
        ``images`` ``[count, size, size, 1]`` float32 and ``labels`` ``[count, size, size]``
        int32: 0 background, 1 disc, 2 square, 3 triangle (a later shape covers an earlier one).
    """
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:size, 0:size]
    labels = np.zeros((count, size, size), "int32")
    for image in labels:  # a handful of shapes per image: data generation, not training
        for _ in range(rng.integers(1, 4)):
            kind = rng.integers(1, 4)
            radius = rng.uniform(0.12, 0.22) * size
            cy, cx = rng.uniform(radius, size - radius, size=2)
            dy, dx = rows - cy, cols - cx
            if kind == 1:
                inside = dy**2 + dx**2 <= radius**2
            elif kind == 2:
                inside = (np.abs(dy) <= 0.8 * radius) & (np.abs(dx) <= 0.8 * radius)
            else:  # upward triangle: below the apex, inside two slanted edges
                inside = (
                    (dy <= radius * 0.8) & (dy >= -radius) & (np.abs(dx) <= (dy + radius) * 0.6)
                )
            image[inside] = kind
    images = (labels > 0).astype("float32") + rng.normal(scale=noise, size=labels.shape)
    return images[..., None].astype("float32"), labels


def _shapes(seed: int, quick: bool, binary: bool):
    count = 300 if quick else 1_200
    images, labels = make_shapes(count, 32, seed=1000 + seed)
    if binary:
        labels = (labels > 0).astype("int32")[..., None]
    train, val = int(0.6 * count), int(0.8 * count)
    return (
        (images[:train], labels[:train]),
        (images[train:val], labels[train:val]),
        (images[val:], labels[val:]),
    )


def _steps(seed: int, quick: bool):
    """Quantized regression: a smooth function of 8 features, cut into 5 levels."""
    rng = np.random.default_rng(2000 + seed)
    count = 2_000 if quick else 6_000
    x = rng.normal(size=(count, 8))
    signal = x[:, 0] + 0.7 * np.sin(2.0 * x[:, 1]) + 0.5 * x[:, 2] * x[:, 3] + 0.3 * x[:, 4] ** 2
    signal += 0.25 * rng.normal(size=count)  # label noise
    value = 1.0 / (1.0 + np.exp(-signal))  # in (0, 1)
    level = np.digitize(value, STEP_THRESHOLDS)  # 0 .. 4
    return _split(x, level, seed)


def mean_ndcg(y_true: np.ndarray, scores: np.ndarray, k: int = 10) -> float:
    """Mean over lists of scikit-learn's ``ndcg_score`` at ``k`` of each list's real items
    (label ``>= 0``), with gains ``2^rel - 1`` (``rlmetric.ranking.NDCG``'s); 0 for a list
    without a relevant item."""
    from sklearn.metrics import ndcg_score

    values = []
    for labels, row in zip(y_true, scores, strict=True):
        real = labels >= 0
        gains = 2.0 ** labels[real] - 1.0
        values.append(ndcg_score([gains], [row[real]], k=k) if real.sum() > 1 else 0.0)
    return float(np.mean(values))


def make_ranking_lists(
    features: np.ndarray, relevance: np.ndarray, lists: int, sizes: tuple[int, int], seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Lists of items drawn without replacement from a pool.

    Returns ``x [lists, L, F]`` (zeros at padding) and ``y [lists, L]`` float32 relevance with
    ``-1`` at padding, ``L = sizes[1]``; each list has ``sizes[0] .. sizes[1]`` items.
    """
    rng = np.random.default_rng(seed)
    width = sizes[1]
    x = np.zeros((lists, width, features.shape[1]), "float32")
    y = np.full((lists, width), -1.0, "float32")
    for i in range(lists):  # data generation, not training
        size = min(int(rng.integers(sizes[0], sizes[1] + 1)), len(features))
        chosen = rng.choice(len(features), size=size, replace=False)
        x[i, :size], y[i, :size] = features[chosen], relevance[chosen]
    return x, y


def _synthetic_ranking(seed: int, quick: bool):
    """Queries of 20-100 items with 10 features; relevance 0-4 cut from a nonlinear function of
    the features plus noise and a per-query shift (so a query's best items vary in grade)."""
    rng = np.random.default_rng(3000 + seed)
    counts = (120, 40, 40) if quick else (480, 160, 160)
    parts = []
    for part, lists in enumerate(counts):
        items = 100 * lists
        x = rng.normal(size=(items, 10)).astype("float32")
        signal = (
            x[:, 0]
            + 0.8 * np.sin(2.0 * x[:, 1])
            + 0.6 * x[:, 2] * x[:, 3]
            - 0.4 * np.abs(x[:, 4])
            + 0.3 * x[:, 5] ** 2
            + 0.5 * rng.normal(size=items)
        )
        relevance = np.digitize(signal, [0.8, 1.6, 2.3, 3.0]).astype("float32")
        x_lists, y_lists = make_ranking_lists(x, relevance, lists, (20, 100), 10 * seed + part)
        parts.append((x_lists, y_lists))
    return tuple(parts)


def _diabetes_ranking(seed: int, quick: bool):
    """scikit-learn's diabetes set (442 patients, 10 features) as ranking lists: each list is
    20-40 patients of one split, graded 0-4 by the quintile of their disease progression
    (quintiles of the training patients). Patients of the splits are disjoint."""
    from sklearn.datasets import load_diabetes
    from sklearn.model_selection import train_test_split

    x, target = load_diabetes(return_X_y=True)
    x_train, x_test, t_train, t_test = train_test_split(x, target, test_size=0.2, random_state=seed)
    x_train, x_val, t_train, t_val = train_test_split(
        x_train, t_train, test_size=0.25, random_state=seed
    )
    mean, std = x_train.mean(0), x_train.std(0) + 1e-8
    cuts = np.quantile(t_train, [0.2, 0.4, 0.6, 0.8])
    counts = (150, 50, 50) if quick else (400, 100, 100)
    return tuple(
        make_ranking_lists(
            ((features - mean) / std).astype("float32"),
            np.digitize(progression, cuts).astype("float32"),
            lists,
            (20, 40),
            10 * seed + part,
        )
        for part, (features, progression, lists) in enumerate(
            zip((x_train, x_val, x_test), (t_train, t_val, t_test), counts, strict=True)
        )
    )


def _mlp_body(input_shape) -> keras.Model:
    inputs = keras.Input(input_shape)
    return keras.Model(inputs, keras.layers.Dense(64, activation="relu")(inputs))


def _conv_body(input_shape) -> keras.Model:
    """Three 3x3 convolutions, dilations 1, 2, 4 (a 15-pixel receptive field), 16 channels."""
    inputs = keras.Input(input_shape)
    h = inputs
    for dilation in (1, 2, 4):
        h = keras.layers.Conv2D(16, 3, padding="same", dilation_rate=dilation, activation="relu")(h)
    return keras.Model(inputs, h)


TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        Task("cancer-f1", "binary", "F1", _cancer, _mlp_body, 64, 60, 12),
        Task("digits-f1", "binary", "F1", _digits, _mlp_body, 64, 60, 12),
        Task("imbalanced-f1", "binary", "F1", _imbalanced, _mlp_body, 256, 40, 8),
        # predict the edge costs, then take the shortest path: minus the normalized regret
        Task(
            "path-regret",
            "path",
            "-normalized regret",
            lambda s, q: _shortest_path(s, q, 8),
            _identity_body,
            32,
            40,
            12,
        ),
        Task(
            "path-regret-linear",
            "path",
            "-normalized regret",
            lambda s, q: _shortest_path(s, q, 1),
            _identity_body,
            32,
            40,
            12,
        ),
        # predict item weights, then pack: the realized value minus the overflow penalty; 60
        # epochs: at 30 the decision phase of the warm methods (the second half) was still
        # improving (benchmarks/RESULTS.md, "Decisions no surrogate covers")
        Task("knapsack-overflow", "knapsack", "profit", _knapsack, _mlp_body, 64, 60, 12),
        # precision among the top 1% scored examples; training in lists of TOP_LIST examples
        Task("top-precision", "top", "precision@1%", _top_precision, _identity_body, 4, 30, 12),
        # regression scored by the share of predictions within HIT_WINDOW of the target
        Task("hit-rate", "hit", "hit rate", _hit_rate, _mlp_body, 128, 30, 12),
        # the if-else business metric of a user (bench.user_metrics.profit_tf), lists of 100
        Task("campaign", "campaign", "profit per list", _campaign, _mlp_body, 100, 30, 8),
        Task("multilabel-f1", "multilabel", "macro F1", _multilabel, _mlp_body, 128, 60, 10),
        Task(
            "shapes-iou",
            "binary-seg",
            "IoU",
            lambda s, q: _shapes(s, q, True),
            _conv_body,
            16,
            20,
            5,
        ),
        Task(
            "shapes-miou",
            "multiclass-seg",
            "mean IoU",
            lambda s, q: _shapes(s, q, False),
            _conv_body,
            16,
            25,
            6,
            classes=4,
        ),
        Task("steps", "steps", "exact-level accuracy", _steps, _mlp_body, 128, 40, 8),
        # networks of hard step units: the hidden widths, then the classes
        Task("digits-step", "step-net", "accuracy", _digits_classes, None, 64, 40, 8, 10, (128,)),
        Task(
            "digits-step2", "step-net", "accuracy", _digits_classes, None, 64, 40, 8, 10, (128, 64)
        ),
        Task("cancer-step", "step-net", "accuracy", _cancer, None, 32, 40, 8, 2, (32,)),
        Task("cancer-step2", "step-net", "accuracy", _cancer, None, 32, 40, 8, 2, (32, 16)),
        Task("steps-step", "step-net", "exact-level accuracy", _steps, None, 128, 40, 8, 5, (64,)),
        # an MLP applied to every item of a list: [Q, L, F] -> [Q, L, 64]
        Task("ltr-ndcg", "ranking", "NDCG@10", _synthetic_ranking, _mlp_body, 32, 40, 8),
        Task("diabetes-ndcg", "ranking", "NDCG@10", _diabetes_ranking, _mlp_body, 32, 40, 8),
    )
}
