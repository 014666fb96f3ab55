"""The real daemon in a fleet: a person enrolled at the hub from photos opens the door at a kiosk;
removed at the hub, they stop opening it within the daemon's poll after the kiosk applied the
removal, without a restart; the events reach the hub; the site's lock-down policy is obeyed and
shown by the selftest."""
from __future__ import annotations

import sys
import threading
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))

from daemonkit import PIN, levels, openings, person_frames, photo, settings, write_clip  # noqa: E402
from fleetkit import wait_for  # noqa: E402

PERSON = "Colin_Powell"


def epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def enroll_at_hub(hub, pipeline, name=PERSON):
    from edge.hub import commands

    images = [photo(name, number) for number in (1, 2, 4)]
    return commands.enroll(hub.home, "alice", name, hub.site, images, False, lambda: pipeline, lambda line: None)


def test_removal_at_the_hub_stops_the_door_without_a_restart(hub, pipeline, mock_factory, tmp_path):
    from edge.daemon.loop import Daemon

    result = enroll_at_hub(hub, pipeline)
    assert result["templates"] == 3
    kiosk = hub.kiosk("door-1")
    wait_for(lambda: kiosk.gallery.exists() and kiosk.position() == result["seq"], 30, what="kiosk synced")
    clip = write_clip(tmp_path / "person.avi", person_frames(PERSON, 100))
    events_path = tmp_path / "events.jsonl"
    seen, removal = [], {}

    def remove_now():
        removal["seq"] = hub.remove(PERSON)
        removal["committed"] = time.time()

    def on_event(event, door):
        seen.append(event)
        if event["unlock"] and not removal:
            removal["thread"] = threading.Thread(target=remove_now)
            removal["thread"].start()

    daemon = Daemon(settings(kiosk.gallery, kiosk.key, f"file://{clip}",
                             **{"events.file": str(events_path), "gallery.reload_s": 0.2, "decision.cooldown_s": 0.5,
                                "source.rate": "10", "fleet.state": str(kiosk.state)}),
                    until_end=True, pin_factory=mock_factory, pipeline=pipeline, on_event=on_event)
    assert daemon.run() == 0
    removal["thread"].join()
    applied = next(entry["applied_at"] for entry in kiosk.applied() if entry["seq"] == removal["seq"])
    assert applied - removal["committed"] < 2.0
    unlocks = [epoch(event["time"]) for event in seen if event["unlock"]]
    after = [event for event in seen if epoch(event["time"]) > applied + 0.2 + 0.15]
    assert unlocks and len(after) > 40  # the person stood there long after the removal ...
    assert not any(event["unlock"] or event["person"] for event in after)  # ... and was a stranger
    assert openings(levels(mock_factory.pin(PIN))) == len(unlocks)
    ids = [event["id"] for event in seen]  # every event has its id, and the hub gets each once
    assert len(set(ids)) == len(ids)
    with hub.db() as db:
        wait_for(lambda: len(db.connection.execute("SELECT id FROM events").fetchall()) == len(ids) and
                 not db.connection.commit(), 30, what="events at the hub")
        stored = {row[0] for row in db.connection.execute("SELECT id FROM events").fetchall()}
        db.connection.commit()
    assert stored == set(ids)


def test_lock_down_policy_refuses_unlocks_when_the_hub_is_silent_and_selftest_says_so(hub, pipeline,
                                                                                      mock_factory, tmp_path):
    from edge.daemon.loop import Daemon
    from edge.hub import commands
    from edge.selftest.context import Context
    from edge.selftest.runner import run_selftest
    from edge.selftest.settings import Settings

    commands.set_policy(hub.home, "alice", hub.site, "lock", 2)
    result = enroll_at_hub(hub, pipeline)
    kiosk = hub.kiosk("door-1")
    wait_for(lambda: kiosk.gallery.exists() and kiosk.position() == result["seq"], 30, what="kiosk synced")
    values = {"fleet.state": str(kiosk.state), "events.file": str(tmp_path / "events.jsonl"),
              "decision.cooldown_s": 0.5}
    selftest = lambda: {check.name: check for check in run_selftest(  # noqa: E731
        Context(Settings(daemon=settings(kiosk.gallery, kiosk.key, "file:///none.avi", **values))), ("fleet",)).checks}
    wait_for(lambda: "lock down after 2 s" in selftest()["fleet.hub"].detail, 10, what="policy reached the kiosk")
    assert selftest()["fleet.hub"].status == "PASS"
    hub.stop_service()  # the hub falls silent
    time.sleep(3.5)
    report = selftest()
    assert report["fleet.hub"].status == "FAIL" and "UNLOCKS REFUSED" in report["fleet.hub"].detail
    clip = write_clip(tmp_path / "person.avi", person_frames(PERSON, 20))
    seen = []
    Daemon(settings(kiosk.gallery, kiosk.key, f"file://{clip}", **values), until_end=True, pin_factory=mock_factory,
           pipeline=pipeline, on_event=lambda event, door: seen.append(event)).run()
    assert [event["person"] for event in seen].count(PERSON) >= 10  # recognised ...
    assert not any(event["unlock"] for event in seen)  # ... and refused
    assert any("locked down by site policy" in event["reason"] for event in seen)
    assert openings(levels(mock_factory.pin(PIN))) == 0
    hub.start_service()  # the hub is back: the door decides again
    wait_for(lambda: selftest()["fleet.hub"].status == "PASS", 10, what="hub heard again")
    seen.clear()
    Daemon(settings(kiosk.gallery, kiosk.key, f"file://{clip}", **values), until_end=True, pin_factory=mock_factory,
           pipeline=pipeline, on_event=lambda event, door: seen.append(event)).run()
    assert any(event["unlock"] for event in seen)
