"""The kiosk's fleet agent (`edge-verify fleet run`): keeps the gallery in step with the hub and
ships the daemon's events, beside the door daemon, as its own process.

One worker thread (the caller's) owns the gallery and the spool; paho's network
thread only queues what arrives. The worker:

* sync: on every (re)connection asks the hub for the changes after the gallery's
  sequence number (or a snapshot, for a new kiosk); applies each change message
  whose number is the next one, in one gallery transaction with that number;
  a gap (messages lost while away) asks again from where the gallery stands; a
  number already applied is ignored. A request with no answer is asked again.
* events: sends what the spool holds in batches (QoS 1); deletes each event when
  the hub acknowledges its id; resends what was not acknowledged.
* status: a retained "online" message with the last will "offline"; STATE/hub.json
  whenever the hub is heard from (edge.fleet.policy); a metrics endpoint on loopback.

The daemon notices each applied batch by the gallery's generation and reloads
within its poll interval, without a restart. Like the daemon, the agent follows the
gallery's *path*: after a restore (the file moved aside, a backup imported in its
place) it applies the hub's changes to the file now there, from that file's own
sequence number (a snapshot for a gallery imported from a backup), never to the
file moved aside; while no file is there it applies nothing.
"""
from __future__ import annotations

import json
import logging
import queue
import threading
import time
import uuid
from pathlib import Path

from edge.exc import EdgeVerifyError, GalleryError
from edge.fleet import metrics, mqtt, names
from edge.fleet.bundle import Bundle
from edge.fleet.policy import Contact, write_contact
from edge.fleet.sitekey import SiteKeyError
from edge.fleet.spool import Spool, spool_path
from edge.gallery.store import file_id

log = logging.getLogger(__name__)

TICK_S = 0.1
REQUEST_TIMEOUT_S = 5.0
RESEND_S = 10.0
EVENT_BATCH = 100
BATCHES_PER_TICK = 5
STATUS_EVERY_S = 30.0
CONTACT_EVERY_S = 1.0


