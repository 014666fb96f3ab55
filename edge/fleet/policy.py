"""What a kiosk does when it has not heard from the hub for too long: the site's policy.

The fleet agent writes STATE/hub.json each time it hears from the hub (the hub's
retained heartbeat comes every few seconds): when, the site's policy
(``keep``: go on deciding with the gallery as it is; ``lock``: refuse every
unlock) and how long a silence the policy allows (``max_silence_s``). The daemon
reads that file (at most once a second) before each unlock; the selftest shows it.
A kiosk that never heard from its hub counts its silence from the agent's start.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

from edge.gallery.files import write_private

FILE = "hub.json"
READ_EVERY_S = 1.0


@dataclass(frozen=True)
class Contact:
    site: str | None
    policy: str  # "keep" or "lock"
    max_silence_s: float
    last_heard: float | None  # epoch seconds
    since: float  # the agent's start, for a kiosk that never heard from its hub

    def silence_s(self, now: float) -> float:
        return max(0.0, now - (self.last_heard if self.last_heard is not None else self.since))

    def blocked(self, now: float) -> str | None:
        """Why unlocks are refused now, or None."""
        silence = self.silence_s(now)
        if self.policy == "lock" and silence > self.max_silence_s:
            return f"hub silent for {silence:.0f} s (> {self.max_silence_s:g} s): locked down by site policy"
        return None

    def describe(self, now: float) -> str:
        heard = "never" if self.last_heard is None else f"{self.silence_s(now):.0f} s ago"
        action = "lock down" if self.policy == "lock" else "keep deciding"
        return (f"site {self.site}: last heard from the hub {heard}; policy: {action} after "
                f"{self.max_silence_s:g} s of silence")


def write_contact(state: Path, contact: Contact) -> None:
    write_private(Path(state) / FILE, json.dumps(contact.__dict__).encode())


def read_contact(state: Path) -> Contact | None:
    """The last contact the agent wrote, or None (no agent has run with this state folder)."""
    try:
        data = json.loads((Path(state) / FILE).read_text())
        return Contact(data.get("site"), "lock" if data.get("policy") == "lock" else "keep",
                       float(data["max_silence_s"]), data.get("last_heard"), float(data["since"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        # A damaged file says nothing about the hub: treat it as silence since now-unknown, i.e. lock
        # if the policy cannot be read. Fail secure.
        return Contact(None, "lock", 0.0, None, 0.0)


class PolicyWatch:
    """The daemon's view: re-reads hub.json at most once a second (its mtime changes on each write)."""

    def __init__(self, state: str | os.PathLike, clock=time.time):
        self.state = Path(state)
        self.clock = clock
        self._read_at = -math.inf
        self.contact: Contact | None = None

    def blocked(self) -> str | None:
        now = self.clock()
        if now - self._read_at >= READ_EVERY_S:
            self._read_at = now
            self.contact = read_contact(self.state)
        return None if self.contact is None else self.contact.blocked(now)
