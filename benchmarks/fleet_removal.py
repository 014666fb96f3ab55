"""Goal: a removal at the hub stops unlocks at all online kiosks within 2 s (p99), hub commit -> each
kiosk's applied change.

    python benchmarks/fleet_removal.py --kiosks 20 --people 40 --removals 10 [--json out.json]

Starts PostgreSQL, Mosquitto, the hub service and N kiosk agents (separate processes), enrolls
--people people (5 synthetic 128-d templates each, sealed under the site key), waits until every
kiosk holds them, then removes --removals people one after another (--gap seconds apart). The
time of each removal is taken when the hub's commit returns; each kiosk's agent writes the time it
committed the change to its gallery (--trace). Latency = applied - committed, per (kiosk, removal).
"""
from __future__ import annotations

import argparse
import json
import time

from fleetrig import fleetkit, hub, percentile


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kiosks", type=int, default=20)
    parser.add_argument("--people", type=int, default=40)
    parser.add_argument("--removals", type=int, default=10)
    parser.add_argument("--gap", type=float, default=1.0)
    parser.add_argument("--json")
    args = parser.parse_args()
    with hub() as site:
        for number in range(args.people):
            site.enroll_vectors(f"Person {number:03d}", fleetkit.unit_vectors(5, seed=number))
        head = args.people
        started = time.monotonic()
        kiosks = [site.kiosk(f"door-{number:02d}") for number in range(args.kiosks)]
        for kiosk in kiosks:
            fleetkit.wait_for(lambda: kiosk.position() == head, 120, step=0.2, what=f"{kiosk.name} first sync")
        first_sync_s = time.monotonic() - started
        committed = {}
        for number in range(args.removals):
            seq = site.remove(f"Person {number:03d}")
            committed[seq] = time.time()
            time.sleep(args.gap)
        last = max(committed)
        for kiosk in kiosks:
            fleetkit.wait_for(lambda: kiosk.position() == last, 30, step=0.1, what=f"{kiosk.name} removals")
        latencies, per_kiosk = [], {}
        for kiosk in kiosks:
            applied = {entry["seq"]: entry["applied_at"] for entry in kiosk.applied() if entry["seq"] in committed}
            assert sorted(applied) == sorted(committed), f"{kiosk.name} missed a removal"
            own = [applied[seq] - committed[seq] for seq in committed]
            per_kiosk[kiosk.name] = max(own)
            latencies += own
            assert all(f"Person {n:03d}" not in kiosk.people() for n in range(args.removals))
    result = {"kiosks": args.kiosks, "people": args.people, "removals": args.removals, "samples": len(latencies),
              "p50_s": percentile(latencies, 50), "p99_s": percentile(latencies, 99), "max_s": max(latencies),
              "slowest_kiosk_s": max(per_kiosk.values()), "all_kiosks_first_sync_s": first_sync_s,
              "goal_p99_s": 2.0, "met": percentile(latencies, 99) <= 2.0}
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)
    return 0 if result["met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