class Agent:
    def __init__(self, bundle: Bundle, state: Path, gallery, trace: Path | None = None,
                 metrics_address: tuple[str, int] | None = None, max_events: int = 100_000):
        self.bundle = bundle
        self.site, self.device = bundle.site, bundle.device
        self.state = Path(state)
        self.state.mkdir(parents=True, exist_ok=True)
        self.gallery = gallery  # the agent's from here on: it may reopen it (a restore), and closes it
        self.gallery_path = gallery.path
        self._reopen = gallery.reopen
        self.cipher = bundle.cipher()
        self.spool = Spool(spool_path(self.state), max_events)
        self.trace = open(trace, "a") if trace else None
        self.inbox: queue.Queue = queue.Queue()
        self.connected = False
        self.applied = self._position()
        self.head = self.applied
        self.requested_at: float | None = None
        self.snapshot_pages: dict = {}
        self.snapshot_id = None
        self.started = time.time()
        self.last_heard: float | None = None
        self.policy = dict(bundle.data["policy"])
        self.counts = {"changes_applied": 0, "snapshots": 0, "events_sent": 0, "sync_requests": 0, "gaps": 0,
                       "apply_errors": 0}
        self.last_lag_s = float("nan")
        self._contact_at = 0.0
        self._status_at = 0.0
        self._metrics_server = metrics.serve(metrics_address, self.collect) if metrics_address else None
        self._client = self._make_client()

    # ---- lifecycle ---------------------------------------------------------------------------

    def _make_client(self):
        cert, key = mqtt.write_client_files(self.state, self.bundle.data["cert"], self.bundle.data["key"])
        context = mqtt.tls_context(self.bundle.data["ca"], cert, key)
        will = (names.device(self.site, self.device, "status"), json.dumps({"state": "offline"}), 1, True)
        client = mqtt.client(f"kiosk-{self.device}", self.bundle.data["username"], self.bundle.data["password"],
                             context, will=will)
        client.on_connect = lambda c, u, flags, reason, props: self.inbox.put(("connect", reason))
        client.on_disconnect = lambda c, u, flags, reason, props: self.inbox.put(("disconnect", reason))
        client.on_message = lambda c, u, message: self.inbox.put(("message", message.topic, message.payload))
        return client

    def run(self, stop: threading.Event, until=None) -> int:
        """Work until ``stop`` is set (or ``until()`` is true); returns 0."""
        self._write_contact(force=True)
        host, port = self.bundle.broker
        self._client.connect_async(host, port, keepalive=mqtt.KEEPALIVE_S)
        self._client.loop_start()
        try:
            while not stop.is_set() and not (until and until()):
                self._drain(TICK_S)
                self._tick()
        finally:
            self.close()
        return 0

    def close(self) -> None:
        if self.connected:
            info = self._client.publish(names.device(self.site, self.device, "status"),
                                        json.dumps({"state": "offline", "time": time.time()}), qos=1, retain=True)
            info.wait_for_publish(timeout=2)
        self._client.disconnect()
        self._client.loop_stop()
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
        self.spool.close()
        if self.gallery is not None:
            self.gallery.close()
        if self.trace:
            self.trace.close()

    # ---- the worker ----------------------------------------------------------------------------

    def _drain(self, wait_s: float) -> None:
        try:
            item = self.inbox.get(timeout=wait_s)
        except queue.Empty:
            return
        while True:
            self._handle(item)
            try:
                item = self.inbox.get_nowait()
            except queue.Empty:
                return

    def _handle(self, item) -> None:
        kind = item[0]
        if kind == "connect":
            if item[1].is_failure:
                log.error("the broker refused this kiosk (%s): revoked, or wrong bundle?", item[1])
                return
            self._on_connect()
        elif kind == "disconnect":
            if self.connected:
                log.warning("lost the broker (%s); deciding on with the local gallery, events kept", item[1])
            self.connected = False
        else:
            try:
                self._on_message(item[1], json.loads(item[2]))
            except (ValueError, KeyError, TypeError) as error:
                log.error("ignored a malformed message on %s: %s", item[1], error)

    def _on_connect(self) -> None:
        self.connected = True
        for topic in (names.changes(self.site), names.head(self.site), names.device(self.site, self.device, "resp")):
            self._client.subscribe(topic, qos=1)
        self.spool.unsent()
        self._publish_status()
        self._request()
        log.info("connected to the broker as %s of site %s; at change %d", self.device, self.site, self.applied)

    def _tick(self) -> None:
        now = time.time()
        self._follow_gallery()
        if self.connected:
            if self.requested_at is not None and now - self.requested_at > REQUEST_TIMEOUT_S:
                self._request()
            self._send_events()
            if now - self._status_at > STATUS_EVERY_S:
                self._publish_status()
        self._write_contact()

    def _on_message(self, topic: str, message: dict) -> None:
        self._heard()
        if topic == names.changes(self.site):
            self.head = max(self.head, int(message["seq"]))
            self._apply([message])
        elif topic == names.head(self.site):
            self.head = max(self.head, int(message["seq"]))
            self.policy = {"offline_policy": message.get("offline_policy", self.policy["offline_policy"]),
                           "max_silence_s": message.get("max_silence_s", self.policy["max_silence_s"])}
            if int(message["seq"]) < self.applied:
                log.error("the hub is at change %s but this kiosk applied %d (hub restored from a backup?); "
                          "asking for a snapshot", message["seq"], self.applied)
                self._request(after=0)
            elif self.head > self.applied and self.requested_at is None:
                self._request()
        else:
            self._on_answer(message)

    def _on_answer(self, message: dict) -> None:
        kind = message.get("type")
        if kind == "ack":
            self.spool.ack([str(item) for item in message["ids"]])
        elif kind == "changes":
            self.requested_at = None
            self.head = max(self.head, int(message["head"]))
            self._apply(message["changes"])
            if self.head > self.applied:
                self._request()
        elif kind == "snapshot":
            self._snapshot_page(message)
        elif kind == "refused":
            log.error("the hub refused this kiosk: %s", message.get("reason"))

    # ---- sync ----------------------------------------------------------------------------------

    def _request(self, after: int | None = None) -> None:
        if not self.connected:
            return
        after = self.applied if after is None else after
        self._client.publish(names.device(self.site, self.device, "req"),
                             json.dumps({"type": "sync", "after": after, "id": uuid.uuid4().hex}), qos=1)
        self.requested_at = time.time()
        self.counts["sync_requests"] += 1

    def _apply(self, changes: list[dict]) -> None:
        """Apply the run of changes that continues from the gallery's number; ask again on a gap."""
        if not self._follow_gallery():
            return
        run = []
        for change in sorted(changes, key=lambda item: int(item["seq"])):
            seq = int(change["seq"])
            if seq <= self.applied + len(run):
                continue  # applied already: never twice
            if seq != self.applied + len(run) + 1:
                self.counts["gaps"] += 1
                break
            run.append(change)
        if run:
            try:
                steps = [self._step(change) for change in run]
                self.applied = self.gallery.apply_fleet_changes(self.site, self.applied, steps, self._actor())
            except (GalleryError, SiteKeyError) as error:
                self.counts["apply_errors"] += 1
                log.error("could not apply changes %d..%d: %s", run[0]["seq"], run[-1]["seq"], error)
                self.applied = self._position()
                self._request()
                return
            self._applied(run)
        if self.head > self.applied and self.requested_at is None:
            self._request()

    def _step(self, change: dict) -> dict:
        seq, kind = int(change["seq"]), change["kind"]
        if change.get("site", self.site) != self.site:
            raise GalleryError(f"change {seq} is for site {change.get('site')!r}")
        if kind == "remove":
            return {"seq": seq, "kind": "remove", "person": change["person"]}
        if kind == "add" and change.get("redacted"):
            return {"seq": seq, "kind": "skip"}
        if kind == "add":
            return {"seq": seq, "kind": "add", "person": change["person"], "name": change["name"],
                    "model": change["model"], "vectors": self._open(change)}
        raise GalleryError(f"change {seq} has an unknown kind {kind!r}")

    def _open(self, person: dict) -> list:
        return [self.cipher.open(item, person["person"], person["name"], person["model"], int(person["dim"]))
                for item in person["templates"]]

    def _applied(self, run: list[dict]) -> None:
        now = time.time()
        self.counts["changes_applied"] += len(run)
        committed = run[-1].get("committed_at")
        if committed is not None:
            self.last_lag_s = now - float(committed)
        if self.trace:
            for change in run:
                self.trace.write(json.dumps({"seq": change["seq"], "kind": change["kind"],
                                             "committed_at": change.get("committed_at"), "applied_at": now}) + "\n")
            self.trace.flush()
        log.info("applied changes up to %d", self.applied)

    def _snapshot_page(self, message: dict) -> None:
        if message["snapshot"] != self.snapshot_id:
            self.snapshot_id, self.snapshot_pages = message["snapshot"], {}
        self.snapshot_pages[int(message["page"])] = message["people"]
        if len(self.snapshot_pages) < int(message["pages"]):
            return
        people = [person for page in sorted(self.snapshot_pages) for person in self.snapshot_pages[page]]
        self.snapshot_id, self.snapshot_pages = None, {}
        self.requested_at = None
        if not self._follow_gallery():
            return
        try:
            ready = [{"person": person["person"], "name": person["name"], "model": person["model"],
                      "vectors": self._open(person)} for person in people]
            self.applied = self.gallery.apply_fleet_snapshot(self.site, int(message["seq"]), ready, self._actor())
        except (GalleryError, SiteKeyError) as error:
            self.counts["apply_errors"] += 1
            log.error("could not apply the snapshot at change %s: %s", message["seq"], error)
            return
        self.counts["snapshots"] += 1
        self.head = max(self.head, self.applied)
        self._applied([{"seq": self.applied, "kind": "snapshot", "committed_at": None}])
        self._request()

    def _follow_gallery(self) -> bool:
        """Keep to the gallery file at the path, as the daemon does (edge/daemon/watch.py); True while
        one is open. A file found there after a restore starts from its own position; one that does
        not open (damaged, another key, another site) raises: the agent stops, the door decides on."""
        if self.gallery is not None and not self.gallery.replaced():
            return True
        if self.gallery is not None:
            self.gallery.close()
            self.gallery = None
            log.warning("the gallery file %s was moved, deleted or replaced (a restore?): no change is applied "
                        "until a gallery is there", self.gallery_path)
        if file_id(self.gallery_path) is None:
            return False
        self.gallery = self._reopen()
        self.applied = self._position()
        self.snapshot_id, self.snapshot_pages = None, {}
        log.warning("reading the gallery now at %s: at change %d of site %s", self.gallery_path, self.applied,
                    self.site)
        self._request()
        return True

    def _position(self) -> int:
        site, seq = self.gallery.fleet_position()
        if site is not None and site != self.site:
            raise GalleryError(f"gallery {self.gallery.path} follows site {site!r}, this kiosk is provisioned for "
                               f"{self.site!r}: use a new gallery file for the new site")
        return seq

    def _actor(self) -> str:
        return f"fleet agent {self.device} (site {self.site})"

    # ---- events and status ---------------------------------------------------------------------

    def _send_events(self) -> None:
        topic = names.device(self.site, self.device, "events")
        for _ in range(BATCHES_PER_TICK):
            batch = self.spool.due(EVENT_BATCH, RESEND_S)
            if not batch:
                return
            self._client.publish(topic, json.dumps({"events": batch}, separators=(",", ":")), qos=1)
            self.counts["events_sent"] += len(batch)
            if len(batch) < EVENT_BATCH:
                return

    def _publish_status(self) -> None:
        self._status_at = time.time()
        counters = self.spool.counters()
        status = {"state": "online", "time": self._status_at, "seq": self.applied,
                  "spool": self.spool.depth(), "dropped": int(counters.get("dropped", 0))}
        self._client.publish(names.device(self.site, self.device, "status"), json.dumps(status), qos=1, retain=True)

    def _heard(self) -> None:
        self.last_heard = time.time()

    def _write_contact(self, force: bool = False) -> None:
        now = time.time()
        if not force and now - self._contact_at < CONTACT_EVERY_S:
            return
        self._contact_at = now
        write_contact(self.state, Contact(self.site, self.policy["offline_policy"],
                                          float(self.policy["max_silence_s"]), self.last_heard, self.started))

    # ---- metrics -------------------------------------------------------------------------------

    def collect(self) -> list[tuple]:
        counters = self.spool_counters()
        now = time.time()
        silence = now - (self.last_heard if self.last_heard is not None else self.started)
        latency_count = counters.get("daemon_latency_count", 0)
        return [
            ("edge_kiosk_frames_total", "counter", "frames the daemon read", counters.get("daemon_frames", 0)),
            ("edge_kiosk_faces_total", "counter", "faces the daemon judged", counters.get("daemon_faces", 0)),
            ("edge_kiosk_unlocks_total", "counter", "door unlocks", counters.get("daemon_unlocks", 0)),
            ("edge_kiosk_refusals_total", "counter", "faces judged that did not open the door",
             counters.get("daemon_refusals", 0)),
            ("edge_kiosk_decision_latency_ms_sum", "counter", "sum of decode-to-decision latencies (ms)",
             counters.get("daemon_latency_sum_ms", 0)),
            ("edge_kiosk_decision_latency_ms_count", "counter", "decisions timed", latency_count),
            ("edge_fleet_connected", "gauge", "1 while connected to the site's broker", int(self.connected)),
            ("edge_fleet_applied_seq", "gauge", "last change of the site applied to the gallery", self.applied),
            ("edge_fleet_hub_seq", "gauge", "last change the hub announced", self.head),
            ("edge_fleet_sync_behind", "gauge", "changes announced but not applied yet", self.head - self.applied),
            ("edge_fleet_sync_lag_seconds", "gauge", "hub commit to local apply, last change", self.last_lag_s),
            ("edge_fleet_hub_silence_seconds", "gauge", "seconds since the hub was last heard", silence),
            ("edge_fleet_spool_depth", "gauge", "events waiting for the hub's acknowledgement",
             counters.get("_depth", 0)),
            ("edge_fleet_events_dropped_total", "counter", "events dropped because the spool was full",
             counters.get("dropped", 0)),
            ("edge_fleet_events_acked_total", "counter", "events the hub acknowledged", counters.get("acked", 0)),
            ("edge_fleet_changes_applied_total", "counter", "changes applied", self.counts["changes_applied"]),
            ("edge_fleet_sync_requests_total", "counter", "sync requests sent", self.counts["sync_requests"]),
        ]

    def spool_counters(self) -> dict:
        # The metrics thread reads through its own connection: the worker's is not shared across threads.
        reader = Spool(self.spool.path, self.spool.max_events)
        try:
            return {**reader.counters(), "_depth": reader.depth()}
        except EdgeVerifyError:
            return {}
        finally:
            reader.close()
