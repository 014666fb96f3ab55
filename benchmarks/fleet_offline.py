"""Goal: a kiosk offline during 100 changes converges within 5 s of reconnecting.

    python benchmarks/fleet_offline.py --kiosks 5 --changes 100 --rounds 3 [--json out.json]

Kiosks reach the broker through a TCP relay on loopback that this script cuts (connections reset,
new ones refused) while the hub commits --changes changes (enrollments of 5 templates each and
removals, alternating), then restores. Two times per kiosk and round: from the network coming back
to the gallery at the hub's last change ("from restore": includes the MQTT client's reconnect
back-off, at most 4 s), and from the kiosk's new connection (the hub's status record) to that point
("from reconnect", the goal's figure).
"""
from __future__ import annotations

import argparse
import json
import time

from fleetrig import fleetkit, hub, percentile


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kiosks", type=int, default=5)
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--outage", type=float, default=5.0, help="seconds offline after the last change")
    parser.add_argument("--json")
    args = parser.parse_args()
    from_restore, from_reconnect = [], []
    with hub() as site:
        proxy = fleetkit.Proxy(site.port)
        kiosks = [site.kiosk(f"door-{number}", start=False) for number in range(args.kiosks)]
        for kiosk in kiosks:
            kiosk.start(broker_port=proxy.port)
        seq = site.enroll_vectors("Anchor", fleetkit.unit_vectors(5, seed=0))
        for kiosk in kiosks:
            fleetkit.wait_for(lambda: kiosk.position() == seq, 60, what="first sync")
        serial = 0
        for _ in range(args.rounds):
            proxy.cut()
            enrolled = []
            for number in range(args.changes):
                if number % 2 == 0 or not enrolled:
                    serial += 1
                    seq = site.enroll_vectors(f"Person {serial}", fleetkit.unit_vectors(5, seed=serial))
                    enrolled.append(f"Person {serial}")
                else:
                    seq = site.remove(enrolled.pop(0))
            time.sleep(args.outage)
            connected_before = {kiosk.name: connected_at(site, kiosk.name) for kiosk in kiosks}
            restored = time.time()
            proxy.restore()
            done = {}
            deadline = time.monotonic() + 60
            while len(done) < len(kiosks) and time.monotonic() < deadline:
                for kiosk in kiosks:
                    if kiosk.name not in done and kiosk.position() == seq:
                        done[kiosk.name] = time.time()
                time.sleep(0.05)
            assert len(done) == len(kiosks), "a kiosk did not converge within 60 s"
            for kiosk in kiosks:
                reconnected = connected_at(site, kiosk.name)
                assert reconnected and reconnected != connected_before[kiosk.name]
                from_restore.append(done[kiosk.name] - restored)
                from_reconnect.append(done[kiosk.name] - reconnected)
        proxy.close()
    result = {"kiosks": args.kiosks, "changes_while_offline": args.changes, "rounds": args.rounds,
              "from_reconnect_p50_s": percentile(from_reconnect, 50), "from_reconnect_max_s": max(from_reconnect),
              "from_restore_p50_s": percentile(from_restore, 50), "from_restore_max_s": max(from_restore),
              "goal_s": 5.0, "met": max(from_reconnect) <= 5.0}
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)
    return 0 if result["met"] else 1


def connected_at(site, device: str):
    """When the hub last saw the kiosk say "online" (its status on each new connection)."""
    with site.db() as db:
        row = db.connection.execute("SELECT extract(epoch FROM last_seen), status FROM devices WHERE name = %s",
                                    (device,)).fetchone()
        db.connection.commit()
    return float(row[0]) if row and row[0] is not None and row[1] == "online" else None


if __name__ == "__main__":
    raise SystemExit(main())
