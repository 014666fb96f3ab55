"""The daemon end to end: real clips through file:// and dir://, real models, a real
encrypted gallery, the relay on gpiozero MockFactory pins. The recorded pin states
are the evidence of what the door did."""
from __future__ import annotations

from datetime import datetime

import os
import signal

import cv2
import numpy as np
import pytest
from daemonkit import (
    ENROLLED,
    PIN,
    STRANGERS,
    RecordingPin,
    blanks,
    levels,
    make_gallery,
    openings,
    person_frames,
    read_events,
    settings,
    side_by_side,
    write_clip,
)
from gpiozero import Device

from edge.cli import main
from edge.daemon.loop import Daemon
from edge.exc import GalleryCorrupt, GalleryError, GalleryKeyMismatch


@pytest.fixture
def env_mock_factory(monkeypatch):
    """GPIOZERO_PIN_FACTORY=mock exactly as the acceptance scripts run it; gpiozero builds the factory."""
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    monkeypatch.setattr(Device, "pin_factory", None)
    yield
    if Device.pin_factory is not None:
        Device.pin_factory.close()


def visitors_clip(path, order, face_frames=4, gap=4):
    """Each visitor for ``face_frames`` frames (photo 3), empty frames between; returns {frame: name}."""
    frames, shown = blanks(2), {}
    for name in order:
        for frame in person_frames(name, face_frames):
            shown[len(frames)] = name
            frames.append(frame)
        frames.extend(blanks(gap))
    frames.extend(blanks(14))  # longer than the 1 s pulse at 10 fps: the last pulse ends on its own
    write_clip(path, frames)
    return shown


def expected_openings(unlock_times: list, pulse_s: float) -> int:
    """Separate openings for unlocks at these event times: an unlock within a pulse of the one before extends it."""
    moments = [datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() for text in unlock_times]
    return 1 + sum(1 for before, after in zip(moments, moments[1:]) if after - before > pulse_s) if moments else 0


def test_enrolled_people_unlock_and_strangers_never_do(tmp_path, enrolled, env_mock_factory, capsys):
    gallery, key = enrolled
    order = [ENROLLED[0], STRANGERS[0], ENROLLED[1], STRANGERS[1], ENROLLED[2]]
    shown = visitors_clip(tmp_path / "visitors.avi", order)
    events_path = tmp_path / "events.jsonl"
    # Played at 10 fps so that each 1 s pulse ends before the next visitor: one opening each.
    code = main(["run", "--no-config", "--source", f"file://{tmp_path / 'visitors.avi'}", "--until-end",
                 "--rate", "10", "--pulse", "1", "--pin", PIN, "--gallery", str(gallery), "--key", str(key),
                 "--events", str(events_path), "--no-events-stdout"])
    assert code == 0
    pin_states = levels(Device.pin_factory.pin(PIN))
    events = read_events(events_path)
    unlocks = [(event["person"], event["frame"]) for event in events if event["unlock"]]
    assert [person for person, _ in unlocks] == list(ENROLLED)
    assert all(shown[frame] == person for person, frame in unlocks)  # each unlock shows that person
    # One opening per unlock, unless a loaded machine played two unlocks within one pulse: the
    # second then keeps the door open rather than opening it again (what the lock must do).
    assert openings(pin_states) == expected_openings([event["time"] for event in events if event["unlock"]], 1.0)
    assert pin_states[-1] is False
    strangers = [event for event in events if shown.get(event["frame"]) in STRANGERS]
    assert len(strangers) >= 6 and all(e["person"] is None and not e["unlock"] for e in strangers)
    for event in events:
        assert {"time", "person", "distance", "margin", "frames_agreed", "unlock", "latency_ms", "track",
                "frames_combined"} <= set(event)
        assert event["latency_ms"] > 0
    assert all(event["frames_combined"] >= 3 for event in events if event["unlock"])
    # each visitor is one face followed across their frames: one track each, never shared
    tracks = {}
    for event in events:
        tracks.setdefault(event["track"], set()).add(shown.get(event["frame"]))
    assert all(len(people) == 1 for people in tracks.values()) and len(tracks) >= len(order)


