"""A Prometheus text endpoint on loopback, for the kiosk agent and the hub.

``serve(address, collect)`` answers GET /metrics with ``collect()``, a list of
(name, kind, help, value) where value is a number or {label value: number} for one
label named by the metric's ``label``. The server runs in a daemon thread; stop it
with ``shutdown()``. Addresses other than loopback are refused: the figures name
doors and people counts, and nothing here authenticates the scraper.
"""
from __future__ import annotations

import ipaddress
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from edge.exc import ConfigError

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def parse_address(text: str) -> tuple[str, int]:
    host, _, port = str(text).rpartition(":")
    try:
        if not ipaddress.ip_address(host.strip("[]")).is_loopback:
            raise ValueError
        return host.strip("[]"), int(port)
    except ValueError:
        raise ConfigError(f"metrics address {text!r} must be a loopback address with a port, e.g. 127.0.0.1:9102 "
                          "(scrape it through a local agent or an SSH tunnel)") from None


def render(metrics: list[tuple]) -> str:
    lines = []
    for name, kind, help_text, value, *label in metrics:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        if isinstance(value, dict):
            key = label[0] if label else "name"
            for label_value, number in sorted(value.items()):
                escaped = str(label_value).replace("\\", "\\\\").replace('"', '\\"')
                lines.append(f'{name}{{{key}="{escaped}"}} {_number(number)}')
        else:
            lines.append(f"{name} {_number(value)}")
    return "\n".join(lines) + "\n"


def _number(value) -> str:
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(int(value)) if value.is_integer() and abs(value) < 2 ** 53 else repr(value)


def serve(address: tuple[str, int], collect: Callable[[], list]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404, "only /metrics here")
                return
            body = render(collect()).encode()
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # scrapes every few seconds would flood the journal
            return

    server = ThreadingHTTPServer(address, Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
