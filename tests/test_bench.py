"""The benchmark suite and the ``rlmetric bench`` CLI, on tiny runs."""

import csv

import numpy as np
import pytest
import tensorflow as tf

from rlmetric import cli, layers
from rlmetric.bench import METHODS, TASKS, make_shapes, run_suite
from rlmetric.bench.methods import exact_level_reward
from rlmetric.bench.tasks import knapsack_optimizer, shortest_path_optimizer


def test_make_shapes_draws_labelled_shapes_on_noise():
    images, labels = make_shapes(20, size=24, seed=3)
    assert images.shape == (20, 24, 24, 1) and labels.shape == (20, 24, 24)
    assert set(np.unique(labels)) <= {0, 1, 2, 3} and len(np.unique(labels)) == 4
    assert np.all((labels > 0).reshape(20, -1).any(1))  # every image has a shape
    # shapes are brighter than the background by 1 on average
    gap = images[..., 0][labels > 0].mean() - images[..., 0][labels == 0].mean()
    assert gap == pytest.approx(1.0, abs=0.1)
    again, _ = make_shapes(20, size=24, seed=3)
    np.testing.assert_array_equal(images, again)


def test_every_task_loads_consistent_splits():
    for task in TASKS.values():
        (x_train, y_train), (x_val, y_val), (x_test, y_test) = task.load(0, True)
        assert len(x_train) == len(y_train) > len(x_val) == len(y_val) > 0 < len(x_test)
        # graded relevance with -1 padding; costs, weights and targets of decisions
        floats = ("ranking", "path", "knapsack", "hit", "top")
        labels = np.float32 if task.kind in floats else np.int32
        assert x_train.dtype == np.float32 and y_train.dtype == labels
        # top-precision: training lists, then one list of the whole test set
        same = -1 if task.kind == "top" else 1
        assert x_train.shape[same:] == x_test.shape[same:]
        if task.kind == "campaign":  # a profit: every buyer contacted beats contacting nobody
            assert task.score(y_test, y_test) > task.score(y_test, 0 * y_test) == 0.0
        elif task.kind == "path":  # the true costs' shortest paths: no regret
            best = shortest_path_optimizer()(y_test).numpy()
            assert task.score(y_test, best) == pytest.approx(0.0, abs=1e-6)
            assert task.score(y_test, np.roll(best, 1, axis=0)) < -0.05
        elif task.kind == "knapsack":  # packing by the true weights never overflows
            packed = knapsack_optimizer()(y_test).numpy()
            assert task.score(y_test, packed) > task.score(y_test, 0 * packed) == 0.0
        else:
            assert task.score(y_test, y_test) == pytest.approx(1.0)


def test_ranking_tasks_run_with_listnet_as_the_cross_entropy(tmp_path, capsys):
    rows = run_suite(
        tasks=["diabetes-ndcg"],
        methods=["bce", "listnet", "lambdaloss", "pg-best-response"],
        seeds=1,
        quick=True,
        epochs=2,
        out=tmp_path,
    )
    assert {r["method"] for r in rows} == {"listnet", "lambdaloss", "pg-best-response"}
    for row in rows:
        assert 0.0 < row["test"] <= 1.0 and row["metric"] == "NDCG@10"
    listnet = next(r for r in rows if r["method"] == "listnet")
    assert listnet["step_ratio_vs_bce"] == pytest.approx(1.0)
    out = capsys.readouterr().out
    defaults = out[out.index("The default trainer") :]
    assert "| diabetes-ndcg | listnet " in defaults


def test_step_network_tasks_score_every_method_with_hard_steps(tmp_path, capsys):
    from rlmetric.bench.step_nets import STEP_NETWORK_METHODS

    names = [m.name for m in STEP_NETWORK_METHODS]
    rows = run_suite(
        tasks=["cancer-step2"], methods=names, seeds=1, quick=True, epochs=2, out=tmp_path
    )
    assert [r["method"] for r in rows] == names
    task = TASKS["cancer-step2"]
    (x_train, y_train), _, (x_test, y_test) = task.load(0, True)
    for row in rows:
        assert 0.0 < row["test"] <= 1.0 and row["metric"] == "accuracy"
    ste = next(r for r in rows if r["method"] == "ste-net")
    assert ste["step_ratio_vs_bce"] == pytest.approx(1.0)  # the reference step
    out = capsys.readouterr().out
    # the ReLU network is a ceiling: never the "best surrogate" of the verdict
    verdict = out[out.index("Verdict") :]
    assert "| cancer-step2 | relu-net" not in verdict.split("ReLU network of the same size")[0]
    assert "ReLU network of the same size" in out


