"""TLS, per-device credentials, ACLs and revocation, tried against the real broker."""
from __future__ import annotations

import json
import socket
import ssl
import time
import uuid

import pytest

from fleetkit import unit_vectors, wait_for


def device_client(hub, bundle_path, password=None, with_cert=True):
    """A raw MQTT client with a device's bundle (what a stolen or revoked kiosk would hold)."""
    from edge.fleet import mqtt as fleet_mqtt

    data = json.loads(bundle_path.read_text())
    folder = hub.root / f"probe-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    context = ssl.create_default_context(cadata=data["ca"])
    if with_cert:
        cert, key = fleet_mqtt.write_client_files(folder, data["cert"], data["key"])
        context.load_cert_chain(str(cert), str(key))
    client = fleet_mqtt.client(f"probe-{uuid.uuid4().hex[:6]}", data["username"], password or data["password"],
                               context)
    state = {"connects": [], "messages": []}
    client.on_connect = lambda c, u, f, reason, p: state["connects"].append(reason.is_failure)
    client.on_message = lambda c, u, message: state["messages"].append((message.topic, message.payload))
    client.connect_async("127.0.0.1", hub.port)
    client.loop_start()
    return client, state, data


def events_of(hub, device):
    with hub.db() as db:
        rows = db.connection.execute("SELECT id FROM events WHERE device = %s", (device,)).fetchall()
        db.connection.commit()
    return rows


def test_plain_tcp_and_tls_without_a_client_certificate_are_refused(hub):
    bundle = hub.add_device("door-1")
    with socket.create_connection(("127.0.0.1", hub.port), timeout=5) as raw:  # MQTT CONNECT without TLS
        raw.sendall(bytes([0x10, 12, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 60, 0, 0]))
        raw.settimeout(5)
        try:
            answer = raw.recv(4)
        except (ConnectionResetError, socket.timeout):
            answer = b""
    assert not answer.startswith(b"\x20")  # no CONNACK
    client, state, _ = device_client(hub, bundle, with_cert=False)
    time.sleep(2)
    assert False not in state["connects"]  # no connection ever accepted (False: not a failure)
    client.loop_stop()


def test_a_device_reads_only_its_site_and_writes_only_its_own_topics(hub):
    hub.add_site("other")
    hub.enroll_vectors("Secret", unit_vectors(2, seed=9), site="other")
    hub.enroll_vectors("Ada", unit_vectors(2, seed=1))
    bundle = hub.add_device("door-1")
    client, state, data = device_client(hub, bundle)
    wait_for(lambda: state["connects"] == [False], 10, what="device connected")
    client.subscribe("edge/other/#", qos=1)
    client.subscribe("edge/#", qos=1)
    client.subscribe("edge/main/device/+/resp", qos=1)
    client.publish("edge/main/device/door-2/events", json.dumps({"events": [{"id": "forged", "unlock": True}]}), qos=1)
    client.publish("edge/other/device/door-1/req", json.dumps({"type": "sync", "after": 0}), qos=1)
    hub.enroll_vectors("Mallory", unit_vectors(2, seed=5), site="other")
    hub.enroll_vectors("Grace", unit_vectors(2, seed=2))
    time.sleep(3)
    topics = {topic for topic, _ in state["messages"]}
    assert "edge/main/changes" in topics  # its own site's changes do arrive
    assert not any(topic.startswith("edge/other/") for topic in topics)
    assert not any(b"Secret" in payload or b"Mallory" in payload for _, payload in state["messages"])
    assert events_of(hub, "door-2") == [] and events_of(hub, "door-1") == []
    client.loop_stop()


def test_a_revoked_device_can_neither_read_changes_nor_publish(hub):
    from edge.hub import commands

    kiosk = hub.kiosk("door-1")
    wait_for(lambda: (kiosk.state / "spool.sqlite").exists(), 20, what="agent up")
    client, state, _ = device_client(hub, kiosk.bundle)
    wait_for(lambda: state["connects"] == [False], 10, what="probe connected")
    client.subscribe("edge/main/changes", qos=1)
    commands.revoke_device(hub.home, "alice", "door-1")
    time.sleep(1.5)
    hub.enroll_vectors("Ada", unit_vectors(2, seed=1))
    info = client.publish("edge/main/device/door-1/events", json.dumps({"events": [{"id": "after-revoke"}]}), qos=1)
    time.sleep(3)
    assert not any(topic == "edge/main/changes" for topic, _ in state["messages"])
    assert events_of(hub, "door-1") == []
    assert kiosk.position() == 0  # the revoked kiosk's agent got nothing either
    assert all(failed for failed in state["connects"][1:])  # every reconnect refused
    with hub.db() as db:
        assert db.devices("main")[0]["revoked_at"] is not None
        assert "revoke-device" in [record["action"] for record in db.audit_records(20)]
    client.loop_stop()
    del info


def test_admin_passwords_are_slowed_audited_and_locked(hub):
    from edge.exc import AuthError
    from edge.fleet.errors import AdminLocked
    from edge.hub import admins

    with hub.db() as db:
        with pytest.raises(AuthError, match="wrong password"):
            admins.authenticate(db, "alice", "not the password")
        with pytest.raises(AdminLocked, match="wait"):  # even the right one must wait now
            admins.authenticate(db, "alice", "correct horse battery")
        now = db.connection.execute("SELECT now() + interval '1 hour'").fetchone()[0]
        db.connection.commit()
        assert admins.authenticate(db, "alice", "correct horse battery", now=now) == "hub admin alice"
        for _ in range(admins.LOCK_AFTER):
            now = now + __import__("datetime").timedelta(hours=1)
            with pytest.raises(AuthError):
                admins.authenticate(db, "alice", "guess", now=now)
        with pytest.raises(AdminLocked, match="unlock-admin"):
            admins.authenticate(db, "alice", "correct horse battery", now=now + __import__("datetime").timedelta(days=9))
        actions = [record["action"] for record in db.audit_records(100)]
        assert actions.count("login-failed") == admins.LOCK_AFTER + 1 and "login-refused" in actions
        stored = db.connection.execute("SELECT salt, hash FROM admins").fetchone()
        db.connection.commit()
        assert b"correct horse" not in bytes(stored[1]) and len(bytes(stored[0])) == 16
