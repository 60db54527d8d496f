"""How cross-validation's scores choose the classifier's regularisation, and how one fold is
scored in its Python task (no Spark needed: `_fit_fold` is the task's function on pandas)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fruitlens.pipeline.classify import _fit_fold, choose_grid_point


def fold_rows(training: list[tuple[list[float], str]], held_out: list[tuple[list[float], str]]):
    """A fold's rows as the task receives them (features x, label, weight w, held_out)."""
    rows = [(x, label, 1.0, False) for x, label in training]
    rows += [(x, label, 1.0, True) for x, label in held_out]
    frame = pd.DataFrame(rows, columns=["x", "label", "w", "held_out"])
    frame["x"] = [np.asarray(x) for x in frame["x"]]
    return frame.assign(fold=1)


def test_a_fold_is_scored_at_every_grid_point():
    training = [
        ([0.0, 1.0], "kiwi"),
        ([0.2, 0.9], "kiwi"),
        ([3.0, -1.0], "lime"),
        ([2.8, -0.8], "lime"),
    ]
    held_out = [([0.1, 1.1], "kiwi"), ([2.9, -1.1], "lime"), ([0.0, 0.8], "lime")]  # last: wrong
    scored = _fit_fold([0.001, 0.1], 2, fold_rows(training, held_out))
    assert list(scored["fold"]) == [1, 1] and list(scored["point"]) == [0, 1]
    assert list(scored["accuracy"]) == [2 / 3, 2 / 3]


def test_a_one_class_fold_predicts_its_class_and_an_empty_hold_out_scores_nan():
    # Spark ML fits a one-class fold (a model that always predicts it); scikit-learn refuses to.
    training = [([0.0], "kiwi"), ([1.0], "kiwi")]
    one_class = _fit_fold([0.1], 1, fold_rows(training, [([0.5], "kiwi"), ([2.0], "lime")]))
    assert list(one_class["accuracy"]) == [0.5]
    empty = _fit_fold([0.1, 0.01], 1, fold_rows([([0.0], "kiwi"), ([1.0], "lime")], []))
    assert empty["accuracy"].isna().all() and len(empty) == 2


def test_grid_points_within_one_standard_error_go_to_the_strongest_regularisation():
    # The fp32/bf16 case of issue 12: 0.01 best by 0.3 points, 0.1 well within the folds' noise.
    scores = np.array([[0.70, 0.82, 0.78], [0.74, 0.76, 0.77], [0.72, 0.79, 0.78]])
    assert choose_grid_point(scores, regularised=True) == 2
    assert choose_grid_point(scores, regularised=False) == 1


def test_a_clearly_better_grid_point_is_kept():
    scores = np.array([[0.90, 0.80, 0.60], [0.91, 0.81, 0.61], [0.89, 0.79, 0.59]])
    assert choose_grid_point(scores, regularised=True) == 0


def test_the_choice_does_not_depend_on_which_near_equal_point_is_ahead():
    # Two near-identical feature sets (fp32, bf16) whose best CV mean is a different grid point,
    # by less than the folds' noise, choose alike.
    first = np.array([[0.780, 0.795, 0.785], [0.770, 0.785, 0.780], [0.790, 0.780, 0.790]])
    second = np.array([[0.780, 0.790, 0.800], [0.770, 0.785, 0.790], [0.790, 0.780, 0.785]])
    assert np.argmax(first.mean(axis=0)) == 1 and np.argmax(second.mean(axis=0)) == 2
    assert choose_grid_point(first, True) == choose_grid_point(second, True) == 2


def test_identical_folds_leave_no_noise_and_ties_go_to_the_strongest():
    scores = np.array([[0.8, 0.8, 0.7], [0.8, 0.8, 0.7]])
    assert choose_grid_point(scores, regularised=True) == 1
    assert choose_grid_point(scores, regularised=False) == 0
