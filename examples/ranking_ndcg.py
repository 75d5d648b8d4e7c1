"""A scoring model trained directly on NDCG@10 (a Plackett-Luce policy over rankings).

Lists of 20-40 patients of scikit-learn's diabetes set are ranked by disease progression (graded
0-4 by quintile); the model scores each patient from their 10 features. Lists shorter than 40 are
padded with label -1. The trainer's defaults for reward="ndcg@10" and policy="plackett_luce"
use the pairwise best response (rlmetric.plackett_luce.PairwiseBestResponse), which measured
above PL-Rank on this task (benchmarks/RESULTS.md). The benchmark (task diabetes-ndcg, 5 seeds)
reports the comparison with ListNet, RankNet, ApproxNDCG and LambdaLoss; here the script prints
NDCG@10 on held-out lists before and after training, and the same for ListNet's softmax
cross-entropy.

Run: python examples/ranking_ndcg.py
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

from rlmetric import PolicyGradientTrainer, surrogates  # noqa: E402
from rlmetric.bench.tasks import TASKS, mean_ndcg  # noqa: E402

(x_train, y_train), (x_val, y_val), (x_test, y_test) = TASKS["diabetes-ndcg"].load(0, False)
print(f"lists: x {x_train.shape} (lists, items, features), y {y_train.shape}; -1 marks padding")


def scorer() -> keras.Model:
    """One score per item: an MLP applied to every item, [lists, 40, 10] -> [lists, 40]."""
    inputs = keras.Input(x_train.shape[1:])
    hidden = keras.layers.Dense(64, activation="relu")(inputs)
    scores = keras.layers.Dense(1)(hidden)
    return keras.Model(inputs, keras.layers.Reshape((x_train.shape[1],))(scores))


keras.utils.set_random_seed(0)
trainer = PolicyGradientTrainer(scorer(), reward="ndcg@10", policy="plackett_luce", seed=0)
print(f"estimator: {type(trainer.estimator).__name__}")  # PairwiseBestResponse: estimator="auto"
trainer.compile(optimizer=keras.optimizers.Adam(1e-2), metrics=["mrr", "map@10"])
before = trainer.evaluate(x_test, y_test, return_dict=True, verbose=0)
trainer.fit(x_train, y_train, batch_size=32, epochs=40, validation_data=(x_val, y_val), verbose=0)
after = trainer.evaluate(x_test, y_test, return_dict=True, verbose=0)
print(f"test NDCG@10 before {before['ndcg@10']:.4f}, after {after['ndcg@10']:.4f}")
print(f"test MRR {after['mrr']:.4f}, MAP@10 {after['map@10']:.4f}")
# the same score from scikit-learn, on the model's scores
reference = mean_ndcg(y_test, trainer.predict(x_test, verbose=0))
print(f"scikit-learn NDCG@10 of the scores: {reference:.4f}")

keras.utils.set_random_seed(0)
listnet = scorer()
listnet.compile(optimizer=keras.optimizers.Adam(1e-2), loss=surrogates.ListNet())
listnet.fit(x_train, y_train, batch_size=32, epochs=40, verbose=0)
listnet_ndcg = mean_ndcg(y_test, listnet.predict(x_test, verbose=0))
print(f"ListNet, same model and epochs: test NDCG@10 {listnet_ndcg:.4f}")
