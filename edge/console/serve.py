"""Starting a console: the checks before anything is served, and the server's thread.

The console refuses to start unless ``[console] enabled = true``, its certificate and
key exist (`edge-verify console init-cert`), and its address is loopback or one of this
machine's interfaces (edge.console.settings). Plain HTTP is never served.
"""
from __future__ import annotations

import logging
import threading
from typing import Optional

from edge.console.settings import ConsoleSettings
from edge.console.web import ConsoleServer, tls_context
from edge.exc import ConfigError

log = logging.getLogger(__name__)


class RunningConsole:
    """A console served on its own thread (``edge-verify console serve`` waits on it)."""

    def __init__(self, app, console: ConsoleSettings, where: str = "the config file"):
        check_ready(console, where)
        try:
            context = tls_context(console.certificate, console.private_key)
        except (OSError, ValueError) as error:
            raise ConfigError(f"cannot load the console's certificate {console.certificate} and key "
                              f"{console.private_key}: {error}; make new ones with `edge-verify console init-cert "
                              "--force`") from None
        try:
            self.server = ConsoleServer((console.address, console.port), app, context)
        except OSError as error:
            raise ConfigError(f"cannot listen on {console.address}:{console.port}: {error.strerror or error} "
                              "([console] listen and port)") from None
        self.app = app
        self.port = self.server.server_address[1]
        host = f"[{console.address}]" if ":" in console.address else console.address
        self.url = f"https://{host}:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.5},
                                        name="console", daemon=True)

    def start(self) -> "RunningConsole":
        self._thread.start()
        log.info("console at %s", self.url)
        return self

    def wait(self, stop: threading.Event) -> None:
        stop.wait()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "RunningConsole":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.close()


def check_ready(console: ConsoleSettings, where: str) -> None:
    if not console.enabled:
        raise ConfigError(f"the console is off: set [console] enabled = true in {where} to serve it")
    for path in (console.certificate, console.private_key):
        if not path.is_file():
            raise ConfigError(f"no console certificate at {path}: make one with `edge-verify console init-cert` "
                              "(once, at install)")


def serve_until(console: RunningConsole, stop: Optional[threading.Event] = None) -> int:
    stop = stop or threading.Event()
    with console:
        console.wait(stop)
    return 0
