"""The liveness check in the daemon: an unlock needs `live` when an attributes engine is in use.

The attributes engine is a real engine built by the build step from a small
attribute model (its weights are untrained: these tests are about the daemon's
rule, which reads the `live` threshold from the engine's manifest).
"""
from __future__ import annotations

import pytest
from daemonkit import ENROLLED, PIN, levels, person_frames, read_events, settings, write_clip
from test_liveness import build_engine

from edge.daemon.decision import Decider, Observation
from edge.daemon.loop import Daemon
from edge.exc import NoLivenessCheck


@pytest.fixture()
def home(fetched_home):
    """A models home holding the fetched detector and embedding engines (linked), no attributes engine yet."""
    return fetched_home / "models" / "engines"


def run_clip(tmp_path, enrolled, pipeline, mock_factory, **values):
    gallery, key = enrolled
    clip = write_clip(tmp_path / "ann.avi", person_frames(ENROLLED[0], 6, number=3))
    events = tmp_path / "events.jsonl"
    daemon = Daemon(settings(gallery, key, f"file://{clip}", **{"events.file": str(events), **values}),
                    until_end=True, pin_factory=mock_factory, pipeline=pipeline)
    return daemon, daemon.run(), read_events(events)


def test_a_face_that_is_not_live_never_unlocks(tmp_path, home, enrolled, pipeline, mock_factory):
    build_engine(home, ["live"], {"live": 1.01})  # no probability reaches it: nothing is live
    daemon, code, events = run_clip(tmp_path, enrolled, pipeline, mock_factory)
    assert code == 0 and daemon.liveness is not None
    assert any(event["reason"] == "not live" for event in events)
    assert all(event["person"] == ENROLLED[0] and not event["unlock"] for event in events)
    assert all(0.0 <= event["live_score"] <= 1.0 for event in events)
    assert levels(mock_factory.pin(PIN)) == [False]


def test_a_live_face_unlocks(tmp_path, home, enrolled, pipeline, mock_factory):
    build_engine(home, ["live"], {"live": 0.0})  # every probability reaches it
    _, code, events = run_clip(tmp_path, enrolled, pipeline, mock_factory)
    assert code == 0
    assert [event["person"] for event in events if event["unlock"]] == [ENROLLED[0]]
    assert True in levels(mock_factory.pin(PIN))


def test_required_liveness_without_an_engine_refuses_to_start_locked(tmp_path, home, enrolled, pipeline, mock_factory):
    with pytest.raises(NoLivenessCheck, match="train one"):
        run_clip(tmp_path, enrolled, pipeline, mock_factory, **{"decision.liveness": "required"})
    assert levels(mock_factory.pin(PIN)) == [False]


def test_auto_without_an_engine_runs_without_the_check(tmp_path, home, enrolled, pipeline, mock_factory):
    daemon, code, events = run_clip(tmp_path, enrolled, pipeline, mock_factory)
    assert code == 0 and daemon.liveness is None
    assert any(event["unlock"] for event in events)
    assert all("live_score" not in event for event in events)


def test_not_live_does_not_start_the_cooldown():
    decider = Decider(k=2, n=3, cooldown_s=5.0)
    match = Observation("ann", "match", 0.2, 0.3, face=True)
    decider.observe(match, 0.0)
    refused = decider.observe(match, 0.1, live=False)
    assert (refused.unlock, refused.reason) == (False, "not live")
    assert not decider.in_cooldown("ann", 0.2)
    assert decider.observe(match, 0.2).unlock
