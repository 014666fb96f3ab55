"""Decision events reach the hub exactly once, through the kiosk's durable spool, whatever fails."""
from __future__ import annotations

import time

from fleetkit import Proxy, wait_for


def spool_events(kiosk, count: int, start: int = 0) -> list[str]:
    spool = kiosk.spool()
    try:
        return [spool.add({"time": f"t{number}", "person": None, "distance": None, "margin": None,
                           "frames_agreed": 0, "unlock": False, "latency_ms": 1.0, "n": number})
                for number in range(start, start + count)]
    finally:
        spool.close()


def hub_ids(hub) -> list[str]:
    with hub.db() as db:
        rows = db.connection.execute("SELECT id FROM events").fetchall()
        db.connection.commit()
    return [row[0] for row in rows]


def device_status(hub) -> str | None:
    with hub.db() as db:
        return db.devices("main")[0]["status"]


def test_events_survive_broker_restart_hub_restart_kill_and_network_loss(hub):
    proxy = Proxy(hub.port)
    kiosk = hub.kiosk("door-1", start=False)
    kiosk.start(broker_port=proxy.port)
    wait_for(lambda: kiosk.position() == 0 and (kiosk.state / "spool.sqlite").exists(), 20, what="agent up")
    sent = spool_events(kiosk, 50)
    wait_for(lambda: len(hub_ids(hub)) == 50, 20, what="first events")

    hub.broker.stop()  # broker restart, with events written while it is down
    sent += spool_events(kiosk, 30, 50)
    hub.broker.start()
    hub.stop_service()  # hub restart, with events in flight
    sent += spool_events(kiosk, 30, 80)
    time.sleep(1.0)
    hub.start_service()
    kiosk.kill()  # kill -9 of the agent, events waiting
    wait_for(lambda: device_status(hub) == "offline", 10, what="the last will published")
    sent += spool_events(kiosk, 30, 110)
    kiosk.start(broker_port=proxy.port)
    wait_for(lambda: device_status(hub) == "online", 20, what="online again")
    proxy.cut()  # network loss (short here; benchmarks/fleet_events.py holds it 60 s)
    sent += spool_events(kiosk, 30, 140)
    time.sleep(3.0)
    proxy.restore()
    wait_for(lambda: len(set(hub_ids(hub))) == len(sent), 60, what="every event at the hub")
    ids = hub_ids(hub)
    assert sorted(ids) == sorted(sent)  # none lost, none twice (the id is the primary key)
    wait_for(lambda: kiosk.spool().depth() == 0, 20, what="spool emptied by acknowledgements")
    proxy.close()


def test_a_full_spool_drops_the_oldest_and_counts_them(tmp_path):
    from edge.fleet.spool import Spool

    spool = Spool(tmp_path / "spool.sqlite", max_events=10)
    ids = [spool.add({"time": str(n), "person": None, "distance": None, "margin": None, "frames_agreed": 0,
                      "unlock": False, "latency_ms": None}) for n in range(25)]
    assert spool.depth() == 10
    assert spool.counters()["dropped"] == 15
    assert [event["id"] for event in spool.due(100, resend_s=60)] == ids[-10:]
    assert spool.due(100, resend_s=60) == []  # sent, not acknowledged: not due again yet
    assert spool.ack(ids[-10:-5]) == 5 and spool.depth() == 5
    spool.unsent()
    assert [event["id"] for event in spool.due(100, resend_s=60)] == ids[-5:]
    spool.close()
    reopened = Spool(tmp_path / "spool.sqlite", max_events=10)
    assert reopened.depth() == 5 and reopened.counters()["dropped"] == 15
    reopened.close()