def test_smooth_annealed_network_is_scored_with_hard_steps():
    from rlmetric.bench.step_nets import _hard_twin, _network

    task = TASKS["cancer-step"]
    (x_train, y_train), _, _ = task.load(0, True)
    smooth, denses = _network(task, x_train, 0, lambda: layers.SmoothStep([0.0], sharpness=1.0))
    hard = _hard_twin(x_train, denses)
    kernel, bias, head, head_bias = (w for w in smooth.get_weights() if w.ndim > 0)
    expected = ((x_train @ kernel + bias) > 0).astype("float32") @ head + head_bias
    np.testing.assert_allclose(hard.predict(x_train, verbose=0), expected, rtol=1e-5, atol=1e-5)
    assert not np.allclose(smooth.predict(x_train, verbose=0), expected, atol=1e-3)


def test_mean_ndcg_skips_padding_and_scores_lists_without_relevance_zero():
    from sklearn.metrics import ndcg_score

    from rlmetric.bench.tasks import mean_ndcg

    y = np.array([[2.0, 0.0, 1.0, -1.0], [0.0, 0.0, 0.0, 0.0]])
    scores = np.array([[0.1, 0.9, 0.5, 5.0], [1.0, 2.0, 3.0, 4.0]])
    expected = ndcg_score([[3.0, 0.0, 1.0]], [[0.1, 0.9, 0.5]], k=10) / 2
    assert mean_ndcg(y, scores) == pytest.approx(expected)


def test_exact_level_reward_counts_steps():
    y_steps = tf.constant([[1, 1, 0, 0], [1, 0, 0, 0]])
    actions = tf.constant([[[1, 1, 0, 0], [0, 1, 0, 0]], [[0, 0, 1, 1], [1, 1, 0, 0]]])
    # set 0: both levels right (the second by its count); set 1: first right, second wrong
    np.testing.assert_allclose(exact_level_reward(y_steps, actions), [1.0, 0.5])


def test_run_suite_writes_rows_table_and_plots(tmp_path, capsys):
    rows = run_suite(
        tasks=["cancer-f1", "steps"],
        methods=["bce", "bce-tuned", "soft-dice", "smooth-step", "pg-local"],
        seeds=1,
        quick=True,
        epochs=2,
        out=tmp_path,
    )
    ran = {(r["task"], r["method"]) for r in rows}
    # methods run only on the tasks they fit
    assert ran == {
        ("cancer-f1", "bce"),
        ("cancer-f1", "bce-tuned"),
        ("cancer-f1", "pg-local"),
        ("steps", "bce"),
        ("steps", "smooth-step"),
        ("steps", "pg-local"),
    }
    for row in rows:
        assert 0.0 <= row["test"] <= 1.0 and row["train_seconds"] > 0
    tuned = next(r for r in rows if r["method"] == "bce-tuned")
    bce = next(r for r in rows if r["method"] == "bce" and r["task"] == "cancer-f1")
    assert tuned["train_seconds"] == bce["train_seconds"]  # one training, reused
    assert all(r["learning_rate"] == 3e-3 and r["chosen"] == 1 for r in rows)  # quick: one rate
    with open(tmp_path / "results.csv") as f:
        written = list(csv.DictReader(f))
    assert len(written) == len(rows) and float(written[0]["test"]) == pytest.approx(rows[0]["test"])
    assert (tmp_path / "learning_curves.png").stat().st_size > 10_000
    assert (tmp_path / "test_metric.png").stat().st_size > 10_000
    out = capsys.readouterr().out
    assert "| cancer-f1 | F1 | pg-local | " in out and "[  6/6]" in out
    assert "test (1 seed)" in out and "+- 0.0000" not in out
    assert out.index("One seed: every number below is a single training run") < out.index(
        "test (1 seed)"
    )  # the caveat comes before the one-seed table
    # the verdict comes last, and says that one seed gives no interval
    verdicts = out[out.index("Verdict: the best policy-gradient method") :]
    assert "| cancer-f1 | " in verdicts and "(1 seed: no interval) | 1 seed |" in verdicts


