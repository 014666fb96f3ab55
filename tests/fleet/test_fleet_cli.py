"""The hub's and the kiosk's commands as an installer types them, and both metrics endpoints."""
from __future__ import annotations

import json
import urllib.request

import pytest

from fleetkit import PASSWORD, unit_vectors, wait_for

from edge.cli import main


def test_hub_commands_from_the_command_line(hub, capsys, monkeypatch):
    monkeypatch.setenv("EDGE_VERIFY_HUB_ADMIN", "alice")
    monkeypatch.setenv("EDGE_VERIFY_HUB_PASSWORD", PASSWORD)
    home = str(hub.home)
    monkeypatch.setenv("EDGE_VERIFY_HUB_NEW_PASSWORD", "another long password")
    assert main(["hub", "add-admin", "bob", "--home", home]) == 0
    out = hub.root / "door-7.json"
    assert main(["hub", "add-device", "door-7", "--home", home, "--out", str(out)]) == 0
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    assert main(["hub", "add-device", "door-7", "--home", home, "--out", str(hub.root / "again.json")]) == 1
    assert "never reused" in capsys.readouterr().err
    hub.enroll_vectors("Ada", unit_vectors(2, seed=1))
    capsys.readouterr()
    assert main(["hub", "list", "--home", home, "--site", "main", "--devices", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert [person["name"] for person in listing["people"]] == ["Ada"]
    assert [device["name"] for device in listing["devices"]] == ["door-7"]
    assert main(["hub", "remove", "Ada", "--home", home]) == 0
    assert "removed Ada from site main (change 2" in capsys.readouterr().out
    assert main(["hub", "revoke-device", "door-7", "--home", home]) == 0
    assert "revoked; the broker reloaded" in capsys.readouterr().out
    assert "user door-7" not in (hub.home / "broker" / "acl").read_text()
    monkeypatch.setenv("EDGE_VERIFY_HUB_PASSWORD", "wrong password!")
    assert main(["hub", "list", "--home", home]) == 3
    assert "wrong password for hub admin 'alice'" in capsys.readouterr().err


def test_the_hub_refuses_a_revoked_device_even_past_the_broker(hub):
    """The second lock: a message that reached the hub from a revoked device is not served or stored."""
    from edge.hub import commands

    hub.add_device("door-1")
    commands.revoke_device(hub.home, "alice", "door-1")
    before = hub.service.counts["refused"]
    hub.service.inbox.put(("message", "edge/main/device/door-1/events",
                           json.dumps({"events": [{"id": "sneaked-in", "unlock": True}]}).encode()))
    hub.service.inbox.put(("message", "edge/main/device/door-1/req", json.dumps({"type": "sync"}).encode()))
    wait_for(lambda: hub.service.counts["refused"] == before + 2, 10, what="refusals")
    with hub.db() as db:
        assert db.event_counts()["rows"] == 0


def test_metrics_endpoints_on_kiosk_and_hub(hub):
    kiosk = hub.kiosk("door-1")
    spool = None
    wait_for(lambda: (kiosk.state / "spool.sqlite").exists(), 20, what="agent up")
    spool = kiosk.spool()
    spool.add({"time": "t", "person": None, "distance": None, "margin": None, "frames_agreed": 0, "unlock": False,
               "latency_ms": 1.0})
    spool.set_counters({"frames": 120, "faces": 40, "unlocks": 3, "refusals": 37, "latency_sum_ms": 800.0,
                        "latency_count": 40})
    spool.close()
    seq = hub.enroll_vectors("Ada", unit_vectors(2, seed=1))

    def scrape(url):
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            return response.read().decode()

    kiosk_url = f"http://127.0.0.1:{kiosk.metrics_port}/metrics"
    wait_for(lambda: f"edge_fleet_applied_seq {seq}" in scrape(kiosk_url) and
             "edge_fleet_spool_depth 0" in scrape(kiosk_url), 20, what="kiosk metrics")
    text = scrape(kiosk_url)
    for line in ("edge_kiosk_frames_total 120", "edge_kiosk_unlocks_total 3", "edge_kiosk_refusals_total 37",
                 "edge_kiosk_decision_latency_ms_sum 800", "edge_fleet_events_dropped_total 0",
                 "edge_fleet_connected 1", "edge_fleet_events_acked_total 1"):
        assert line in text.splitlines(), line
    hub_text = scrape(hub.metrics_url)
    assert f'edge_hub_site_seq{{site="main"}} {seq}' in hub_text.splitlines()
    assert "edge_hub_events_stored_total 1" in hub_text.splitlines()
    with pytest.raises(Exception):
        urllib.request.urlopen(kiosk_url.replace("/metrics", "/other"), timeout=5)
