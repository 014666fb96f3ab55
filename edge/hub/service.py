"""`edge-verify hub serve`: the hub between PostgreSQL and the broker.

* Publishes every committed change at once: PostgreSQL's NOTIFY (sent at commit by
  edge.hub.db) wakes a listener thread; the worker reads the feed after the last
  number it published and sends each change to edge/SITE/changes (QoS 1), then
  the retained head (number, site policy). The head is sent again every
  ``heartbeat_s``: it is how kiosks know the hub is alive (the site policy's clock)
  and how a kiosk that missed a message learns it is behind.
* Answers sync requests: the changes after N (pages of PAGE_CHANGES), or a
  snapshot (pages of PAGE_PEOPLE people, all at one sequence number) for a new
  kiosk or one whose position the feed cannot continue.
* Stores events once per id (INSERT ... ON CONFLICT DO NOTHING) and acknowledges
  the ids after the commit, so a kiosk deletes an event only once it is safe here.
* Decides enrollments sent by kiosks (edge.hub.enroll.KioskEnrollments) and answers each.
* Records each kiosk's retained status (online/offline) in the devices table.
Requests and events from a device that is revoked, unknown, or of another site
are refused (the broker's ACL already stops them; this is the second lock).
"""
from __future__ import annotations

import json
import logging
import queue
import threading
import time
import uuid

import psycopg

from edge.fleet import metrics, mqtt, names
from edge.fleet.errors import DeviceRevoked
from edge.hub import db as hubdb
from edge.hub.enroll import KioskEnrollments
from edge.hub.home import HubSettings, hub_password

log = logging.getLogger(__name__)

HEARTBEAT_S = 5.0
PAGE_CHANGES = 200
PAGE_PEOPLE = 500
TICK_S = 0.2


