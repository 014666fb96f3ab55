"""gallery_threshold: the 1:N rule applied to the impostor tail an embedding manifest ships."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from edge.exc import ManifestMismatch
from edge.gallery.threshold import (ThresholdFallbackWarning, allowed_false_match_rate, choose_threshold,
                                    gallery_threshold, openset_threshold)

COUNT = 200_000


@pytest.fixture(scope="module")
def sample():
    """A full impostor sample shaped like a face model's, and the manifest carrying its 2,000 smallest."""
    distances = np.sort(np.random.default_rng(3).normal(0.9, 0.09, COUNT))
    manifest = {"threshold": 0.6, "impostor_tail": {"count": COUNT, "distances": distances[:2000].tolist()}}
    return distances, manifest


@pytest.mark.parametrize("n_templates", [1, 5, 50, 158, 790])
def test_tail_gives_the_same_threshold_as_the_full_sample(sample, n_templates):
    distances, manifest = sample
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a manifest with a tail must not warn
        shipped = gallery_threshold(manifest, n_templates)
    assert shipped == openset_threshold(distances, n_templates, verification_threshold=0.6)
    false_matches = np.count_nonzero(distances <= shipped) / COUNT
    assert false_matches <= allowed_false_match_rate(n_templates, 1e-3)


def test_threshold_tightens_as_the_gallery_grows(sample):
    _, manifest = sample
    thresholds = [gallery_threshold(manifest, n) for n in (1, 10, 100, 1000)]
    assert thresholds == sorted(thresholds, reverse=True) and thresholds[-1] < thresholds[0]


def test_never_looser_than_one_to_one():
    tail = {"count": 1000, "distances": [0.7, 0.8, 0.9]}
    assert gallery_threshold({"threshold": 0.6, "impostor_tail": tail}, 1, target_rate=0.5) == 0.6


def test_never_past_the_end_of_the_tail():
    """Above the last shipped distance F(t) is unknown, so t stops there even when more is allowed."""
    tail = {"count": 1000, "distances": [0.3, 0.35, 0.4]}
    threshold = gallery_threshold({"threshold": 0.6, "impostor_tail": tail}, 1, target_rate=0.5)
    assert threshold < 0.4 and threshold == pytest.approx(0.4)


def test_without_a_tail_falls_back_to_one_to_one_with_a_warning():
    with pytest.warns(ThresholdFallbackWarning, match="no impostor_tail.*1:1 threshold 0.6"):
        assert gallery_threshold({"threshold": 0.6, "impostor_tail": None}, 790) == 0.6
    choice = choose_threshold({"threshold": 0.6}, 790)
    assert choice.rule == "1:1 fallback" and choice.note and choice.expected_stranger_rate is None


def test_tail_in_the_preprocess_block_is_read(sample):
    _, manifest = sample
    older = {"threshold": 0.6, "preprocess": {"impostor_tail": manifest["impostor_tail"]}}
    assert gallery_threshold(older, 100) == gallery_threshold(manifest, 100)


def test_choice_reports_the_expected_stranger_rate(sample):
    _, manifest = sample
    choice = choose_threshold(manifest, 158)
    assert choice.rule == "impostor tail" and choice.impostor_pairs == COUNT and choice.n_templates == 158
    assert 0 <= choice.expected_stranger_rate <= 1e-3
    assert choice.note is None


def test_too_small_a_sample_is_noted():
    tail = {"count": 1000, "distances": [0.5, 0.6]}
    choice = choose_threshold({"threshold": 0.6, "impostor_tail": tail}, 790)
    assert choice.threshold < 0.5 and "cannot show a rate of 0.001 for 790 templates" in choice.note


@pytest.mark.parametrize("tail", [
    {"count": 10, "distances": [0.5, 0.4]},
    {"count": 1, "distances": [0.4, 0.5]},
    {"count": 10, "distances": [0.4, float("nan")]},
    {"count": 10, "distances": []},
    {"distances": [0.4]},
    {"count": "many", "distances": [0.4]},
])
def test_malformed_tail_is_an_error_not_a_fallback(tail):
    with pytest.raises(ManifestMismatch, match="impostor_tail"):
        gallery_threshold({"threshold": 0.6, "impostor_tail": tail}, 10)
