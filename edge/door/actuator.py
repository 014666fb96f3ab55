"""What the daemon and the selftest need from a door, whatever drives the lock.

A door kind (``[door] kind`` in the config; edge.door.KINDS) opens an object of
this interface from the daemon's settings. Every kind keeps one promise: the door
is LOCKED unless an unlock pulse is running, from the moment it is opened until
after ``close()``, and a pulse always ends by itself. The daemon only ever calls
``unlock_pulse()`` for a decided unlock and ``lock()`` on any fault; it stops
(door locked) when ``fault`` is set.
"""
from __future__ import annotations

import signal
from abc import ABC, abstractmethod
from typing import Callable, Optional


class Door(ABC):
    """A lock that is locked unless a bounded pulse runs.

    ``fault``: a one-line description once the lock failed to relock (None while
    all is well). ``on_exit_request``: called after a request-to-exit (an exit
    button) started a pulse, for the event log.
    """

    fault: Optional[str] = None
    on_exit_request: Optional[Callable[[], None]] = None

    @abstractmethod
    def unlock_pulse(self) -> None:
        """Open for the configured pulse, then relock by itself; a pulse during a pulse restarts the time."""

    @abstractmethod
    def lock(self) -> None:
        """Lock now, ending any pulse. Safe at any time, also after close()."""

    @abstractmethod
    def close(self) -> None:
        """Lock, then release the hardware. Idempotent."""

    @property
    @abstractmethod
    def is_locked(self) -> bool:
        """True unless a pulse is running."""

    @property
    def door_closed(self) -> Optional[bool]:
        """The door sensor: True while the door is shut, False while open, None without a sensor."""
        return None

    @property
    def exit_pressed(self) -> Optional[bool]:
        """The request-to-exit button: True while pressed, None without a button."""
        return None

    @property
    def simulated(self) -> bool:
        """True when nothing physical is switched (a dry run on mock hardware)."""
        return False

    @abstractmethod
    def describe(self) -> str:
        """What drives the lock, for logs and reports, e.g. "relay on BOARD11"."""

    def __enter__(self) -> "Door":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def install_signal_handlers(door: Door, signals=(signal.SIGTERM, signal.SIGINT, signal.SIGHUP)):
    """Make SIGTERM/SIGINT/SIGHUP lock the door at once, then exit through SystemExit.

    Locking happens inside the handler, before any other shutdown work, so a
    slow or failing shutdown cannot leave the door open; SystemExit then runs
    the ``finally`` blocks and ``close()``. SIGTERM (``systemctl stop``) exits
    with status 0, the others with 128 + the signal number. Must be called from
    the main thread. Returns the handler (so tests can call it directly).
    """

    def relock_and_exit(signum, frame):
        door.lock()
        raise SystemExit(0 if signum == signal.SIGTERM else 128 + signum)

    for signum in signals:
        signal.signal(signum, relock_and_exit)
    return relock_and_exit
