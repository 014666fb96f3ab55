"""A site with many doors, on the real engines: snapshot, changes, removal everywhere, catching up."""
from __future__ import annotations

import time

from fleetkit import unit_vectors, wait_for


def test_kiosks_take_a_snapshot_then_every_change_once(hub):
    for number, name in enumerate(("Ada", "Grace", "Edsger")):
        hub.enroll_vectors(name, unit_vectors(3, seed=number))
    kiosks = [hub.kiosk(f"door-{number}") for number in (1, 2)]
    for kiosk in kiosks:
        wait_for(lambda: kiosk.position() == 3, 30, what=f"{kiosk.name} snapshot")
        assert kiosk.people() == ["Ada", "Edsger", "Grace"]
    seq = hub.remove("Grace")
    committed = time.time()
    for kiosk in kiosks:
        wait_for(lambda: kiosk.position() == seq, 5, what=f"{kiosk.name} removal")
        assert kiosk.people() == ["Ada", "Edsger"]
        # the agent writes its trace just after the gallery's commit: wait for that line too
        wait_for(lambda: any(entry["seq"] == seq for entry in kiosk.applied()), 5, what=f"{kiosk.name} trace")
        applied = [entry for entry in kiosk.applied() if entry["seq"] == seq]
        assert len(applied) == 1 and applied[0]["applied_at"] - committed < 2.0
    # the feed no longer holds Grace's name or templates (redacted at removal)
    with hub.db() as db:
        assert "Grace" not in str(db.changes_after("main", 0, 100))


def test_a_kiosk_offline_during_changes_catches_up_without_gaps_or_repeats(hub):
    kiosk = hub.kiosk("door-1")
    hub.enroll_vectors("Ada", unit_vectors(2, seed=1))
    wait_for(lambda: kiosk.position() == 1, 30, what="first sync")
    kiosk.stop()
    for number in range(20):
        hub.enroll_vectors(f"Person {number}", unit_vectors(2, seed=100 + number))
    for number in range(0, 20, 2):
        hub.remove(f"Person {number}")
    head = 31
    started = time.monotonic()
    kiosk.start()
    wait_for(lambda: kiosk.position() == head, 30, what="catch up")
    assert time.monotonic() - started < 30
    assert sorted(kiosk.people()) == sorted(["Ada"] + [f"Person {n}" for n in range(1, 20, 2)])
    seqs = [entry["seq"] for entry in kiosk.applied() if entry["kind"] != "snapshot"]
    assert seqs == sorted(set(seqs)) and seqs[-1] == head  # each change once, in order


def test_same_name_at_two_stations_at_once_one_wins_the_other_is_refused_and_audited(hub):
    import threading

    from edge.fleet.errors import EnrollConflict

    outcomes = []

    def enroll(seed):
        try:
            outcomes.append(("ok", hub.enroll_vectors("Ada", unit_vectors(2, seed=seed))))
        except EnrollConflict as error:
            outcomes.append(("conflict", str(error)))

    threads = [threading.Thread(target=enroll, args=(seed,)) for seed in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(kind for kind, _ in outcomes) == ["conflict", "ok"]
    with hub.db() as db:
        assert [person["name"] for person in db.people("main")] == ["Ada"]
        actions = [record["action"] for record in db.audit_records(20)]
        assert actions.count("enroll") == 1 and actions.count("conflict") == 1


def test_a_restore_at_the_kiosk_is_followed_and_the_hubs_removals_reach_the_restored_file(hub, tmp_path):
    """The documented restore (move the gallery aside, import a backup) while the agent runs: the
    daemon reads the file now at the path, so that is where the hub's changes must go."""
    import os

    from edge.gallery import open_gallery

    kiosk = hub.kiosk("door-1")
    for number, name in enumerate(("Ada", "Grace")):
        hub.enroll_vectors(name, unit_vectors(2, seed=number))
    wait_for(lambda: kiosk.gallery.exists() and kiosk.position() == 2, 30, what="first sync")
    backup = tmp_path / "backup.sqlite"
    with open_gallery(kiosk.gallery, kiosk.key) as gallery:
        gallery.backup(backup, actor="test")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(f"{kiosk.gallery}{suffix}"):
            os.rename(f"{kiosk.gallery}{suffix}", tmp_path / f"aside.sqlite{suffix}")
    with open_gallery(kiosk.gallery, kiosk.key, create=True, actor="test") as gallery:
        gallery.import_(backup, "test")
    seq = hub.remove("Grace")
    wait_for(lambda: kiosk.position() == seq, 10, what="the removal in the restored gallery")
    assert kiosk.people() == ["Ada"]
    assert "reading the gallery now at" in kiosk.log()
