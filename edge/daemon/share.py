"""The daemon shares its camera: latest frames, faces and decisions over a local Unix socket.

While it runs, the daemon holds the camera (and the relay pin), so nothing else can
open them. Enrollment at a running kiosk (`edge-verify enroll --camera`, the console)
and the console's live view therefore take their frames from the daemon, through a
Unix socket in its state folder (``[console] daemon_socket``, default
$EDGE_VERIFY_HOME/daemon.sock), made mode 0660: root and the service's group only.
Nothing is served on the network.

Protocol: the client sends one JSON line; the daemon answers one JSON line, followed
by ``bytes`` bytes of payload when the answer says so. Requests (``op``):

``status``  what the daemon runs with: source, door, gallery, liveness, frames, hold.
``frame``   the newest frame after ``after`` (waits up to ``wait_s`` for it), as
            ``jpeg`` (the live view) or ``raw`` BGR bytes (enrollment: no JPEG loss
            in the templates), with its main face (box, landmarks), the other faces,
            the enrollment quality verdicts and the decision made on it.
``hold``    keep the door locked: no face unlocks the door while a hold is held (the
            decision is refused with the hold's reason, as a fleet veto is). A hold
            lasts until ``release`` or until its connection closes, so a crashed
            enrollment cannot leave it on; the exit button still works (people must
            always be able to leave). Start and end are logged and written as events.
``pulse``   a door test pulse through the daemon's own door, refused while a hold is
            on; only root or the daemon's own user may ask (peer credentials), and the
            console asks only for a logged-in admin. Written as an event.

Costs in the loop: ``publish`` keeps references only; the JPEG encoding, the quality
measures and everything else are done on the serving threads, only when asked for,
once per frame.
"""
from __future__ import annotations

import json
import logging
import os
import queue
import socket
import socketserver
import stat
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import cv2
import numpy as np

from edge import paths
from edge.enroll.quality import chip_measures, chip_pixels, face_count_gate, judge
from edge.events import event_time
from edge.exc import ConfigError, SourceError

log = logging.getLogger(__name__)

MAX_REQUEST = 4096
JPEG_QUALITY = 80
PULSE_WAIT_S = 10.0
UNIX_PATH_MAX = 107  # sun_path holds 108 bytes with the terminating NUL


def socket_path(settings) -> Path:
    """The daemon's sharing socket: ``[console] daemon_socket``, else $EDGE_VERIFY_HOME/daemon.sock."""
    configured = settings["console.daemon_socket"]
    return Path(configured).expanduser() if configured else paths.home() / "daemon.sock"


# ---- the daemon's side ----------------------------------------------------------------------------

@dataclass
class Snapshot:
    """One judged frame, as the loop left it (references only; see the module docstring)."""

    seq: int
    index: int
    image: np.ndarray
    taken: float  # wall clock
    sighting: object
    verdict: object
    live_score: Optional[float]
    latency_ms: Optional[float]
    _meta: Optional[dict] = None
    _encoded: dict = field(default_factory=dict)


@dataclass
class Hold:
    who: str
    why: str
    peer: str
    started: float  # monotonic
    ended: Optional[float] = None

    @property
    def reason(self) -> str:
        return f"door held locked: {self.why} ({self.who})"


class Request:
    """A request the loop thread must carry out (the door is driven from the loop only)."""

    def __init__(self, op: str, who: str, peer: str):
        self.op, self.who, self.peer = op, who, peer
        self.done = threading.Event()
        self.answer: dict = {}


