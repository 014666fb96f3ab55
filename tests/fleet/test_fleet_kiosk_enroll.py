"""Enrollment at a kiosk goes to the hub, is checked there for the whole site, and comes back to
every kiosk, the enrolling one included."""
from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))

from daemonkit import photo  # noqa: E402
from fleetkit import wait_for  # noqa: E402

from edge.enroll.capture import enroll, image_shots  # noqa: E402
from edge.exc import DuplicateFaceError  # noqa: E402
from edge.fleet.bundle import read_bundle  # noqa: E402
from edge.fleet.enroll import HubSite  # noqa: E402
from edge.fleet.errors import EnrollConflict  # noqa: E402


def kiosk_enroll(kiosk, pipeline, name, person, numbers=(1, 2, 4)):
    site = HubSite(read_bundle(kiosk.bundle), kiosk.folder / "enroll", timeout_s=20)
    return enroll(name, pipeline, site, image_shots([photo(person, n) for n in numbers]), actor="installer")


def test_a_kiosk_enrollment_reaches_every_kiosk_and_conflicts_are_refused(hub, pipeline):
    door_1, door_2 = hub.kiosk("door-1"), hub.kiosk("door-2")
    result = kiosk_enroll(door_1, pipeline, "Colin", "Colin_Powell")
    assert result.templates == 3
    for kiosk in (door_1, door_2):
        wait_for(lambda: kiosk.gallery.exists() and kiosk.people() == ["Colin"], 30, what=f"{kiosk.name} has Colin")
    with pytest.raises(DuplicateFaceError, match="Colin"):  # the same face under another name, at another door
        kiosk_enroll(door_2, pipeline, "Not Colin", "Colin_Powell", numbers=(1, 2, 3))
    outcomes = []

    def at(kiosk, person):
        try:
            outcomes.append(kiosk_enroll(kiosk, pipeline, "Serena", person).templates)
        except (EnrollConflict, DuplicateFaceError) as error:
            outcomes.append(type(error).__name__)

    threads = [threading.Thread(target=at, args=(kiosk, person))
               for kiosk, person in ((door_1, "Serena_Williams"), (door_2, "Jennifer_Aniston"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(map(str, outcomes)) == ["3", "EnrollConflict"]  # one door wins, the other is told
    with hub.db() as db:
        assert [person["name"] for person in db.people("main")] == ["Colin", "Serena"]
        actions = [record["action"] for record in db.audit_records(50)]
        assert actions.count("conflict") == 1 and actions.count("enroll") == 2
    for kiosk in (door_1, door_2):
        wait_for(lambda: kiosk.people() == ["Colin", "Serena"], 30, what=f"{kiosk.name} has Serena")
