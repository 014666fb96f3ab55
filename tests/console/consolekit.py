"""Pieces for the console tests: a console served on a thread, a real daemon in a process (its relay
on a RecordingPin whose history outlives it), HTTPS requests without a browser."""
from __future__ import annotations

import http.client
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TESTS / "daemon"))

from daemonkit import PIN, PIN_LOG_ENV, read_pin_log  # noqa: E402

from edge.console.kiosk import KioskConsole  # noqa: E402
from edge.console.serve import RunningConsole  # noqa: E402
from edge.console.settings import ConsoleSettings  # noqa: E402
from edge.console.tls import make_certificate  # noqa: E402
from edge.daemon import config  # noqa: E402
from edge.daemon.share import ShareClient  # noqa: E402
from edge.gallery.auth import set_token, token_path  # noqa: E402

LAUNCHER = TESTS / "daemon" / "recorded_run.py"
TOKEN = "console-test-token"


def kiosk_settings(folder: Path, gallery: Path, key: Path, source: str = "file:///nonexistent.avi", **values):
    base = {"source.uri": source, "door.pin": PIN, "door.pulse_s": 1.0, "gallery.path": str(gallery),
            "gallery.key": str(key), "events.stdout": False, "events.file": str(folder / "events.jsonl"),
            "console.daemon_socket": str(folder / "d.sock"), "console.enabled": True, "decision.liveness": "off"}
    base.update(values)
    return config.resolve(base, {}, origin="the test")


def certificate(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "console" / "cert.pem", folder / "console" / "key.pem"
    if not cert.exists():
        make_certificate(cert, key, ["127.0.0.1", "localhost"])
    return cert, key


def serve_console(folder: Path, settings, pipeline=None, address: str = "127.0.0.1", idle_s: float = 900.0):
    """A KioskConsole on an ephemeral port, started; close() it after."""
    cert, key = certificate(folder)
    console = ConsoleSettings(True, address, 0, cert, key, idle_s)
    gallery = Path(settings["gallery.path"])
    if not token_path(gallery).exists():
        set_token(token_path(gallery), TOKEN)
    return RunningConsole(KioskConsole(settings, idle_s, pipeline=pipeline), console).start()


class Client:
    """HTTPS requests to the console with its cookies, like a browser that runs no script."""

    def __init__(self, running, host: str = "127.0.0.1"):
        self.host, self.port = host, running.port
        self.cookies: dict = {}
        self.context = ssl._create_unverified_context()

    def request(self, method: str, path: str, form: dict | None = None, headers: dict | None = None,
                body: bytes | None = None):
        connection = http.client.HTTPSConnection(self.host, self.port, context=self.context, timeout=30)
        sent = dict(headers or {})
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        if form is not None:
            body = "&".join(f"{name}={_quote(value)}" for name, value in form.items()).encode()
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        connection.request(method, path, body=body, headers=sent)
        response = connection.getresponse()
        data = response.read()
        for header in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = header.partition("=")
            value = rest.split(";", 1)[0]
            if "Max-Age=0" in header:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        connection.close()
        return response, data.decode("utf-8", "replace") if not response.headers.get(
            "Content-Type", "").startswith("image/") else data

    def csrf(self, page: str) -> str:
        return re.search(r'name="csrf" value="([^"]+)"', page).group(1)

    def login(self, token: str = TOKEN):
        _, page = self.request("GET", "/login")
        return self.request("POST", "/login", {"csrf": self.csrf(page), "token": token})

    def page_csrf(self, path: str = "/people") -> str:
        _, page = self.request("GET", path)
        return self.csrf(page)


def _quote(value) -> str:
    from urllib.parse import quote_plus

    return quote_plus(str(value))


# ---- a real daemon in its own process ------------------------------------------------------------------

def start_daemon(folder: Path, settings_file_values: dict, pin_log: Path, timeout_s: float = 60.0):
    """`edge-verify run` on the settings (a config file is written), its relay on a RecordingPin; returns the
    process once its socket answers."""
    lines = []
    sections: dict = {}
    for name, value in settings_file_values.items():
        section, key = name.split(".", 1)
        sections.setdefault(section, {})[key] = value
    for section, table in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in table.items()]
    path = folder / "daemon.toml"
    path.write_text("\n".join(lines) + "\n")
    env = {**os.environ, PIN_LOG_ENV: str(pin_log), "PYTHONUNBUFFERED": "1"}
    log = open(folder / "daemon.log", "w")
    process = subprocess.Popen([sys.executable, str(LAUNCHER), "run", "--config", str(path)], env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    socket_path = Path(settings_file_values["console.daemon_socket"])
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the daemon exited {process.returncode}: {(folder / 'daemon.log').read_text()}")
        client = ShareClient.running(socket_path)
        if client is not None:
            client.close()
            return process
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"the daemon did not answer on {socket_path}: {(folder / 'daemon.log').read_text()}")


def stop_daemon(process) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()
    return process.returncode


def relay_levels(pin_log: Path) -> list[tuple[float, bool]]:
    """(monotonic time, relay level) of every change of the relay pin."""
    return [(entry["t"], entry["state"]) for entry in read_pin_log(pin_log) if entry["what"] == "state"]


def openings_between(levels, start: float, end: float) -> list[float]:
    return [moment for moment, state in levels if state and start <= moment <= end]