class FrameShare:
    """The server: started by the daemon, fed by ``publish`` from the loop, asked by clients."""

    def __init__(self, path: Path, pipeline, describe: Callable[[], dict]):
        self.path = Path(path)
        self.pipeline = pipeline
        self.describe = describe  # the daemon's status fields (source, door, gallery, liveness)
        self.history: list[Hold] = []  # every hold of this run, kept for the tests and the console
        self._holds: list[Hold] = []
        self._latest: Optional[Snapshot] = None
        self._seq = 0
        self._changed = threading.Condition()
        self._requests: queue.Queue = queue.Queue()
        self._server: Optional[socketserver.UnixStreamServer] = None
        self._thread: Optional[threading.Thread] = None
        self._uid = os.geteuid()

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> "FrameShare":
        if len(os.fsencode(self.path)) > UNIX_PATH_MAX:
            raise ConfigError(f"[console] daemon_socket {self.path} is too long for a Unix socket "
                              f"(at most {UNIX_PATH_MAX} bytes); choose a shorter path")
        self._clear_stale()
        share = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                share._serve(self.connection, self.rfile)

        class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

            def server_bind(self):
                super().server_bind()
                # Before listen(): no client can connect while the mode is still the umask's.
                os.chmod(self.server_address, 0o660)

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._server = Server(str(self.path), Handler)
        except OSError as error:
            raise ConfigError(f"cannot serve the daemon's frames on {self.path}: {error.strerror or error}; check "
                              "[console] daemon_socket and that folder's permissions") from None
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="frame-share", daemon=True)
        self._thread.start()
        log.info("sharing frames on %s", self.path)
        return self

    def _clear_stale(self) -> None:
        """A socket file left by a killed daemon is removed; one that answers belongs to a running daemon."""
        try:
            mode = self.path.lstat().st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(mode):
            raise ConfigError(f"{self.path} exists and is not a socket; remove it or choose another "
                              "[console] daemon_socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(self.path))
        except OSError:
            self.path.unlink(missing_ok=True)
            return
        finally:
            probe.close()
        raise ConfigError(f"another daemon already serves {self.path}: only one daemon may drive this door")

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
            self.path.unlink(missing_ok=True)
        for request in self._drain():
            request.answer = {"ok": False, "error": "the daemon is stopping"}
            request.done.set()

    # -- fed by the loop --------------------------------------------------------------------------
    def publish(self, frame, sighting, verdict=None, live_score=None, latency_ms=None) -> None:
        with self._changed:
            self._seq += 1
            self._latest = Snapshot(self._seq, frame.index, frame.image, time.time(), sighting, verdict, live_score,
                                    latency_ms)
            self._changed.notify_all()

    def veto(self) -> Optional[str]:
        """The reason unlocks are refused now (a hold), or None."""
        holds = self._holds
        return holds[0].reason if holds else None

    def serve_requests(self, door, record: Callable[[dict], None]) -> None:
        """Carry out queued door requests on the loop's thread; ``record`` writes an event."""
        for request in self._drain():
            try:
                if isinstance(request, _NoteRequest):
                    record(request.event)
                else:
                    request.answer = self._pulse(request, door, record)
            finally:
                request.done.set()

    def _drain(self) -> list:
        items = []
        while True:
            try:
                items.append(self._requests.get_nowait())
            except queue.Empty:
                return items

    def _pulse(self, request: Request, door, record) -> dict:
        held = self.veto()
        if held is not None:
            log.warning("door test pulse asked by %s (%s) refused: %s", request.who, request.peer, held)
            return {"ok": False, "error": f"refused: {held}"}
        door.unlock_pulse()
        log.warning("door test pulse by %s (%s)", request.who, request.peer)
        record(_note(f"door test pulse by {request.who}", unlock=True))
        return {"ok": True, "door": door.describe()}

    # -- holds --------------------------------------------------------------------------------------
    def _hold(self, who: str, why: str, peer: str) -> Hold:
        hold = Hold(who, why, peer, time.monotonic())
        self._holds.append(hold)
        self.history.append(hold)
        log.warning("%s: no face unlocks the door until it ends (asked by %s)", hold.reason, peer)
        self._requests.put(_NoteRequest(_note(f"{hold.reason}: started")))
        return hold

    def _release(self, hold: Hold) -> None:
        if hold.ended is not None:
            return
        hold.ended = time.monotonic()
        self._holds.remove(hold)
        log.warning("%s: ended after %.1f s", hold.reason, hold.ended - hold.started)
        self._requests.put(_NoteRequest(_note(f"{hold.reason}: ended after {hold.ended - hold.started:.1f} s")))

    # -- one client ---------------------------------------------------------------------------------
    def _serve(self, connection: socket.socket, reader) -> None:
        peer = _peer(connection)
        holds: list[Hold] = []
        try:
            while True:
                line = reader.readline(MAX_REQUEST + 1)
                if not line:
                    return
                if len(line) > MAX_REQUEST:
                    _answer(connection, {"ok": False, "error": "request too long"})
                    return
                try:
                    request = json.loads(line)
                    if not isinstance(request, dict):
                        raise ValueError("not an object")
                except ValueError as error:
                    _answer(connection, {"ok": False, "error": f"not a JSON request: {error}"})
                    return
                self._dispatch(connection, request, peer, holds)
        except (BrokenPipeError, ConnectionResetError):
            return
        finally:
            for hold in holds:
                self._release(hold)

    def _dispatch(self, connection, request: dict, peer: dict, holds: list) -> None:
        op = request.get("op")
        who = str(request.get("who") or f"pid {peer['pid']}")[:200]
        if op == "status":
            _answer(connection, {"ok": True, **self.describe(), "held": self.veto(), "frames": self._seq})
        elif op == "frame":
            self._send_frame(connection, request)
        elif op == "hold":
            holds.append(self._hold(who, str(request.get("why") or "held")[:200], _peer_text(peer)))
            _answer(connection, {"ok": True, "held": holds[-1].reason})
        elif op == "release":
            for hold in holds:
                self._release(hold)
            holds.clear()
            _answer(connection, {"ok": True})
        elif op == "pulse":
            if peer["uid"] not in (0, self._uid):
                _answer(connection, {"ok": False, "error": "only root or the daemon's user may pulse the door"})
                return
            job = Request("pulse", who, _peer_text(peer))
            self._requests.put(job)
            if not job.done.wait(PULSE_WAIT_S):
                _answer(connection, {"ok": False, "error": "the daemon did not get to the request in time"})
                return
            _answer(connection, job.answer)
        else:
            _answer(connection, {"ok": False, "error": f"unknown request {op!r}"})

    def _send_frame(self, connection, request: dict) -> None:
        after = int(request.get("after") or 0)
        wait_s = min(max(float(request.get("wait_s") or 0.0), 0.0), 10.0)
        form = request.get("format", "jpeg")
        if form not in ("jpeg", "raw", "none"):
            _answer(connection, {"ok": False, "error": f"unknown frame format {form!r}"})
            return
        with self._changed:
            self._changed.wait_for(lambda: self._latest is not None and self._latest.seq > after, timeout=wait_s)
            snapshot = self._latest
        if snapshot is None or snapshot.seq <= after:
            _answer(connection, {"ok": False, "error": "no new frame", "seq": snapshot.seq if snapshot else 0})
            return
        meta = self._meta(snapshot)
        payload = self._encoded(snapshot, form)
        _answer(connection, {"ok": True, **meta, "held": self.veto(), "format": form, "bytes": len(payload)}, payload)

    def _encoded(self, snapshot: Snapshot, form: str) -> bytes:
        if form == "none":
            return b""
        if form not in snapshot._encoded:
            if form == "jpeg":
                ok, data = cv2.imencode(".jpg", snapshot.image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
                snapshot._encoded[form] = data.tobytes() if ok else b""
            else:
                snapshot._encoded[form] = np.ascontiguousarray(snapshot.image, dtype=np.uint8).tobytes()
        return snapshot._encoded[form]

    def _meta(self, snapshot: Snapshot) -> dict:
        if snapshot._meta is None:
            snapshot._meta = frame_meta(snapshot, self.pipeline)
        return snapshot._meta


class _NoteRequest(Request):
    """An event for the loop to write (hold start and end): the event log is the loop's."""

    def __init__(self, event: dict):
        super().__init__("note", "daemon", "")
        self.event = event


def _note(reason: str, unlock: bool = False) -> dict:
    return {"time": event_time(), "person": None, "distance": None, "margin": None, "frames_agreed": 0,
            "unlock": unlock, "latency_ms": None, "read_ms": None, "reason": reason, "threshold": None,
            "frame": None, "face_px": None, "track": None, "frames_combined": 0}


def frame_meta(snapshot: Snapshot, pipeline) -> dict:
    """What the live view and enrollment see of one frame, in JSON terms."""
    image, sighting, verdict = snapshot.image, snapshot.sighting, snapshot.verdict
    height, width = image.shape[:2]
    faces = list(getattr(sighting, "faces", ()) or ())
    main = getattr(sighting, "face", None)
    meta = {"seq": snapshot.seq, "frame": snapshot.index, "time": snapshot.taken, "width": width, "height": height,
            "sighting": sighting.reason, "face": face_dict(main) if main is not None else None,
            "others": [face_dict(face) for face in faces if face is not main], "quality": None,
            "decision": None, "live_score": snapshot.live_score, "latency_ms": snapshot.latency_ms}
    chip = getattr(sighting, "chip", None)
    if main is not None and chip is not None:
        grey = chip_pixels(chip[0], pipeline.mean, pipeline.std)
        verdict_on_count = face_count_gate(faces or [main], image.shape)
        assessment = judge(main, chip[0], chip_measures(grey, pipeline.padding), len(faces) or 1, verdict_on_count)
        meta["quality"] = {"ok": assessment.ok, "measures": assessment.measures,
                           "gates": [{"name": gate.name, "ok": gate.ok, "reason": gate.reason}
                                     for gate in assessment.gates]}
    if verdict is not None:
        meta["decision"] = {"person": verdict.person, "unlock": verdict.unlock, "reason": verdict.reason,
                            "frames_agreed": verdict.frames_agreed, "distance": _finite(verdict.distance),
                            "track": verdict.track, "frames_combined": verdict.frames_combined}
    return meta


def face_dict(face) -> dict:
    return {"box": [round(float(value), 1) for value in face.box],
            "landmarks": [[round(float(x), 1), round(float(y), 1)] for x, y in np.asarray(face.landmarks).reshape(-1, 2)],
            "score": round(float(face.score), 4), "px": round(float(min(face.width, face.height)), 1)}


def _finite(value) -> Optional[float]:
    value = float(value)
    return round(value, 4) if np.isfinite(value) else None


def _answer(connection: socket.socket, header: dict, payload: bytes = b"") -> None:
    connection.sendall(json.dumps(header, default=_plain).encode() + b"\n" + payload)


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON")


def _peer(connection: socket.socket) -> dict:
    """The connecting process (SO_PEERCRED): who asked, for the log and the pulse rule."""
    raw = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return {"pid": pid, "uid": uid, "gid": gid}


def _peer_text(peer: dict) -> str:
    return f"pid {peer['pid']}, uid {peer['uid']}"


# ---- the clients' side ------------------------------------------------------------------------------

@dataclass
class SharedFrame:
    meta: dict
    payload: bytes

    @property
    def seq(self) -> int:
        return int(self.meta["seq"])

    def bgr(self) -> np.ndarray:
        """The frame as a BGR uint8 array (raw or JPEG payload)."""
        if self.meta["format"] == "raw":
            height, width = int(self.meta["height"]), int(self.meta["width"])
            return np.frombuffer(self.payload, dtype=np.uint8).reshape(height, width, 3)
        image = cv2.imdecode(np.frombuffer(self.payload, dtype=np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise SourceError("the daemon sent a frame that does not decode")
        return image


class ShareClient:
    """One connection to a running daemon's socket. Not thread-safe: one per thread (or a lock)."""

    def __init__(self, path: Path, timeout_s: float = 15.0):
        self.path = Path(path)
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._socket.settimeout(timeout_s)
        try:
            self._socket.connect(str(self.path))
        except OSError as error:
            self._socket.close()
            raise SourceError(f"the door daemon does not answer on {self.path} ({error.strerror or error}); is it "
                              "running (systemctl status edge-verify)?") from None
        self._reader = self._socket.makefile("rb")

    @classmethod
    def running(cls, path: Path) -> Optional["ShareClient"]:
        """A client when a daemon answers on ``path``, else None."""
        try:
            return cls(path)
        except SourceError:
            return None

    def ask(self, request: dict) -> tuple[dict, bytes]:
        try:
            self._socket.sendall(json.dumps(request).encode() + b"\n")
            line = self._reader.readline()
            if not line:
                raise SourceError(f"the door daemon closed {self.path} (stopped?)")
            header = json.loads(line)
            payload = self._reader.read(int(header.get("bytes") or 0)) if header.get("bytes") else b""
        except (OSError, ValueError) as error:
            raise SourceError(f"lost the door daemon on {self.path}: {error}") from None
        return header, payload

    def status(self) -> dict:
        return self.ask({"op": "status"})[0]

    def frame(self, after: int = 0, form: str = "jpeg", wait_s: float = 2.0) -> Optional[SharedFrame]:
        """The newest frame after ``after``, or None when none came within ``wait_s``."""
        header, payload = self.ask({"op": "frame", "after": after, "format": form, "wait_s": wait_s})
        if not header.get("ok"):
            if header.get("error") == "no new frame":
                return None
            raise SourceError(f"the door daemon refused a frame: {header.get('error')}")
        return SharedFrame(header, payload)

    def hold(self, who: str, why: str) -> str:
        """Keep the door locked until ``release()`` or ``close()``; returns the daemon's reason."""
        header, _ = self.ask({"op": "hold", "who": who, "why": why})
        if not header.get("ok"):
            raise SourceError(f"the door daemon refused to hold the door locked: {header.get('error')}")
        return header["held"]

    def release(self) -> None:
        self.ask({"op": "release"})

    def pulse(self, who: str) -> dict:
        return self.ask({"op": "pulse", "who": who})[0]

    def close(self) -> None:
        try:
            self._reader.close()
        finally:
            self._socket.close()

    def __enter__(self) -> "ShareClient":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