@pytest.mark.parametrize("search_every", [1, 15])
def test_each_visitor_is_searched_for_then_followed_and_unlocks_the_same(tmp_path, enrolled, mock_factory,
                                                                         search_every):
    gallery, key = enrolled
    shown = visitors_clip(tmp_path / "visitors.avi", [ENROLLED[0], STRANGERS[0], ENROLLED[1]], face_frames=6)
    events_path = tmp_path / "events.jsonl"
    daemon = Daemon(settings(gallery, key, f"file://{tmp_path / 'visitors.avi'}",
                             **{"events.file": str(events_path), "engine.search_every": search_every}),
                    until_end=True, pin_factory=mock_factory)
    assert daemon.run() == 0
    events = read_events(events_path)
    assert [event["frame"] for event in events] == sorted(shown)  # every visitor's frame judged, nothing else
    firsts = {frame for frame in shown if frame - 1 not in shown}
    followed = {event["frame"] for event in events if event["followed"]}
    if search_every == 1:
        assert followed == set()
    else:  # a newcomer is searched for; then followed while in view
        assert followed == set(shown) - firsts
    assert [event["person"] for event in events if event["unlock"]] == [ENROLLED[0], ENROLLED[1]]


@pytest.mark.parametrize("search_every", [1, 15])
def test_a_followed_face_beside_a_stranger_nearer_the_centre_does_not_open_the_door(tmp_path, enrolled,
                                                                                   mock_factory, search_every):
    """Found at the door benchmark: following kept an enrolled face at the side while a stranger stood at the
    centre, and the door opened for it. The daemon now searches a followed frame before it opens the door
    (edge.pipeline.Follower.confirm), and refuses when the search's main face is someone else's: the same
    people are let in as when every frame is searched. Alone, the same face opens the door."""
    gallery, key = enrolled
    alone, beside = side_by_side([ENROLLED[0]]), side_by_side([ENROLLED[0], STRANGERS[0]])
    clip = write_clip(tmp_path / "beside.avi", [alone] + [beside] * 8 + blanks(6) + [alone] * 4)
    events_path = tmp_path / "events.jsonl"
    daemon = Daemon(settings(gallery, key, f"file://{clip}", **{"events.file": str(events_path),
                                                               "engine.search_every": search_every,
                                                               "decision.min_face_px": 40}),
                    until_end=True, pin_factory=mock_factory)
    assert daemon.run() == 0
    events = read_events(events_path)
    assert [event["frame"] for event in events if event["unlock"]] == [17]  # alone, after the blanks (a new track)
    assert openings(levels(mock_factory.pin(PIN))) == 1
    refused = [event for event in events if event["reason"] == "main face changed"]
    if search_every == 1:  # every frame searched: the stranger in the middle is judged from the 2nd frame
        assert not refused and not any(event["followed"] for event in events)
    else:
        assert [(event["frame"], event["person"], event["followed"]) for event in refused] == [(2, ENROLLED[0], True)]
        assert all(event["person"] is None for event in events if 2 < event["frame"] <= 8)  # the stranger, followed
    # the enrolled face at the side was seen while the stranger stood in the middle
    assert any(event["person"] == ENROLLED[0] for event in events if 1 <= event["frame"] <= 8) == (search_every > 1)


def test_a_clip_of_strangers_never_moves_the_relay(tmp_path, enrolled, mock_factory):
    gallery, key = enrolled
    clip = tmp_path / "strangers.avi"
    frames = []
    for name in STRANGERS:
        frames += person_frames(name, 4, number=3) + person_frames(name, 4, number=4)
    write_clip(clip, frames)
    events_path = tmp_path / "events.jsonl"
    daemon = Daemon(settings(gallery, key, f"file://{clip}", **{"events.file": str(events_path),
                                                               "decision.k": 2, "decision.n": 3}),
                    until_end=True, pin_factory=mock_factory)
    assert daemon.run() == 0
    events = read_events(events_path)
    assert len(events) >= 30 and all(event["person"] is None for event in events)
    assert levels(mock_factory.pin(PIN)) == [False]  # never energised, not for a moment
    assert daemon.stats.unknown == len(events) and daemon.stats.unlocks == 0


