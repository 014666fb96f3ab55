"""The decision rules on their own: K of N, cooldown, unknowns, broken embeddings, the 1:N threshold."""
from __future__ import annotations

import math

import numpy as np
import pytest

from edge.daemon.decision import Decider, Observation, match_probe
from edge.gallery.threshold import ThresholdFallbackWarning, gallery_threshold, impostor_tail
from edge.exc import EngineError
from edge.gallery.threshold import openset_threshold, openset_threshold_from_tail


def seen(person):
    return Observation(person, "match" if person else "unknown", 0.3 if person else 0.8, 0.2, face=True)


def run(decider, people, start=0.0, step=0.1):
    return [decider.observe(seen(person), start + index * step) for index, person in enumerate(people)]


def test_unlock_needs_k_of_the_last_n_frames_on_the_same_person():
    verdicts = run(Decider(k=3, n=5), ["ann", None, "ann", "bob", "ann"])
    assert [v.unlock for v in verdicts] == [False, False, False, False, True]
    assert verdicts[-1].frames_agreed == 3 and verdicts[-1].reason == "unlock"
    assert [v.frames_agreed for v in verdicts] == [1, 0, 2, 1, 3]


def test_agreement_spread_wider_than_n_frames_does_not_count():
    verdicts = run(Decider(k=3, n=5), ["ann", None, None, "ann", None, None, "ann", None, "ann"])
    assert not any(v.unlock for v in verdicts)  # never 3 within any 5 consecutive frames


def test_two_people_alternating_never_unlock_with_k_above_half_n():
    verdicts = run(Decider(k=3, n=4), ["ann", "bob"] * 6)
    assert not any(v.unlock for v in verdicts)


def test_cooldown_is_per_person_and_ends():
    decider = Decider(k=2, n=3, cooldown_s=5.0)
    first = run(decider, ["ann", "ann", "ann"], start=0.0, step=1.0)
    assert [v.reason for v in first] == ["agreeing", "unlock", "cooldown"]
    bob = run(decider, ["bob", "bob"], start=3.0, step=0.5)
    assert bob[-1].unlock  # ann's cooldown does not hold bob back
    later = run(decider, ["ann", "ann"], start=6.5, step=0.1)
    assert later[-1].unlock and later[-1].person == "ann"  # 6.6 s after ann's unlock at 1.0


def test_unknown_faces_never_unlock_however_many():
    verdicts = run(Decider(k=1, n=1, cooldown_s=0.0), [None] * 50)
    assert not any(v.unlock for v in verdicts) and all(v.person is None for v in verdicts)


def test_a_failed_read_breaks_a_run_of_agreement():
    decider = Decider(k=3, n=3)
    run(decider, ["ann", "ann"])
    decider.interrupt()
    assert not decider.observe(seen("ann"), 1.0).unlock


def test_forget_drops_the_window_after_a_gallery_change():
    decider = Decider(k=3, n=5)
    run(decider, ["ann", "ann"])
    decider.forget()
    assert not decider.observe(seen("ann"), 1.0).unlock


@pytest.mark.parametrize("k,n", [(0, 5), (6, 5), (2.0, 5)])
def test_impossible_k_n_is_refused(k, n):
    with pytest.raises(ValueError):
        Decider(k=k, n=n)


# -- matching ---------------------------------------------------------------------------------

@pytest.fixture
def gallery_rows():
    rng = np.random.default_rng(3)
    matrix = (rng.normal(size=(4, 128)) / np.sqrt(128)).astype(np.float32)
    return matrix, np.array([0, 0, 1, 1]), ["ann", "bob"]


def test_a_match_needs_the_distance_within_the_threshold(gallery_rows):
    matrix, index, names = gallery_rows
    near = matrix[2] + 0.01
    assert match_probe(matrix, index, names, near, threshold=0.6).person == "bob"
    far = match_probe(matrix, index, names, near + 1.0, threshold=0.6)
    assert far.person is None and far.reason == "unknown" and far.distance > 0.6 and far.face


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_embeddings_never_match(gallery_rows, value):
    matrix, index, names = gallery_rows
    probe = matrix[0].copy()
    probe[5] = value
    observation = match_probe(matrix, index, names, probe, threshold=10.0)
    assert observation.person is None and observation.reason == "bad embedding"


def test_huge_garbage_embeddings_do_not_match(gallery_rows):
    matrix, index, names = gallery_rows
    observation = match_probe(matrix, index, names, np.full(128, 1e30, np.float32), threshold=10.0)
    assert observation.person is None


