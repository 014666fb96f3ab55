"""The door daemon's side of the fleet: its events into the spool, the site's offline policy.

The daemon holds one FleetLink when ``[fleet] state`` is set. Nothing here may stop
the door: a spool that cannot be written (disk full, removed folder) costs that
event, which is counted and logged, and the daemon goes on deciding.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

from edge.fleet.policy import PolicyWatch
from edge.fleet.spool import Spool, SpoolError, spool_path

log = logging.getLogger(__name__)
COUNTERS_EVERY_S = 2.0


class FleetLink:
    def __init__(self, state: str | Path):
        self.state = Path(state)
        self.spool = Spool(spool_path(self.state))
        self.policy = PolicyWatch(self.state)
        self.lost = 0
        self._counted_at = 0.0

    def blocked(self) -> str | None:
        """Why the site's policy refuses unlocks now (the hub has been silent too long), or None."""
        return self.policy.blocked()

    def record(self, event: dict) -> None:
        """Spool the event for the hub (it gets its ``id`` here, before it is logged locally)."""
        try:
            self.spool.add(event)
        except SpoolError as error:
            self.lost += 1
            log.error("event not spooled for the hub (%d so far): %s", self.lost, error)

    def counters(self, stats, force: bool = False) -> None:
        """The daemon's counters for the agent's metrics endpoint, every few seconds."""
        now = time.monotonic()
        if not force and now - self._counted_at < COUNTERS_EVERY_S:
            return
        self._counted_at = now
        try:
            self.spool.set_counters({"frames": stats.frames, "faces": stats.faces, "unlocks": stats.unlocks,
                                     "refusals": stats.faces - stats.unlocks, "latency_sum_ms": stats.latency_sum_ms,
                                     "latency_count": stats.latency_count, "spool_lost": self.lost})
        except SpoolError as error:
            log.error("daemon counters not written to the spool: %s", error)

    def close(self) -> None:
        self.spool.close()
