"""Enrollment at a kiosk goes to the hub, is checked there for the whole site, and comes back to
every kiosk, the enrolling one included."""
from __future__ import annotations

import re
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


def test_fleet_enroll_at_the_camera_asks_this_doors_liveness_cues(hub, fetched_home, face_images, capsys, monkeypatch,
                                                                  tmp_path):
    """A site enrollment taken at a kiosk's camera warns, as `enroll` does, when this door's cues call the
    frames attacks (here a cnn network that calls every face one), and the person is enrolled anyway;
    photos are not judged."""
    import io

    import cv2
    from buildkit import camera_clip, cnn_only_liveness

    from edge.cli import main

    cnn_only_liveness(fetched_home / "models", 6.0)
    kiosk = hub.kiosk("door-1", start=False)
    gallery = tmp_path / "gallery.sqlite"
    monkeypatch.delenv("EDGE_VERIFY_ADMIN_TOKEN", raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO("fleet-test-token\n"))
    assert main(["admin", "set-token", "--gallery", str(gallery)]) == 0
    video = camera_clip(tmp_path / "kiosk.avi", [cv2.imread(str(path)) for path in face_images["Jennifer_Aniston"]])
    common = ["--bundle", str(kiosk.bundle), "--state", str(tmp_path / "state"), "--no-config",
              "--token", "fleet-test-token", "--gallery", str(gallery), "--threads", "1"]
    capsys.readouterr()
    assert main(["fleet", "enroll", "Jennifer", "--camera", f"file://{video}", "--timeout", "20", *common]) == 0
    err = capsys.readouterr().err
    # how many good frames a paced file gives depends on the machine's speed; each one is an attack here
    assert re.search(r"warning: the door's liveness cues call (\d) of \1 of Jennifer's frames an attack "
                     r"\(cnn on \1\)", err), err
    assert main(["fleet", "enroll", "Serena", "--images", *map(str, face_images["Serena_Williams"][:3]), *common]) == 0
    assert "liveness" not in capsys.readouterr().err
    with hub.db() as db:
        assert [person["name"] for person in db.people("main")] == ["Jennifer", "Serena"]
