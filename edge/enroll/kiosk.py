"""Enrollment frames at a kiosk: from the running door daemon, with the door held locked.

While the daemon runs it holds the camera, so `edge-verify enroll --camera` and the
console take their frames from it (edge.daemon.share), and ask it to keep the door
locked until the enrollment ends: a person half enrolled must not be let in by a
decision made on a gallery in the middle of changing, and the installer's frames are
not visits. The hold ends when the enrollment ends, also when it fails or its process
dies (the daemon ends a hold when its connection closes). Without a daemon, the
camera is opened directly, as before.
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional

from edge.daemon.share import ShareClient
from edge.enroll.capture import Shot, camera_shots
from edge.exc import SourceError
from edge.vision.image import to_rgb

DAEMON = "daemon"  # `--camera daemon`: the running daemon's camera, whatever it is
WAIT_S = 2.0


def daemon_shots(client: ShareClient, timeout_s: float = 30.0, interval_s: float = 0.3,
                 clock: Callable[[], float] = time.monotonic, stop: Optional[threading.Event] = None) -> Iterator[Shot]:
    """The daemon's newest frames, at most one per ``interval_s``, for ``timeout_s`` seconds (or until ``stop``)."""
    deadline = clock() + timeout_s
    seq = 0
    while clock() < deadline and not (stop is not None and stop.is_set()):
        frame = client.frame(after=seq, form="raw", wait_s=min(WAIT_S, max(deadline - clock(), 0.05)))
        if frame is None:
            yield Shot("daemon", None, f"no frame from the door daemon for {WAIT_S:g} s (camera problem?)")
            continue
        seq = frame.seq
        label = f"frame {frame.meta['frame']}"
        yield Shot(label, to_rgb(frame.bgr(), source=f"the daemon's {label}"))
        if interval_s > 0:
            time.sleep(min(interval_s, max(deadline - clock(), 0.0)))


@contextmanager
def kiosk_frames(uri: str, socket_path: Path, who: str, why: str, timeout_s: float = 30.0, interval_s: float = 0.3,
                 report: Callable[[str], None] = lambda message: None,
                 stop: Optional[threading.Event] = None) -> Iterator[Iterator[Shot]]:
    """Frames of ``uri`` for an enrollment: the daemon's, door held locked, when a daemon answers on
    ``socket_path`` with this camera (or ``uri`` is "daemon"); else straight from the camera."""
    client = ShareClient.running(socket_path)
    if client is None:
        if uri == DAEMON:
            raise SourceError(f"no door daemon answers on {socket_path}: start it, or give the camera's URI")
        yield camera_shots(uri, timeout_s, interval_s)
        return
    with client:
        running = client.status().get("source")
        if uri not in (DAEMON, running):
            client.close()
            yield camera_shots(uri, timeout_s, interval_s)
            return
        reason = client.hold(who, why)
        report(f"the door daemon is running: frames come from its camera {running}; {reason} until the "
               "enrollment ends")
        try:
            yield daemon_shots(client, timeout_s, interval_s, stop=stop)
        finally:
            try:
                client.release()
            except SourceError:
                pass  # the daemon is gone: its hold went with the connection
