"""Console logins: sessions, their cookie, CSRF tokens and the login throttle.

A session is a random 256-bit id known to the server only (in memory: restarting the
console logs everyone out), sent in a cookie that is ``Secure`` (HTTPS only),
``HttpOnly`` (no script can read it), ``SameSite=Strict`` (never sent with a request
started by another site) and ``__Host-`` prefixed (no subdomain can set it). Each
session has its own CSRF token, which every change (every POST) must carry in its
form or in the ``X-CSRF-Token`` header; the login form has one too, bound to a
cookie of its own. A session ends after ``idle_s`` without a request.

The throttle sits in front of the credential check (the admin token's or the hub's
own rules, which also count and audit wrong tries): after a wrong login from an
address the next try from there must wait 1, 2, 4 ... s (at most MAX_WAIT_S), and
only one check runs at a time, since each costs a scrypt hash (16 MiB, tens of ms).
"""
from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

COOKIE = "__Host-edge-console"
LOGIN_COOKIE = "__Host-edge-login"
MAX_WAIT_S = 300.0
MAX_SESSIONS = 32


def cookie_header(name: str, value: str, max_age: Optional[int] = None) -> str:
    age = f"; Max-Age={max_age}" if max_age is not None else ""
    return f"{name}={value}; Path=/; Secure; HttpOnly; SameSite=Strict{age}"


def same(expected: str, given: Optional[str]) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), str(given).encode())


@dataclass
class Session:
    id: str
    actor: str  # as written to the audit log
    peer: str
    csrf: str
    created: float
    seen: float
    data: dict = field(default_factory=dict)


class Sessions:
    def __init__(self, idle_s: float, clock: Callable[[], float] = time.monotonic):
        self.idle_s = idle_s
        self.clock = clock
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self, actor: str, peer: str) -> Session:
        now = self.clock()
        session = Session(secrets.token_urlsafe(32), actor, peer, secrets.token_urlsafe(32), now, now)
        with self._lock:
            self._expire(now)
            if len(self._sessions) >= MAX_SESSIONS:  # the oldest goes: a flood of logins cannot grow memory
                oldest = min(self._sessions.values(), key=lambda item: item.seen)
                del self._sessions[oldest.id]
            self._sessions[session.id] = session
        return session

    def get(self, session_id: Optional[str]) -> Optional[Session]:
        if not session_id:
            return None
        now = self.clock()
        with self._lock:
            self._expire(now)
            session = self._sessions.get(session_id)
            if session is not None:
                session.seen = now
            return session

    def drop(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)

    def _expire(self, now: float) -> None:
        for key in [key for key, item in self._sessions.items() if now - item.seen > self.idle_s]:
            del self._sessions[key]


class LoginThrottle:
    """Growing waits per address after wrong logins; one credential check at a time."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._failures: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()
        self.checking = threading.Lock()

    def wait_left(self, peer: str) -> float:
        with self._lock:
            failures, last = self._failures.get(peer, (0, 0.0))
        if failures == 0:
            return 0.0
        return max(0.0, last + min(2.0 ** (failures - 1), MAX_WAIT_S) - self.clock())

    def failed(self, peer: str) -> int:
        with self._lock:
            failures = self._failures.get(peer, (0, 0.0))[0] + 1
            self._failures[peer] = (failures, self.clock())
            if len(self._failures) > 1024:  # many addresses: forget the oldest
                del self._failures[min(self._failures, key=lambda key: self._failures[key][1])]
        return failures

    def succeeded(self, peer: str) -> None:
        with self._lock:
            self._failures.pop(peer, None)
