"""`edge-verify fleet status` and the selftest's fleet line: what the agent left in its folder."""
from __future__ import annotations

import time
from pathlib import Path

from edge.fleet.policy import read_contact
from edge.fleet.spool import Spool, spool_path


def kiosk_status(state: str | Path, now: float | None = None) -> dict:
    state = Path(state)
    now = time.time() if now is None else now
    contact = read_contact(state)
    result: dict = {"state": str(state)}
    if contact is None:
        result.update(ok=False, text=f"no fleet agent has run with {state} (start edge-verify-fleet.service)")
        return result
    blocked = contact.blocked(now)
    depth, counters = None, {}
    if spool_path(state).exists():
        spool = Spool(spool_path(state))
        try:
            depth, counters = spool.depth(), spool.counters()
        finally:
            spool.close()
    result.update(ok=blocked is None, site=contact.site, policy=contact.policy, max_silence_s=contact.max_silence_s,
                  silence_s=round(contact.silence_s(now), 1), blocked=blocked, spool_depth=depth,
                  dropped=int(counters.get("dropped", 0)))
    text = contact.describe(now)
    if blocked:
        text += f"; UNLOCKS REFUSED: {blocked}"
    if depth is not None:
        text += f"; {depth} events waiting for the hub, {result['dropped']} dropped"
    result["text"] = text
    return result
