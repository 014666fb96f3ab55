"""Goal: 0 events lost and 0 duplicated at the hub across a broker restart, a hub restart, a kiosk's
kill -9 and a 60 s network loss, counted by event id.

    python benchmarks/fleet_events.py --kiosks 5 --rate 20 --loss 60 [--json out.json]

Each kiosk's spool is fed by a writer thread standing in for the daemon (the daemon's own path into
the spool is tested in tests/fleet/test_fleet_daemon.py) at --rate events/s. Kiosks reach the broker
through a TCP relay on loopback. In turn: the broker is stopped (SIGTERM) for 5 s and started;
the hub service is stopped for 5 s and started; one kiosk's agent is killed with SIGKILL and started
again; the relay drops every connection and refuses new ones for --loss seconds. Then writing stops,
and the hub's events table is compared with every id written.
"""
from __future__ import annotations

import argparse
import json
import threading
import time

from fleetrig import fleetkit, hub


def writer(kiosk, rate: float, stop: threading.Event, ids: list) -> None:
    spool = None
    while spool is None and not stop.is_set():
        try:
            spool = kiosk.spool()
        except Exception:  # the agent has not made the folder yet
            time.sleep(0.1)
    number = 0
    while not stop.is_set():
        ids.append(spool.add({"time": time.time(), "person": None, "distance": None, "margin": None,
                              "frames_agreed": 0, "unlock": False, "latency_ms": 20.0, "kiosk": kiosk.name,
                              "n": number}))
        number += 1
        time.sleep(1.0 / rate)
    spool.close()


def hub_counts(site) -> tuple[int, int, set]:
    with site.db() as db:
        rows = [row[0] for row in db.connection.execute("SELECT id FROM events").fetchall()]
        db.connection.commit()
    return len(rows), len(set(rows)), set(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kiosks", type=int, default=5)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--loss", type=float, default=60.0)
    parser.add_argument("--json")
    args = parser.parse_args()
    with hub() as site:
        proxy = fleetkit.Proxy(site.port)
        kiosks = [site.kiosk(f"door-{number}", start=False) for number in range(args.kiosks)]
        for kiosk in kiosks:
            kiosk.start(broker_port=proxy.port)
        stop, written = threading.Event(), {kiosk.name: [] for kiosk in kiosks}
        threads = [threading.Thread(target=writer, args=(kiosk, args.rate, stop, written[kiosk.name]), daemon=True)
                   for kiosk in kiosks]
        for thread in threads:
            thread.start()
        timeline = []

        def mark(what):
            timeline.append((round(time.time() - began, 1), what))
            print(f"{timeline[-1][0]:7.1f} s  {what}", flush=True)

        began = time.time()
        time.sleep(5)
        mark("broker stop")
        site.broker.stop()
        time.sleep(5)
        site.broker.start()
        mark("broker started")
        time.sleep(5)
        mark("hub service stop")
        site.stop_service()
        time.sleep(5)
        site.start_service()
        mark("hub service started")
        time.sleep(5)
        mark(f"kill -9 agent of {kiosks[0].name}")
        kiosks[0].kill()
        time.sleep(2)
        kiosks[0].start(broker_port=proxy.port)
        mark("agent started again")
        time.sleep(5)
        mark(f"network loss for {args.loss:g} s")
        proxy.cut()
        time.sleep(args.loss)
        proxy.restore()
        mark("network back")
        time.sleep(5)
        stop.set()
        for thread in threads:
            thread.join()
        mark("writers stopped")
        every = {event_id for ids in written.values() for event_id in ids}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not every <= hub_counts(site)[2]:
            time.sleep(0.5)
        mark("hub holds every id" if every <= hub_counts(site)[2] else "gave up waiting")
        rows, distinct, stored = hub_counts(site)
        duplicates_received = site.service.counts["events_duplicate"]
        proxy.close()
    result = {"kiosks": args.kiosks, "rate_per_kiosk": args.rate, "loss_s": args.loss, "written": len(every),
              "stored_rows": rows, "stored_distinct": distinct, "lost": len(every - stored),
              "duplicated_rows": rows - distinct, "unknown_ids": len(stored - every),
              "resent_and_deduplicated": duplicates_received, "timeline": timeline}
    result["met"] = result["lost"] == 0 and result["duplicated_rows"] == 0 and result["unknown_ids"] == 0
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)
    return 0 if result["met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
