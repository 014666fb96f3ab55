"""The daemon shares its camera (edge.daemon.share): a real `edge-verify run` process on a clip, its relay
on a RecordingPin. Frames come with faces, quality verdicts and decisions; a hold keeps the door locked
(pin history) until it ends; `enroll --camera daemon` enrolls from the daemon's frames with the door held."""
from __future__ import annotations

import json
import re
import time

import cv2
import numpy as np
from consolekit import TOKEN, openings_between, relay_levels, start_daemon, stop_daemon
from daemonkit import ENROLLED, PIN, blanks, face_frame, person_frames, read_events, write_clip

from edge.cli import main
from edge.daemon.share import ShareClient
from edge.gallery.auth import set_token, token_path


def daemon_values(folder, gallery, key, clip, **extra):
    values = {"source.uri": f"file://{clip}", "source.rate": 10, "door.pin": PIN, "door.pulse_s": 1.0,
              "gallery.path": str(gallery), "gallery.key": str(key), "gallery.reload_s": 0.2,
              "events.file": str(folder / "events.jsonl"), "events.stdout": False,
              "console.daemon_socket": str(folder / "d.sock"), "decision.liveness": "off"}
    values.update(extra)
    return values


def wait_for(predicate, timeout_s: float, step_s: float = 0.1):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(step_s)
    return None


def test_a_hold_keeps_the_door_locked_until_it_ends(tmp_path, gallery_files):
    gallery, key = gallery_files
    clip = write_clip(tmp_path / "colin.avi", blanks(10) + person_frames(ENROLLED[0], 140))
    pin_log = tmp_path / "pins.jsonl"
    process = start_daemon(tmp_path, daemon_values(tmp_path, gallery, key, clip), pin_log)
    try:
        holder = ShareClient(tmp_path / "d.sock")
        held_at = time.monotonic()
        reason = holder.hold("the test", "a test hold")
        assert reason == "door held locked: a test hold (the test)"
        with ShareClient(tmp_path / "d.sock") as viewer:
            frames, seq = [], 0
            while time.monotonic() - held_at < 3.0:
                frame = viewer.frame(after=seq, form="jpeg", wait_s=2.0)
                if frame is not None:
                    frames.append(frame)
                    seq = frame.seq
            refused = viewer.pulse("the test")
            status = viewer.status()
        judged = [frame for frame in frames if frame.meta["decision"] is not None]
        # what the console's daemon line shows beside the frame rate (edge.console.kiosk.daemon_line)
        assert re.fullmatch(r"frame p50 / p95 \d+ / \d+ ms \(last \d+\)", status["frame_latency"])
        assert len(judged) >= 5
        last = judged[-1]
        assert last.meta["decision"]["person"] == ENROLLED[0] and last.meta["decision"]["reason"] == reason
        assert last.meta["held"] == reason and not last.meta["decision"]["unlock"]
        x1, y1, x2, y2 = last.meta["face"]["box"]
        assert 0 <= x1 < x2 <= last.meta["width"] and 0 <= y1 < y2 <= last.meta["height"]
        assert len(last.meta["face"]["landmarks"]) == 5
        gates = {gate["name"]: gate["ok"] for gate in last.meta["quality"]["gates"]}
        assert set(gates) == {"face_count", "face_size", "pose", "brightness", "contrast", "sharpness"}
        picture = cv2.imdecode(np.frombuffer(last.payload, np.uint8), cv2.IMREAD_COLOR)
        assert picture.shape == (last.meta["height"], last.meta["width"], 3)
        assert not refused["ok"] and "door held locked" in refused["error"]
        holder.close()  # the hold ends with its connection
        released_at = time.monotonic()
        unlocked = wait_for(lambda: [event for event in read_events(tmp_path / "events.jsonl") if event["unlock"]], 6)
        assert unlocked and unlocked[0]["person"] == ENROLLED[0]
        # while held (an enrollment's live view) every frame is searched for faces; after it, followed
        events = read_events(tmp_path / "events.jsonl")
        held_events = [event for event in events if event.get("reason") == reason]
        assert len(held_events) >= 5 and not any(event["followed"] for event in held_events)
        assert wait_for(lambda: any(event.get("followed") for event in read_events(tmp_path / "events.jsonl")), 6)
    finally:
        assert stop_daemon(process) == 0
    levels = relay_levels(pin_log)
    assert openings_between(levels, held_at, released_at) == []
    assert openings_between(levels, released_at, time.monotonic())
    events = read_events(tmp_path / "events.jsonl")
    notes = [event["reason"] for event in events if event["frame"] is None and event["reason"].startswith("door held")]
    assert notes[0] == f"{reason}: started" and notes[1].startswith(f"{reason}: ended after")
    assert any(event["reason"] == reason and event["person"] == ENROLLED[0] for event in events)  # refused, said why


