"""The kiosk's durable, bounded event spool: decision events wait here until the hub has them.

One SQLite file in WAL mode with synchronous=FULL, shared by two processes: the
daemon adds each event (committed, so it survives kill -9 and a power cut), the
fleet agent sends what is pending and deletes an event only when the hub
acknowledges its id, after the hub's own commit. An event sent but not
acknowledged (broker restart, hub restart, network loss) is sent again after
``resend_s``; the hub stores each id once, so resending never duplicates.

Bounded: beyond ``max_events`` pending, the oldest are dropped and counted
(``dropped``), so a kiosk cut off for weeks keeps deciding and keeps its newest
events; the count is reported in its status and metrics.

The daemon's counters (frames, unlocks, refusals, latency) are kept here too, so
the agent's metrics endpoint can show them without a second endpoint in the door process.
"""
from __future__ import annotations

import json
import sqlite3
import time
import uuid
from pathlib import Path

from edge.events import encode
from edge.exc import EdgeVerifyError

DEFAULT_MAX_EVENTS = 100_000
_COUNT_EVERY = 64

TABLES = (
    "CREATE TABLE IF NOT EXISTS events (n INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, "
    "body TEXT NOT NULL, sent_at REAL)",
    "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value REAL NOT NULL)",
)


class SpoolError(EdgeVerifyError):
    """The event spool cannot be opened or written."""


def spool_path(state: str | Path) -> Path:
    return Path(state) / "spool.sqlite"


class Spool:
    def __init__(self, path: str | Path, max_events: int = DEFAULT_MAX_EVENTS):
        self.path = Path(path)
        self.max_events = int(max_events)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._connection = sqlite3.connect(str(self.path), isolation_level=None, timeout=10.0,
                                               check_same_thread=False)
            self._connection.execute("PRAGMA journal_mode = WAL")
            self._connection.execute("PRAGMA synchronous = FULL")
            for statement in TABLES:
                self._connection.execute(statement)
        except sqlite3.Error as error:
            raise SpoolError(f"cannot open the event spool {self.path}: {error}") from None
        self.path.chmod(0o600)
        self._adds = 0
        self._pending = self.depth()

    def close(self) -> None:
        self._connection.close()

    # ---- the daemon's side -------------------------------------------------------------------

    def add(self, event: dict) -> str:
        """Store one event (its ``id`` is set when missing) durably; returns the id."""
        event.setdefault("id", uuid.uuid4().hex)
        body = encode(event)
        self._adds += 1
        if self._adds % _COUNT_EVERY == 0 or self._pending >= self.max_events:
            self._pending = self.depth()
        with self._write():
            if self._pending >= self.max_events:
                dropped = self._pending - self.max_events + 1
                self._connection.execute("DELETE FROM events WHERE n IN (SELECT n FROM events ORDER BY n LIMIT ?)",
                                         (dropped,))
                self._bump("dropped", dropped)
                self._pending -= dropped
            self._connection.execute("INSERT INTO events (id, body) VALUES (?, ?)", (event["id"], body))
            self._bump("spooled", 1)
        self._pending += 1
        return event["id"]

    def set_counters(self, values: dict) -> None:
        with self._write():
            self._connection.executemany("INSERT OR REPLACE INTO counters (name, value) VALUES (?, ?)",
                                         [(f"daemon_{name}", float(value)) for name, value in values.items()])

    # ---- the agent's side --------------------------------------------------------------------

    def due(self, limit: int, resend_s: float, now: float | None = None) -> list[dict]:
        """Up to ``limit`` events never sent or sent more than ``resend_s`` ago, oldest first; marked sent."""
        now = time.time() if now is None else now
        with self._write():
            rows = self._connection.execute("SELECT n, body FROM events WHERE sent_at IS NULL OR sent_at < ? "
                                            "ORDER BY n LIMIT ?", (now - resend_s, limit)).fetchall()
            self._connection.executemany("UPDATE events SET sent_at = ? WHERE n = ?", [(now, n) for n, _ in rows])
        return [json.loads(body) for _, body in rows]

    def unsent(self) -> None:
        """Everything pending is due again (the connection came back)."""
        with self._write():
            self._connection.execute("UPDATE events SET sent_at = NULL")

    def ack(self, ids: list[str]) -> int:
        with self._write():
            removed = 0
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                removed += self._connection.execute(
                    f"DELETE FROM events WHERE id IN ({','.join('?' * len(chunk))})", chunk).rowcount
            self._bump("acked", removed)
        return removed

    def depth(self) -> int:
        return self._connection.execute("SELECT count(*) FROM events").fetchone()[0]

    def counters(self) -> dict:
        return {name: value for name, value in self._connection.execute("SELECT name, value FROM counters")}

    # ---- internals ---------------------------------------------------------------------------

    def _bump(self, name: str, amount: float) -> None:
        self._connection.execute("INSERT INTO counters (name, value) VALUES (?, ?) "
                                 "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value", (name, amount))

    def _write(self):
        return _Transaction(self._connection, self.path)


class _Transaction:
    def __init__(self, connection: sqlite3.Connection, path: Path):
        self.connection, self.path = connection, path

    def __enter__(self):
        try:
            self.connection.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as error:
            raise SpoolError(f"the event spool {self.path} is not writable: {error}") from None
        return self.connection

    def __exit__(self, kind, error, trace):
        if kind is None:
            try:
                self.connection.execute("COMMIT")
                return False
            except sqlite3.Error as failure:
                self.connection.execute("ROLLBACK")
                raise SpoolError(f"the event spool {self.path} is not writable: {failure}") from None
        if self.connection.in_transaction:
            self.connection.execute("ROLLBACK")
        if isinstance(error, sqlite3.Error):
            raise SpoolError(f"the event spool {self.path} is not writable: {error}") from None
        return False