def test_an_empty_gallery_matches_nobody():
    observation = match_probe(np.zeros((0, 128), np.float32), np.zeros(0, np.intp), [], np.zeros(128), 0.6)
    assert observation.person is None


# -- the 1:N threshold ------------------------------------------------------------------------

def impostors(count=200_000, seed=0):
    return np.sort(np.random.default_rng(seed).normal(0.95, 0.12, size=count))


def manifest_with(tail=None, threshold=0.6, at_top=True):
    manifest = {"name": "embedding", "threshold": threshold, "preprocess": {}}
    if tail is not None:
        (manifest if at_top else manifest["preprocess"])["impostor_tail"] = tail
    return manifest


@pytest.mark.parametrize("n_templates", [1, 10, 150, 2000])
def test_the_tail_gives_the_same_threshold_as_the_whole_sample(n_templates):
    sample = impostors()
    tail = sample[:500]
    expected = openset_threshold(sample, n_templates, 1e-3, verification_threshold=0.6)
    assert openset_threshold_from_tail(tail, len(sample), n_templates, 1e-3, 0.6) == expected
    manifest = manifest_with({"count": len(sample), "distances": tail.tolist()})
    assert gallery_threshold(manifest, n_templates) == expected


def test_the_threshold_tightens_as_the_gallery_grows():
    sample = impostors()
    manifest = manifest_with({"count": len(sample), "distances": sample[:500].tolist()})
    values = [gallery_threshold(manifest, n) for n in (1, 10, 100, 1000)]
    assert values == sorted(values, reverse=True) and values[0] > values[-1]
    assert all(value <= 0.6 for value in values)


def test_a_tail_too_short_for_the_rule_stops_below_its_last_distance():
    sample = impostors()
    tail = sample[:20]
    # With n=1 the rule allows 200 impostors below t, far past the 20 shipped: the
    # result must not rely on distances nobody shipped.
    value = openset_threshold_from_tail(tail, len(sample), 1, 1e-3)
    assert value < tail[-1] and np.searchsorted(tail, value, side="right") == 19


def test_without_a_tail_the_one_to_one_threshold_is_used():
    with pytest.warns(ThresholdFallbackWarning):
        assert gallery_threshold(manifest_with(None, threshold=0.55), 500) == 0.55


def test_a_tail_inside_preprocess_is_read_too():
    sample = impostors()
    manifest = manifest_with({"count": len(sample), "distances": sample[:500].tolist()}, at_top=False)
    assert impostor_tail(manifest) is not None and gallery_threshold(manifest, 100) < 0.6


@pytest.mark.parametrize("tail", [
    {"count": 10, "distances": [0.5] * 20},
    {"count": 100, "distances": [0.6, 0.5]},
    {"count": 100, "distances": [0.5, math.nan]},
    {"count": 100},
    {"count": "many", "distances": [0.5]},
])
def test_a_malformed_tail_refuses_the_engine(tail):
    with pytest.raises(EngineError, match="impostor_tail is malformed"):
        gallery_threshold(manifest_with(tail), 10)


def test_a_veto_check_runs_only_for_a_frame_that_would_unlock_and_its_reason_refuses():
    """The daemon's whole-frame search of a followed face (edge.daemon.loop) is too costly for every frame:
    the decider calls it only when everything else would open the door."""
    calls = []

    def check(answer):
        def run():
            calls.append(answer)
            return answer
        return run

    decider = Decider(k=1, n=1, cooldown_s=5.0, min_frames=2)
    assert decider.observe(seen(None), 0.0, veto=check("no")).reason == "unknown"
    assert decider.observe(seen("ann"), 0.1, veto=check("no"), track=1, frames=1).reason == "combining"
    assert decider.observe(seen("ann"), 0.2, live=False, veto=check("no"), track=1, frames=2).reason == "not live"
    assert calls == []
    refused = decider.observe(seen("ann"), 0.3, veto=check("main face changed"), track=1, frames=3)
    assert not refused.unlock and refused.reason == "main face changed"
    assert not decider.in_cooldown("ann", 0.4)  # a refusal does not start the cooldown
    assert decider.observe(seen("ann"), 0.4, veto=check(None), track=1, frames=4).unlock
    assert decider.observe(seen("ann"), 0.5, veto=check(None), track=1, frames=5).reason == "cooldown"
    assert calls == ["main face changed", None]