class HubService:
    def __init__(self, settings: HubSettings, heartbeat_s: float = HEARTBEAT_S, metrics_address=None):
        self.settings = settings
        self.heartbeat_s = heartbeat_s
        self.db = hubdb.HubDB(settings.dsn)
        self.inbox: queue.Queue = queue.Queue()
        self.published: dict[str, int] = {}
        self.connected = False
        self.counts = {"changes_published": 0, "sync_requests": 0, "snapshots": 0, "events_stored": 0,
                       "events_duplicate": 0, "refused": 0, "heartbeats": 0}
        self.online: dict[str, bool] = {}
        self.enrollments = KioskEnrollments(settings.home, self.db)
        self._beat_at = 0.0
        self._stop = threading.Event()
        self._listener = threading.Thread(target=self._listen, name="pg-listen", daemon=True)
        self._metrics = metrics.serve(metrics_address, self.collect) if metrics_address else None
        self._client = self._make_client()

    def _make_client(self):
        folder = self.settings.home / "client"
        context = mqtt.tls_context((folder / "ca.pem").read_text(), folder / "hub.pem", folder / "hub.key")
        client = mqtt.client(f"edge-verify-hub-{uuid.uuid4().hex[:8]}", "hub", hub_password(self.settings.home), context)
        client.on_connect = lambda c, u, flags, reason, props: self.inbox.put(("connect", reason))
        client.on_disconnect = lambda c, u, flags, reason, props: self.inbox.put(("disconnect", reason))
        client.on_message = lambda c, u, message: self.inbox.put(("message", message.topic, message.payload))
        return client

    # ---- lifecycle ---------------------------------------------------------------------------

    def run(self, stop: threading.Event, until=None) -> int:
        for site in self.db.sites():
            self.published[site["name"]] = site["last_seq"]
        self._listener.start()
        self._client.connect_async(self.settings.broker_host, self.settings.broker_port, keepalive=mqtt.KEEPALIVE_S)
        self._client.loop_start()
        try:
            while not stop.is_set() and not (until and until()):
                self._drain(TICK_S)
                if self.connected and time.time() - self._beat_at >= self.heartbeat_s:
                    self._publish_all(heartbeat=True)
        finally:
            self._stop.set()
            self._client.disconnect()
            self._client.loop_stop()
            if self._metrics is not None:
                self._metrics.shutdown()
            self.db.close()
        return 0

    def _listen(self) -> None:
        """LISTEN on a connection of its own; wake the worker on each committed change."""
        while not self._stop.is_set():
            try:
                with hubdb.connect(self.settings.dsn, autocommit=True) as connection:
                    connection.execute(f"LISTEN {hubdb.CHANNEL}")
                    self.inbox.put(("changed", None))  # whatever committed while not listening
                    while not self._stop.is_set():
                        for notice in connection.notifies(timeout=1.0, stop_after=None):
                            self.inbox.put(("changed", notice.payload))
            except (psycopg.Error, OSError) as error:
                if self._stop.is_set():
                    return
                log.warning("PostgreSQL listener: %s; retrying", error)
                time.sleep(1.0)
            except Exception as error:  # keep listening whatever happened; the worker still polls by heartbeat
                log.error("PostgreSQL listener failed: %s; retrying", error)
                time.sleep(1.0)

    def _drain(self, wait_s: float) -> None:
        try:
            item = self.inbox.get(timeout=wait_s)
        except queue.Empty:
            return
        changed = False
        while True:
            if item[0] == "changed":
                changed = True  # many notices at once: one read of the feed
            else:
                self._handle(item)
            try:
                item = self.inbox.get_nowait()
            except queue.Empty:
                break
        if changed and self.connected:
            self._publish_all(heartbeat=False)

    def _handle(self, item) -> None:
        kind = item[0]
        if kind == "connect":
            if item[1].is_failure:
                log.error("the broker refused the hub: %s", item[1])
                return
            self.connected = True
            self._client.subscribe(f"{names.ROOT}/+/device/+/req", qos=1)
            self._client.subscribe(f"{names.ROOT}/+/device/+/events", qos=1)
            self._client.subscribe(f"{names.ROOT}/+/device/+/status", qos=1)
            self._publish_all(heartbeat=True)
            log.info("hub connected to the broker")
        elif kind == "disconnect":
            self.connected = False
            log.warning("hub lost the broker (%s)", item[1])
        else:
            self._on_message(item[1], item[2])

    # ---- changes -------------------------------------------------------------------------------

    def _publish_all(self, heartbeat: bool) -> None:
        for site in self.db.sites():
            name = site["name"]
            start = before = self.published.get(name, 0)
            while start < site["last_seq"]:
                batch = self.db.changes_after(name, start, PAGE_CHANGES)
                if not batch:
                    break
                for change in batch:
                    self._client.publish(names.changes(name), json.dumps(change, separators=(",", ":")), qos=1)
                    self.counts["changes_published"] += 1
                start = batch[-1]["seq"]
            self.published[name] = max(start, site["last_seq"])
            if heartbeat or start > before:
                self._client.publish(names.head(name), json.dumps(
                    {"seq": site["last_seq"], "time": time.time(), "offline_policy": site["offline_policy"],
                     "max_silence_s": site["max_silence_s"]}), qos=1, retain=True)
        if heartbeat:
            self._beat_at = time.time()
            self.counts["heartbeats"] += 1

    # ---- what kiosks send ----------------------------------------------------------------------

    def _on_message(self, topic: str, payload: bytes) -> None:
        where = names.parse_device_topic(topic)
        if where is None:
            return
        site, device, leaf = where
        try:
            message = json.loads(payload) if payload else {}
            if leaf == "status":
                self.online[device] = message.get("state") == "online"
                self.db.device_seen(device, message.get("state"))
                return
            self.db.active_device(device, site)
            if leaf == "events":
                self._events(site, device, message)
            elif leaf == "req" and message.get("type") == "sync":
                self._sync(site, device, int(message.get("after", 0)))
            elif leaf == "req" and message.get("type") == "enroll":
                self._answer(site, device, {"type": "enroll-result", "id": message.get("id"),
                                            **self.enrollments.handle(site, device, message)})
        except DeviceRevoked as error:
            self.counts["refused"] += 1
            log.warning("refused %s from %s: %s", leaf, device, error)
        except (ValueError, TypeError, KeyError) as error:
            log.error("ignored a malformed %s message from %s: %s", leaf, device, error)

    def _events(self, site: str, device: str, message: dict) -> None:
        events = [event for event in message.get("events", []) if isinstance(event, dict)]
        stored, duplicates = self.db.store_events(site, device, events)
        self.counts["events_stored"] += len(stored) - duplicates
        self.counts["events_duplicate"] += duplicates
        self._answer(site, device, {"type": "ack", "ids": stored})

    def _sync(self, site: str, device: str, after: int) -> None:
        self.counts["sync_requests"] += 1
        head = self.db.site(site)["last_seq"]
        first = self.db.first_seq(site)
        if after <= 0 or after > head or (first is not None and after < first - 1):
            self._snapshot(site, device)
            return
        changes = self.db.changes_after(site, after, PAGE_CHANGES)
        self._answer(site, device, {"type": "changes", "head": head, "changes": changes})

    def _snapshot(self, site: str, device: str) -> None:
        self.counts["snapshots"] += 1
        seq, people = self.db.sealed_people(site)
        pages = [people[start:start + PAGE_PEOPLE] for start in range(0, len(people), PAGE_PEOPLE)] or [[]]
        snapshot = uuid.uuid4().hex
        for number, page in enumerate(pages):
            self._answer(site, device, {"type": "snapshot", "snapshot": snapshot, "seq": seq, "page": number,
                                        "pages": len(pages), "people": page})

    def _answer(self, site: str, device: str, message: dict) -> None:
        self._client.publish(names.device(site, device, "resp"), json.dumps(message, separators=(",", ":")), qos=1)

    # ---- metrics -------------------------------------------------------------------------------

    def collect(self) -> list[tuple]:
        return [
            ("edge_hub_connected", "gauge", "1 while connected to the broker", int(self.connected)),
            ("edge_hub_site_seq", "gauge", "last change published, per site", dict(self.published), "site"),
            ("edge_hub_changes_published_total", "counter", "change messages sent", self.counts["changes_published"]),
            ("edge_hub_sync_requests_total", "counter", "sync requests answered", self.counts["sync_requests"]),
            ("edge_hub_snapshots_total", "counter", "snapshots sent", self.counts["snapshots"]),
            ("edge_hub_events_stored_total", "counter", "events stored (new ids)", self.counts["events_stored"]),
            ("edge_hub_events_duplicate_total", "counter", "events received again and ignored",
             self.counts["events_duplicate"]),
            ("edge_hub_refused_total", "counter", "messages refused from revoked or foreign devices",
             self.counts["refused"]),
            ("edge_hub_devices_online", "gauge", "kiosks whose retained status is online",
             sum(1 for online in self.online.values() if online)),
        ]