def test_blank_saturated_noise_and_garbage_frames_never_unlock(tmp_path, enrolled, mock_factory, caplog):
    gallery, key = enrolled
    rng = np.random.default_rng(0)
    stills = tmp_path / "stills"
    stills.mkdir()
    images = {"a_black.png": np.zeros((240, 320, 3), np.uint8), "b_white.png": np.full((240, 320, 3), 255, np.uint8),
              "c_noise.png": rng.integers(0, 256, (240, 320, 3), dtype=np.uint8),
              "d_tiny.png": np.zeros((6, 6, 3), np.uint8), "e_grey.png": rng.integers(0, 256, (240, 320), np.uint8)}
    for name, image in images.items():
        cv2.imwrite(str(stills / name), image)
    (stills / "f_garbage.jpg").write_bytes(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())
    good = cv2.imencode(".jpg", person_frames(ENROLLED[0], 1)[0])[1].tobytes()
    (stills / "g_cut.jpg").write_bytes(good[: len(good) // 3])  # a truncated photo of an enrolled person
    events_path = tmp_path / "events.jsonl"
    daemon = Daemon(settings(gallery, key, f"dir://{stills}", **{"events.file": str(events_path),
                                                                "decision.k": 1, "decision.n": 1}),
                    until_end=True, pin_factory=mock_factory)
    assert daemon.run() == 0  # bad frames are reported, not fatal
    assert levels(mock_factory.pin(PIN)) == [False]
    assert not any(event["unlock"] for event in read_events(events_path))
    assert daemon.stats.unlocks == 0 and daemon.stats.read_problems >= 1
    assert "f_garbage.jpg" in caplog.text


@pytest.mark.parametrize("broken", [np.nan, np.inf, 1e30])
def test_broken_embeddings_never_unlock_even_for_an_enrolled_face(tmp_path, enrolled, pipeline,
                                                                  mock_factory, broken):
    gallery, key = enrolled
    clip = write_clip(tmp_path / "ann.avi", person_frames(ENROLLED[0], 8))

    class BrokenEngine:
        """The real pipeline, except that the embedding engine's output is corrupted."""

        def __init__(self, real):
            self.real = real
            self.manifest = real.manifest

        def __getattr__(self, name):
            return getattr(self.real, name)

        def embed(self, chips, share=False):
            vectors = self.real.embed(chips, share).copy()
            vectors[:, ::7] = broken
            return vectors

    events_path = tmp_path / "events.jsonl"
    daemon = Daemon(settings(gallery, key, f"file://{clip}", **{"events.file": str(events_path)}),
                    until_end=True, pin_factory=mock_factory, pipeline=BrokenEngine(pipeline))
    assert daemon.run() == 0
    events = read_events(events_path)
    assert len(events) == 8 and not any(event["unlock"] or event["person"] for event in events)
    assert levels(mock_factory.pin(PIN)) == [False]


def test_a_truncated_clip_reconnects_then_fails_clearly_and_never_unlocks(tmp_path, enrolled, env_mock_factory,
                                                                          capsys, caplog):
    gallery, key = enrolled
    head = write_clip(tmp_path / "head.avi", blanks(20))
    clip = write_clip(tmp_path / "clip.avi", blanks(20) + person_frames(ENROLLED[0], 10))
    cut = tmp_path / "cut.avi"
    cut.write_bytes(clip.read_bytes()[: int(head.stat().st_size * 0.8)])  # the cut falls among the blank frames
    events_path = tmp_path / "events.jsonl"
    code = main(["run", "--no-config", "--source", f"file://{cut}", "--until-end", "--pin", PIN,
                 "--gallery", str(gallery), "--key", str(key), "--events", str(events_path)])
    error = capsys.readouterr().err
    assert code == 1
    assert "error:" in error and "truncated or corrupt" in error and "gave up after 3 reconnect attempts" in error
    assert "door locked" in error
    assert "reconnect attempt 1 of 3" in caplog.text and "reconnect attempt 3 of 3" in caplog.text
    assert levels(Device.pin_factory.pin(PIN)) == [False]
    assert not any(event["unlock"] for event in read_events(events_path))


def record_pins(monkeypatch, tmp_path):
    from gpiozero.pins.mock import MockFactory

    log = tmp_path / "pins.jsonl"
    monkeypatch.setenv("EDGE_TEST_PIN_LOG", str(log))
    return MockFactory(pin_class=RecordingPin), log


@pytest.mark.parametrize("active_high", [True, False])
def test_a_wrong_key_refuses_to_start_with_the_door_locked(tmp_path, enrolled, monkeypatch, active_high):
    from daemonkit import read_pin_log

    from edge.gallery.crypto import create_key

    gallery, _ = enrolled
    other_key = tmp_path / "other.key"
    create_key(other_key)
    factory, log = record_pins(monkeypatch, tmp_path)
    clip = write_clip(tmp_path / "ann.avi", person_frames(ENROLLED[0], 6))
    daemon = Daemon(settings(gallery, other_key, f"file://{clip}", **{"door.active_high": active_high}),
                    until_end=True, pin_factory=factory)
    with pytest.raises(GalleryKeyMismatch, match="key does not match"):
        daemon.run()
    records = read_pin_log(log)
    locked_level = not active_high  # the level that leaves the relay de-energised
    # The relay was set up as an output at the locked level before the gallery was opened,
    # never left it, and was released (back to an input) on the way out.
    assert [r["function"] for r in records if r["what"] == "function"] == ["output", "input"]
    # MockPin turns into an output before taking the initial level (the Jetson factory's
    # output_with_state does both at once), so only level *changes* are the door's doing.
    changes = [r["state"] for r in records if r["what"] == "state"]
    assert changes == ([] if locked_level is False else [True])
    assert records[-1]["state"] == locked_level
    assert daemon.door is not None and daemon.door.closed and daemon.events is None


def test_a_corrupt_gallery_refuses_to_start_with_a_clear_error(tmp_path, enrolled, mock_factory, capsys,
                                                             monkeypatch):
    gallery, key = enrolled
    data = bytearray(gallery.read_bytes())
    data[100:4000] = os.urandom(3900)  # the header and the first pages
    gallery.write_bytes(bytes(data))
    monkeypatch.setattr(Device, "pin_factory", mock_factory)
    code = main(["run", "--no-config", "--source", "file:///nonexistent.avi", "--pin", PIN, "--gallery",
                 str(gallery), "--key", str(key)])
    assert code == 1
    assert "error:" in capsys.readouterr().err
    assert levels(mock_factory.pin(PIN)) == [False]
    with pytest.raises(GalleryCorrupt):
        Daemon(settings(gallery, key, "file:///nonexistent.avi"), pin_factory=mock_factory).run()


def test_templates_of_another_model_refuse_to_start(tmp_path, pipeline, mock_factory):
    gallery, key = make_gallery(tmp_path, pipeline, people=ENROLLED[:1], model="someone_elses_model")
    with pytest.raises(GalleryError, match="someone_elses_model"):
        Daemon(settings(gallery, key, "file:///nonexistent.avi"), pin_factory=mock_factory).run()
    assert levels(mock_factory.pin(PIN)) == [False]


def test_gallery_changes_apply_without_a_restart(tmp_path, pipeline, mock_factory):
    """A person is enrolled while the daemon watches them (unknown, then let in), then removed."""
    from edge.verify.api import embedding_space
    from edge.gallery import open_gallery
    from edge.vision.image import load_image
    from daemonkit import photo

    gallery, key = make_gallery(tmp_path, pipeline, people=ENROLLED[:1])
    newcomer = STRANGERS[2]
    clip = write_clip(tmp_path / "newcomer.avi", person_frames(newcomer, 30))
    vectors = np.stack([pipeline.embed_primary(load_image(photo(newcomer, n))) for n in (1, 2)])
    admin = open_gallery(gallery, key)
    seen = []

    def on_event(event, door):
        seen.append(event)
        if len(seen) == 3:  # three frames judged unknown: now the installer enrolls them
            admin.add_person_templates(newcomer, vectors, model=embedding_space(pipeline.manifest),
                                       actor="test")
        if event["unlock"]:
            admin.remove_person(newcomer, actor="test")

    events_path = tmp_path / "events.jsonl"
    daemon = Daemon(settings(gallery, key, f"file://{clip}", **{"events.file": str(events_path),
                                                               "gallery.reload_s": 0.01}),
                    until_end=True, pin_factory=mock_factory, pipeline=pipeline, on_event=on_event)
    try:
        assert daemon.run() == 0
    finally:
        admin.close()
    people = [event["person"] for event in seen]
    assert people[:3] == [None] * 3
    assert [event["person"] for event in seen if event["unlock"]] == [newcomer]
    after = people[[event["unlock"] for event in seen].index(True) + 1:]
    assert after[-5:] == [None] * 5  # removed: unknown again
    assert openings(levels(mock_factory.pin(PIN))) == 1


def test_sigterm_during_a_pulse_locks_at_once_and_exits_cleanly(tmp_path, enrolled, mock_factory):
    gallery, key = enrolled
    clip = write_clip(tmp_path / "ann.avi", person_frames(ENROLLED[0], 12))
    previous = signal.getsignal(signal.SIGTERM)

    def on_event(event, door):
        if event["unlock"]:
            assert not door.is_locked
            os.kill(os.getpid(), signal.SIGTERM)  # systemctl stop, mid-pulse

    daemon = Daemon(settings(gallery, key, f"file://{clip}", **{"door.pulse_s": 10.0}), until_end=True,
                    pin_factory=mock_factory, on_event=on_event)
    with pytest.raises(SystemExit) as stopped:
        daemon.run()
    assert stopped.value.code == 0
    states = mock_factory.pin(PIN).states
    assert [bool(s.state) for s in states] == [False, True, False]
    assert states[-1].timestamp < 2.0  # relocked long before the 10 s pulse would have ended
    assert signal.getsignal(signal.SIGTERM) is previous  # the daemon put the old handler back


def test_ready_watchdog_and_status_reach_systemd(tmp_path, enrolled, mock_factory, monkeypatch):
    import socket
    import threading

    gallery, key = enrolled
    clip = write_clip(tmp_path / "ann.avi", blanks(3) + person_frames(ENROLLED[0], 4))
    address = tmp_path / "notify.sock"
    messages = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(address))
        listener.settimeout(0.2)
        done = threading.Event()

        def receive():  # like systemd, read at once: a full datagram queue would block the sender
            while not done.is_set():
                try:
                    messages.append(listener.recv(4096).decode())
                except socket.timeout:
                    continue

        reader = threading.Thread(target=receive, daemon=True)
        reader.start()
        monkeypatch.setenv("NOTIFY_SOCKET", str(address))
        try:
            assert Daemon(settings(gallery, key, f"file://{clip}"), until_end=True,
                          pin_factory=mock_factory).run() == 0
        finally:
            monkeypatch.delenv("NOTIFY_SOCKET")
            done.set()
            reader.join(5)
    ready = next(index for index, message in enumerate(messages) if "READY=1" in message)
    assert any(message.startswith("STATUS=loading models") for message in messages[:ready])
    assert sum(message == "WATCHDOG=1" for message in messages[ready:]) >= 7  # one per loop iteration
    assert "STOPPING=1" in messages[-1]


def test_status_and_stop_log_give_the_recent_frame_latency(tmp_path, enrolled, mock_factory, monkeypatch, caplog):
    """What `systemctl status` shows a technician: p50 / p95 of the latest frames' decoded-to-decision time, the
    same numbers the events carry."""
    import logging
    import re

    from edge.daemon import loop, notify

    gallery, key = enrolled
    clip = write_clip(tmp_path / "ann.avi", blanks(2) + person_frames(ENROLLED[0], 6))
    statuses = []
    monkeypatch.setattr(loop, "STATUS_EVERY_S", 0.0)
    monkeypatch.setattr(notify, "status", lambda text: statuses.append(text))
    events_path = tmp_path / "events.jsonl"
    with caplog.at_level(logging.INFO, logger="edge.daemon.loop"):
        assert Daemon(settings(gallery, key, f"file://{clip}", **{"events.file": str(events_path)}), until_end=True,
                      pin_factory=mock_factory).run() == 0
    latencies = [event["latency_ms"] for event in read_events(events_path)]
    assert len(latencies) == 6
    pattern = r"frame p50 / p95 (\d+) / (\d+) ms \(last (\d+)\)"
    shown = [re.search(pattern, text) for text in statuses]
    assert not any(shown[:2])  # no latency before the first judged frame
    last = shown[-1]
    assert last is not None and int(last.group(3)) == 6
    p50, p95 = np.percentile(latencies, [50, 95])
    assert abs(int(last.group(1)) - p50) <= 1 and abs(int(last.group(2)) - p95) <= 1  # events round to 0.01 ms
    stopped = next(record.getMessage() for record in caplog.records if record.getMessage().startswith("stopped after"))
    assert re.search(pattern, stopped).group(0) == last.group(0)


def test_recent_latency_is_the_latest_frames_only():
    from edge.daemon.loop import RECENT_FRAMES, Stats

    stats = Stats()
    assert stats.latency_summary() == ""
    for value in [1000.0] + [10.0] * RECENT_FRAMES:  # the slow first frame has left the window
        stats.record_latency(value)
    assert stats.latency_summary() == f"frame p50 / p95 10 / 10 ms (last {RECENT_FRAMES})"
    assert stats.latency_count == RECENT_FRAMES + 1 and stats.latency_sum_ms == 1000.0 + 10.0 * RECENT_FRAMES


def test_face_crops_are_stored_only_when_enabled(tmp_path, enrolled, pipeline, mock_factory):
    gallery, key = enrolled
    clip = write_clip(tmp_path / "ann.avi", person_frames(ENROLLED[0], 3))
    for store in (False, True):
        folder = tmp_path / f"store-{store}"
        events_path = folder / "events.jsonl"
        Daemon(settings(gallery, key, f"file://{clip}", **{"events.file": str(events_path),
                                                          "events.store_faces": store}),
               until_end=True, pin_factory=mock_factory, pipeline=pipeline).run()
        events = read_events(events_path)
        assert len(events) == 3
        if not store:
            assert not (folder / "faces").exists() and all("face_image" not in event for event in events)
            continue
        crops = [cv2.imread(event["face_image"]) for event in events]
        assert all(crop is not None and 80 <= min(crop.shape[:2]) <= 240 for crop in crops)


def test_the_exit_button_opens_the_door_and_is_logged(tmp_path, enrolled, pipeline, mock_factory):
    gallery, key = enrolled
    clip = write_clip(tmp_path / "stranger.avi", person_frames(STRANGERS[0], 4))
    events_path = tmp_path / "events.jsonl"

    def on_event(event, door):
        if event["frame"] == 1:  # someone inside presses request-to-exit (the contact pulls the pin low)
            mock_factory.pin("BOARD15").drive_low()

    Daemon(settings(gallery, key, f"file://{clip}", **{"events.file": str(events_path), "door.exit_pin": "BOARD15"}),
           until_end=True, pin_factory=mock_factory, pipeline=pipeline, on_event=on_event).run()
    events = read_events(events_path)
    assert [event["reason"] for event in events if event["unlock"]] == ["exit button"]
    assert all(event["person"] is None for event in events)
    assert levels(mock_factory.pin(PIN)) == [False, True, False]
