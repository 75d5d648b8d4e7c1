"""The benchmark suite and the ``rlmetric bench`` CLI, on tiny runs."""

import csv

import numpy as np
import pytest
import tensorflow as tf

from rlmetric import cli
from rlmetric.bench import METHODS, TASKS, make_shapes, run_suite
from rlmetric.bench.methods import exact_level_reward


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
        assert x_train.dtype == np.float32 and y_train.dtype == np.int32
        assert x_train.shape[1:] == x_test.shape[1:]
        assert task.score(y_test, y_test) == pytest.approx(1.0)


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
    assert tuned["best_validation"] == bce["best_validation"]  # one training, reused
    with open(tmp_path / "results.csv") as f:
        written = list(csv.DictReader(f))
    assert len(written) == len(rows) and float(written[0]["test"]) == pytest.approx(rows[0]["test"])
    assert (tmp_path / "learning_curves.png").stat().st_size > 10_000
    assert (tmp_path / "test_metric.png").stat().st_size > 10_000
    out = capsys.readouterr().out
    assert "| cancer-f1 | F1 | pg-local |" in out and "[  6/6]" in out


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