def test_a_test_pulse_goes_through_the_daemons_door(tmp_path, gallery_files):
    gallery, key = gallery_files
    clip = write_clip(tmp_path / "empty.avi", blanks(60))
    pin_log = tmp_path / "pins.jsonl"
    process = start_daemon(tmp_path, daemon_values(tmp_path, gallery, key, clip), pin_log)
    try:
        asked = time.monotonic()
        with ShareClient(tmp_path / "d.sock") as client:
            answer = client.pulse("technician")
            status = client.status()
        assert answer["ok"] and PIN in answer["door"]
        assert status["source"] == f"file://{clip}" and status["held"] is None
    finally:
        assert stop_daemon(process) == 0
    assert len(openings_between(relay_levels(pin_log), asked, time.monotonic())) == 1
    pulses = [event for event in read_events(tmp_path / "events.jsonl") if event["unlock"]]
    assert [event["reason"] for event in pulses] == ["door test pulse by technician"]


def test_enroll_camera_takes_the_daemons_frames_with_the_door_held(tmp_path, gallery_files, capsys):
    gallery, key = gallery_files
    set_token(token_path(gallery), TOKEN)
    # George W Bush is not enrolled: photos 3 and 4 moved a little each frame (distinct frames, like a camera's).
    visitor = [face_frame("George_W_Bush", 3 + index % 2, shift=index % 7 - 3) for index in range(220)]
    clip = write_clip(tmp_path / "visitor.avi", blanks(10) + visitor)
    pin_log = tmp_path / "pins.jsonl"
    process = start_daemon(tmp_path, daemon_values(tmp_path, gallery, key, clip), pin_log)
    try:
        started = time.monotonic()
        code = main(["enroll", "George W Bush", "--camera", "daemon", "--daemon-socket", str(tmp_path / "d.sock"),
                     "--gallery", str(gallery), "--key", str(key), "--token", TOKEN, "--count", "4",
                     "--interval", "0.2", "--threads", "1", "--json"])
        ended = time.monotonic()
        output = capsys.readouterr()
        assert code == 0, output.err
        assert json.loads(output.out)["templates"] == 4
        assert "door held locked: enrollment of George W Bush" in output.err
        unlocked = wait_for(lambda: [event for event in read_events(tmp_path / "events.jsonl")
                                     if event["unlock"] and event["person"] == "George W Bush"], 8)
        assert unlocked, "the daemon never let the newly enrolled person in"
    finally:
        assert stop_daemon(process) == 0
    levels = relay_levels(pin_log)
    assert openings_between(levels, started, ended) == []  # locked while the enrollment ran
    assert openings_between(levels, ended, time.monotonic())  # and opens for them afterwards
    events = read_events(tmp_path / "events.jsonl")
    notes = [event["reason"] for event in events if event["frame"] is None and event["reason"].startswith("door held")]
    assert len(notes) == 2 and notes[0].endswith(": started")


def test_enroll_camera_daemon_without_a_daemon_says_so(tmp_path, gallery_files, capsys):
    gallery, key = gallery_files
    set_token(token_path(gallery), TOKEN)
    code = main(["enroll", "X Y", "--camera", "daemon", "--daemon-socket", str(tmp_path / "none.sock"),
                 "--gallery", str(gallery), "--key", str(key), "--token", TOKEN])
    assert code == 1
    assert "no door daemon answers on" in capsys.readouterr().err


def test_the_consoles_daemon_line_gives_the_frame_latency_when_there_is_one(tmp_path, gallery_files):
    from consolekit import kiosk_settings

    from edge.console.kiosk import KioskConsole

    gallery, key = gallery_files
    console = KioskConsole(kiosk_settings(tmp_path, gallery, key), 900.0)
    status = {"pid": 7, "source": "file:///clip.avi", "fps": 14.9, "door": "relay on BOARD11", "locked": True,
              "gallery": "2 people"}
    line = console.daemon_line({**status, "frame_latency": "frame p50 / p95 26 / 33 ms (last 300)"})
    assert "14.9 fps (frame p50 / p95 26 / 33 ms (last 300)); door relay on BOARD11 locked" in line
    for before_a_face in ({**status, "frame_latency": None}, status):  # a daemon of an older release has no key
        assert "14.9 fps; door relay on BOARD11 locked" in console.daemon_line(before_a_face)