def test_cli_lists_and_rejects_unknown_names(capsys):
    assert cli.main(["bench", "--list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in list(TASKS) + list(METHODS))
    assert cli.main(["bench", "--quick", "--tasks", "cancer-f1,nope"]) == 2
    assert "unknown tasks ['nope']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["bench", "--quick", "--full"])


def test_run_suite_validates_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown methods"):
        run_suite(methods=["sgd"], out=tmp_path)
    with pytest.raises(ValueError, match="seeds"):
        run_suite(tasks=["cancer-f1"], seeds=0, out=tmp_path)


def test_learning_rate_search_picks_by_validation_and_reads_test_at_the_chosen_rate(tmp_path):
    rows = run_suite(
        tasks=["cancer-f1"],
        methods=["bce"],
        seeds=3,
        quick=True,
        epochs=2,
        learning_rates=[1e-4, 3e-2],
        tune_seeds=2,
        out=tmp_path,
        log=lambda line: None,
    )
    searched = [r for r in rows if r["seed"] < 2]
    assert sorted((r["seed"], r["learning_rate"]) for r in searched) == [
        (0, 1e-4),
        (0, 3e-2),
        (1, 1e-4),
        (1, 3e-2),
    ]
    mean_validation = {
        rate: np.mean([r["best_validation"] for r in searched if r["learning_rate"] == rate])
        for rate in (1e-4, 3e-2)
    }
    chosen_rate = max(mean_validation, key=mean_validation.get)
    chosen = [r for r in rows if r["chosen"]]
    assert [r["seed"] for r in chosen] == [0, 1, 2]
    assert {r["learning_rate"] for r in chosen} == {chosen_rate}
    assert [r["seed"] for r in rows if r["seed"] == 2] == [2]  # later seeds: the chosen rate only


def test_paired_difference_interval_and_verdicts():
    from rlmetric.bench.report import paired_difference

    win = paired_difference([0.80, 0.82, 0.81, 0.83, 0.80], [0.70, 0.71, 0.72, 0.70, 0.71])
    assert win["verdict"] == "win" and win["low"] > 0
    differences = np.array([0.10, 0.11, 0.09, 0.13, 0.09])
    half = 2.7764451 * differences.std(ddof=1) / np.sqrt(5)  # t(0.975, 4 degrees of freedom)
    assert win["mean"] == pytest.approx(differences.mean())
    assert win["high"] - win["mean"] == pytest.approx(half, rel=1e-6)
    assert paired_difference([0.7, 0.8, 0.6], [0.71, 0.75, 0.66])["verdict"] == "tie"
    assert paired_difference([0.5, 0.52], [0.6, 0.61])["verdict"] == "loss"
    assert paired_difference([0.5], [0.4])["verdict"] == "1 seed"


def test_a_suite_that_stops_early_keeps_its_finished_runs(tmp_path, monkeypatch):
    import dataclasses

    calls = {"count": 0}
    real = METHODS["bce"]

    def train(*args, **kwargs):
        calls["count"] += 1
        if calls["count"] == 2:
            raise RuntimeError("stopped")
        return real.train(*args, **kwargs)

    monkeypatch.setitem(METHODS, "bce", dataclasses.replace(real, train=train))
    with pytest.raises(RuntimeError, match="stopped"):
        run_suite(
            tasks=["cancer-f1"],
            methods=["bce"],
            seeds=2,
            quick=True,
            epochs=2,
            out=tmp_path,
            learning_rates=[3e-3],
        )
    with open(tmp_path / "results.partial.csv") as f:
        kept = list(csv.DictReader(f))
    assert [(r["method"], r["seed"]) for r in kept] == [("bce", "0")]
    assert not (tmp_path / "results.csv").exists()
    run_suite(tasks=["cancer-f1"], methods=["bce"], seeds=1, quick=True, epochs=2, out=tmp_path)
    assert (tmp_path / "results.csv").exists() and not (tmp_path / "results.partial.csv").exists()
    # issue 27, case 7: the next run into the same folder keeps the stopped run's rows
    with open(tmp_path / "results.partial.1.csv") as f:
        assert [(r["method"], r["seed"]) for r in csv.DictReader(f)] == [("bce", "0")]


def test_paired_difference_p_value_is_the_paired_t_test():
    from scipy import stats

    from rlmetric.bench.report import paired_difference

    rng = np.random.default_rng(3)
    for n in (2, 5, 20):
        a, b = rng.normal(0.6, 0.05, n), rng.normal(0.6, 0.05, n)
        assert paired_difference(a, b)["p"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert np.isnan(paired_difference([0.5], [0.4])["p"])
    assert np.isnan(paired_difference([0.5, 0.6], [0.4, 0.5])["p"])  # no spread: no test


def test_holm_adjusted_steps_down_and_keeps_the_order():
    from rlmetric.bench.report import holm_adjusted

    # sorted 0.005, 0.01, 0.03, 0.04 -> 4 x 0.005, 3 x 0.01, 2 x 0.03, max(0.06, 1 x 0.04)
    adjusted = holm_adjusted([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    with_nan = holm_adjusted([0.02, float("nan"), 0.5])  # a family of two
    assert with_nan[0] == pytest.approx(0.04) and np.isnan(with_nan[1])
    assert with_nan[2] == pytest.approx(0.5)
    assert holm_adjusted([0.4, 0.9]) == pytest.approx([0.8, 0.9])  # capped at 1, monotone
    assert holm_adjusted([]) == []


def test_a_users_metric_trains_exactly_as_the_builtin_and_campaign_runs(tmp_path):
    """pg-user-tf and pg-user-numpy train on the task's metric written as plain TF / NumPy:
    for an exchangeable metric the probed gains are exact, so the runs equal the built-in's."""
    rows = run_suite(
        tasks=["imbalanced-f1", "campaign"],
        methods=["bce-tuned", "pg-best-response", "pg-user-tf", "pg-user-numpy"],
        seeds=1,
        quick=True,
        epochs=2,
        out=tmp_path,
        log=lambda line: None,
    )
    test = {(r["task"], r["method"]): r["test"] for r in rows}
    builtin = test[("imbalanced-f1", "pg-best-response")]
    assert test[("imbalanced-f1", "pg-user-tf")] == pytest.approx(builtin, abs=1e-9)
    assert test[("imbalanced-f1", "pg-user-numpy")] == pytest.approx(builtin, abs=1e-9)
    assert ("campaign", "bce-tuned") in test and ("campaign", "pg-user-numpy") in test
    assert test[("campaign", "pg-user-tf")] == pytest.approx(test[("campaign", "pg-user-numpy")])


def test_campaign_profit_counts_lists_and_the_budget_rule():
    from rlmetric.bench.user_metrics import CAMPAIGN_CHUNK, campaign_profit, profit_numpy

    y = np.zeros(2 * CAMPAIGN_CHUNK, "int32")
    y[:10] = 1  # ten buyers in the first list
    contacted = np.zeros_like(y)
    contacted[:30] = 1  # 10 buyers and 20 others in list one (30%: over budget)
    first = 10 * 10 - 3 * 20 - 50
    assert campaign_profit(y, contacted) == pytest.approx(first / 2)
    assert profit_numpy(y[:CAMPAIGN_CHUNK], contacted[:CAMPAIGN_CHUNK]) == first


def test_decision_tasks_run_their_recipes_specialists_and_policy_gradients(tmp_path):
    rows = run_suite(
        tasks=["path-regret", "knapsack-overflow", "hit-rate"],
        methods=[
            "two-stage-mse",
            "two-stage-tuned",
            "spo-plus",
            "mae",
            "smooth-window",
            "pg-regret",
            "pg-decision",
        ],
        seeds=1,
        quick=True,
        epochs=2,
        out=tmp_path,
        log=lambda line: None,
    )
    ran = {(r["task"], r["method"]) for r in rows}
    assert ran == {
        ("path-regret", "two-stage-mse"),
        ("path-regret", "spo-plus"),
        ("path-regret", "pg-regret"),
        ("knapsack-overflow", "two-stage-mse"),
        ("knapsack-overflow", "two-stage-tuned"),
        ("knapsack-overflow", "pg-decision"),
        ("hit-rate", "mae"),
        ("hit-rate", "smooth-window"),
        ("hit-rate", "pg-decision"),
    }
    for row in rows:
        if row["task"] == "path-regret":
            assert row["test"] <= 0.0  # minus a normalized regret
        elif row["task"] == "hit-rate":
            assert 0.0 <= row["test"] <= 1.0


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--methods", "listnet", "--tasks", "cancer-f1"], "no method of ['listnet'] fits"),
        (["--seeds", "0", "--tasks", "cancer-f1"], "seeds must be an int >= 1; received seeds=0"),
        (["--learning-rates", "abc", "--tasks", "cancer-f1"], "--learning-rates takes"),
        (["--out", "{file}", "--tasks", "cancer-f1"], "is a file"),
        (["--out", "{file}/below", "--tasks", "cancer-f1"], "cannot be created"),
    ],
)
def test_cli_refuses_bad_arguments_by_name_before_any_run(arguments, message, tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    arguments = [a.replace("{file}", str(a_file)) for a in arguments]
    if "--out" not in arguments:
        arguments += ["--out", str(tmp_path / "out")]
    assert cli.main(["bench", "--quick", *arguments]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out" / "results.csv").exists()
