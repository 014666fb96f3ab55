"""systemd's sd_notify protocol over $NOTIFY_SOCKET, with no dependency.

The unit is ``Type=notify`` with ``WatchdogSec=``: the daemon calls ``ready()``
once the camera, engine and lock are up, ``watchdog()`` at least every
``watchdog_interval() / 2`` seconds while the frame loop is healthy, and
``status(text)`` for what ``systemctl status`` shows. Outside systemd
(``$NOTIFY_SOCKET`` unset) every call does nothing and returns False, so the same
code runs from a terminal.

The protocol: one datagram of newline-separated ``KEY=VALUE`` lines sent to the
AF_UNIX socket named in ``$NOTIFY_SOCKET``; a name starting with ``@`` is in the
abstract namespace (a leading NUL byte).
"""
from __future__ import annotations

import os
import socket
from typing import Optional

ENV_SOCKET = "NOTIFY_SOCKET"


def _address(name: str) -> Optional[str]:
    if name.startswith("@"):
        return "\0" + name[1:]
    if name.startswith("/"):
        return name
    return None  # vsock addresses ("vsock:...") are for VMs, not a kiosk


def notify(*fields: str) -> bool:
    """Send ``KEY=VALUE`` fields in one datagram; True if systemd got them.

    A failure to send is not an error for the caller: the watchdog will notice
    a daemon that really cannot talk to systemd.
    """
    name = os.environ.get(ENV_SOCKET)
    if not name:
        return False
    address = _address(name)
    if address is None:
        return False
    message = "\n".join(fields).encode("utf-8")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            # Never block the door loop on systemd: with a full queue the message is
            # dropped, and a daemon that truly cannot reach systemd is caught by the watchdog.
            sock.sendto(message, socket.MSG_DONTWAIT, address)
    except OSError:
        return False
    return True


def ready(status_text: Optional[str] = None) -> bool:
    fields = ["READY=1"]
    if status_text:
        fields.append(_status_field(status_text))
    return notify(*fields)


def stopping(status_text: Optional[str] = None) -> bool:
    return notify("STOPPING=1", *([_status_field(status_text)] if status_text else []))


def watchdog() -> bool:
    return notify("WATCHDOG=1")


def status(text: str) -> bool:
    return notify(_status_field(text))


def _status_field(text: str) -> str:
    # One datagram line per field: a newline inside would start a bogus field.
    return "STATUS=" + " ".join(str(text).splitlines())


def watchdog_interval() -> Optional[float]:
    """The watchdog period in seconds from $WATCHDOG_USEC, or None when not watched.

    ``$WATCHDOG_PID``, when set, names the process the watchdog is meant for; a
    child process that inherited the environment gets None.
    """
    usec = os.environ.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = os.environ.get("WATCHDOG_PID")
    if pid and pid.strip() != str(os.getpid()):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 1_000_000 if value > 0 else None
