"""Enrollment at a kiosk of a fleet: the kiosk's capture and checks, the site's decision.

``HubSite`` gives edge.enroll.capture.enroll a gallery that lives at the hub: the
kiosk runs the quality gates and the one-person check on its own frames as always,
then seals the templates under the site key and sends them to the hub over its own
MQTT account (edge/SITE/device/DEV/req). The hub checks again (one person, the same
face under another name anywhere on the site, the name already enrolled: a
conflict with another door is refused there, never overwritten) and commits; the
change then reaches every kiosk, this one included, through the feed. The kiosk's
gallery is never written here.
"""
from __future__ import annotations

import json
import queue
import uuid
from pathlib import Path

import numpy as np

from edge.exc import DuplicateFaceError, EnrollmentError
from edge.fleet import mqtt, names
from edge.fleet.bundle import Bundle
from edge.fleet.errors import EnrollConflict, HubUnavailable

ANSWER_TIMEOUT_S = 30.0
REFUSALS = {"conflict": EnrollConflict, "duplicate": DuplicateFaceError, "refused": EnrollmentError}


class HubSite:
    """The gallery interface of edge.enroll.capture.enroll, answered by the site's hub."""

    def __init__(self, bundle: Bundle, folder: Path, force: bool = False, timeout_s: float = ANSWER_TIMEOUT_S):
        self.bundle, self.folder, self.force, self.timeout_s = bundle, Path(folder), force, timeout_s
        self.cipher = bundle.cipher()
        self.path = f"site {bundle.site} (hub)"
        self.answer: dict | None = None

    def list_people(self) -> list[dict]:
        return []  # the hub decides whether the name is taken, under its lock

    def load_matrix(self, model: str | None = None):
        return [], np.zeros(0, dtype=np.intp), np.zeros((0, 0), np.float32)  # duplicates: checked at the hub

    def add_person_templates(self, name: str, vectors, model: str, actor: str, quality=None, *, append: bool = False,
                             audit_details: dict | None = None) -> int:
        matrix = np.asarray(vectors, dtype=np.float32)
        person = uuid.uuid4().hex
        request = {"type": "enroll", "id": uuid.uuid4().hex, "name": name, "person": person, "model": model,
                   "dim": int(matrix.shape[1]), "force": bool(self.force), "actor": actor,
                   "templates": [self.cipher.seal(vector, person, name, uuid.uuid4().hex, model) for vector in matrix]}
        self.answer = self._ask(request)
        if not self.answer.get("ok"):
            error = REFUSALS.get(self.answer.get("why"), EnrollmentError)
            raise error(f"the hub refused: {self.answer.get('reason')}")
        return int(self.answer["templates"])

    def _ask(self, request: dict) -> dict:
        site, device = self.bundle.site, self.bundle.device
        cert, key = mqtt.write_client_files(self.folder, self.bundle.data["cert"], self.bundle.data["key"])
        answers: queue.Queue = queue.Queue()
        client = mqtt.client(f"enroll-{device}-{request['id'][:8]}", self.bundle.data["username"],
                             self.bundle.data["password"], mqtt.tls_context(self.bundle.data["ca"], cert, key))

        def connected(c, userdata, flags, reason, properties):
            if reason.is_failure:
                answers.put({"ok": False, "why": "broker", "reason": f"the broker refused this kiosk ({reason})"})
                return
            c.subscribe(names.device(site, device, "resp"), qos=1)

        def subscribed(c, userdata, mid, reasons, properties):
            c.publish(names.device(site, device, "req"), json.dumps(request), qos=1)

        def message(c, userdata, item):
            try:
                answer = json.loads(item.payload)
            except ValueError:
                return
            if answer.get("type") == "enroll-result" and answer.get("id") == request["id"]:
                answers.put(answer)

        client.on_connect, client.on_subscribe, client.on_message = connected, subscribed, message
        host, port = self.bundle.broker
        try:
            client.connect(host, port, keepalive=mqtt.KEEPALIVE_S)
        except OSError as error:
            raise HubUnavailable(f"cannot reach the site's broker {host}:{port} ({error}); nothing was enrolled. "
                                 "Enroll when the network is back, or at the hub") from None
        client.loop_start()
        try:
            answer = answers.get(timeout=self.timeout_s)
        except queue.Empty:
            raise HubUnavailable(f"the hub did not answer within {self.timeout_s:g} s; nothing is known to be "
                                 "enrolled: check `edge-verify hub list` before trying again") from None
        finally:
            client.disconnect()
            client.loop_stop()
        if answer.get("why") == "broker":
            raise HubUnavailable(answer["reason"])
        return answer
