"""How the benchmarks judge a measured value against a reproduction target's limit."""

from __future__ import annotations

import numpy as np

from benchmarks.common import against


def test_a_mean_of_whole_test_images_on_the_limit_is_met_and_shown_to_3_decimals():
    # 16 deployments losing 48 of 600 test images between them: exactly 0.5 point, which the
    # floating-point mean of their accuracy differences lands a hair above
    before = np.array([489, 489, 483, 487, 489, 520, 487, 505, 518, 486, 498, 485, 516, 517, 486, 493])
    lost = np.array([3, 6, -1, 10, 8, 2, 4, -1, 6, 2, -1, -1, -4, 0, 10, 5])
    assert lost.sum() == 48
    drop = (100 * before / 600 - 100 * (before - lost) / 600).mean()
    assert drop > 0.5
    assert against(drop, 0.5, at_most=True, sign="+") == ("+0.500", "met")
    assert against(0.5031, 0.5, at_most=True, sign="+") == ("+0.503", "not met")
    assert against(0.47, 0.5, at_most=True, sign="+") == ("+0.47", "met")


def test_at_least_targets_and_two_decimals_away_from_the_limit():
    assert against(1.996, 2.0, at_most=False) == ("1.996", "not met")
    assert against(2.53, 2.0, at_most=False) == ("2.53", "met")
    assert against(1.27, 1.0, at_most=True) == ("1.27", "not met")
