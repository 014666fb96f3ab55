"""The 1:N open-set threshold rule on a synthetic impostor distribution."""
from __future__ import annotations

import math

import numpy as np
import pytest

from edge.gallery.threshold import (allowed_false_match_rate, impostor_support, openset_threshold,
                                    stranger_accept_rate)


@pytest.fixture(scope="module")
def impostors():
    """Impostor distances shaped like a face model's: mostly 0.7-1.1, a thin tail toward 0.4."""
    rng = np.random.default_rng(42)
    return np.sort(rng.normal(loc=0.9, scale=0.08, size=2_000_000))


def test_allowed_rate_is_about_target_over_n():
    assert allowed_false_match_rate(1, 1e-3) == pytest.approx(1e-3)
    assert allowed_false_match_rate(1000, 1e-3) == pytest.approx(1e-6, rel=1e-3)
    n = 790
    assert 1 - (1 - allowed_false_match_rate(n, 1e-3)) ** n == pytest.approx(1e-3, rel=1e-9)


def test_threshold_shrinks_as_the_gallery_grows(impostors):
    sizes = [1, 5, 10, 50, 100, 500, 1000, 5000]
    thresholds = [openset_threshold(impostors, n) for n in sizes]
    assert all(later <= earlier for earlier, later in zip(thresholds, thresholds[1:]))
    assert thresholds[-1] < thresholds[0]


@pytest.mark.parametrize("n_templates", [1, 10, 100, 790])
def test_target_is_met_on_the_sample_and_not_wasted(impostors, n_templates):
    target = 1e-3
    t = openset_threshold(impostors, n_templates, target)
    assert stranger_accept_rate(impostors, n_templates, t) <= target
    # the largest such t: one more impostor inside would break the target
    next_impostor = impostors[np.searchsorted(impostors, t, side="right")]
    assert stranger_accept_rate(impostors, n_templates, next_impostor) > target * 0.99


def test_strangers_let_in_on_fresh_samples_stay_near_the_target(impostors):
    """Simulate strangers at a door with 50 templates: each is let in when any template is within t."""
    n_templates, target = 50, 1e-2
    t = openset_threshold(impostors, n_templates, target)
    rng = np.random.default_rng(7)
    trials = 40_000
    nearest = rng.normal(loc=0.9, scale=0.08, size=(trials, n_templates)).min(axis=1)
    rate = float(np.mean(nearest <= t))
    sigma = math.sqrt(target * (1 - target) / trials)
    assert rate <= target + 4 * sigma
    assert rate >= target - 6 * sigma  # not needlessly strict either


def test_a_one_to_one_threshold_lets_strangers_in_once_the_gallery_is_large(impostors):
    one_to_one = float(np.quantile(impostors, 0.01))  # 1 % false matches per comparison
    assert stranger_accept_rate(impostors, 800, one_to_one) > 0.99
    assert openset_threshold(impostors, 800) < one_to_one


def test_never_looser_than_the_verification_threshold(impostors):
    assert openset_threshold(impostors, 1, target_rate=0.5, verification_threshold=0.6) == 0.6
    assert openset_threshold(impostors, 1000, verification_threshold=0.6) < 0.6


def test_below_the_whole_sample_when_the_rate_is_too_small_to_resolve():
    sample = np.linspace(0.5, 1.5, 1000)
    t = openset_threshold(sample, 10_000, 1e-3)
    assert t < 0.5 and t == pytest.approx(0.5)
    assert impostor_support(10_000, 1e-3) > 1000


def test_unsorted_input_gives_the_same_answer(impostors):
    shuffled = np.random.default_rng(0).permutation(impostors[::50])
    assert openset_threshold(shuffled, 20) == openset_threshold(impostors[::50], 20)


@pytest.mark.parametrize("arguments", [([], 10, 1e-3), ([0.5, np.nan], 10, 1e-3), ([0.5], 10, 0.0), ([0.5], 10, 1.5)])
def test_bad_arguments(arguments):
    with pytest.raises(ValueError):
        openset_threshold(*arguments)
