"""How cross-validation's scores choose the classifier's regularisation (no Spark needed)."""

from __future__ import annotations

import numpy as np

from fruitlens.pipeline.classify import choose_grid_point


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
