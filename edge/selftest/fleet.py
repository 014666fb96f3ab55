"""Fleet checks: when this kiosk last heard from its site's hub, what the site's policy makes
the door do after a silence (keep deciding, or lock down), and the event spool."""
from __future__ import annotations

from edge.fleet.status import kiosk_status
from edge.selftest.runner import Result

NOT_IN_FLEET = "not in a fleet ([fleet] state is not set in the daemon's config)"


def check_hub(state) -> Result:
    status = kiosk_status(state)
    if status.get("site") is None:
        return Result.failed(status["text"])
    if status["blocked"]:
        return Result.failed(f"{status['text']}: check the network to the hub and `edge-verify-fleet` "
                             "(journalctl -u edge-verify-fleet)")
    return Result.passed(status["text"])


def check_spool(state) -> Result:
    status = kiosk_status(state)
    if status.get("spool_depth") is None:
        return Result.skipped("no event spool yet (the daemon makes it at its first start)")
    text = f"{status['spool_depth']} events waiting for the hub, {status['dropped']} dropped (spool full)"
    return Result.failed(text + ": the hub has not acknowledged events for long") if status["dropped"] else \
        Result.passed(text)


def run(context, step) -> None:
    state = context.settings.path("fleet.state")
    if state is None:
        step.skip("hub", NOT_IN_FLEET)
        step.skip("spool", NOT_IN_FLEET)
        return
    step("hub", lambda: check_hub(state))
    step("spool", lambda: check_spool(state))
