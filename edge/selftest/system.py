"""System checks: room on disk for logs and the gallery, a believable clock,
temperatures and throttling (Jetson thermal zones), and the service's state."""
from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

from edge import paths
from edge.engines.manifest import read_manifest
from edge.exc import EdgeVerifyError
from edge.selftest import service
from edge.selftest.runner import Result

# This release's date: a clock earlier than this has certainly lost the time
# (a Jetson without an RTC battery boots at its image's date or 1970).
BUILD_DATE = datetime(2026, 11, 1, tzinfo=timezone.utc)
# Jetson Nano/TX1/TX2 report a fixed 100 C for the PMIC die: a placeholder, not a reading.
IGNORED_ZONES = ("PMIC-Die",)
THROTTLE_TRIPS = ("passive", "hot", "critical")


# -- disk ---------------------------------------------------------------------------------------

def existing_folder(path: Path) -> Path:
    """``path``, or its nearest existing parent (the log folder is made when the daemon first starts)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def human_bytes(count: float) -> str:
    if count >= 1024 ** 3:
        return f"{count / 1024 ** 3:.1f} GB"
    return f"{count / 1024 ** 2:.0f} MB"


def disk_check(context) -> Result:
    settings = context.settings
    minimum = settings.min_free_mb * 1024 * 1024
    seen, parts, short = set(), [], []
    for label, folder in (("logs", settings.log_dir), ("data", paths.home())):
        where = existing_folder(folder)
        device = os.stat(where).st_dev
        if device in seen:
            continue
        seen.add(device)
        free = context.free_bytes(where)
        parts.append(f"{human_bytes(free)} free for {label} ({folder})")
        if free < minimum:
            short.append(f"only {human_bytes(free)} free for {label} at {where}")
    if short:
        return Result.failed(f"{'; '.join(short)} (minimum {settings.min_free_mb:g} MB): free space: shrink the "
                             "journal (sudo journalctl --vacuum-size=100M), remove old rotated logs or backups, or "
                             "use a larger disk; on a full disk the daemon keeps deciding but drops events from the events file "
                             "(counted in `systemctl status edge-verify` and the journal) and gallery changes fail")
    return Result.passed(f"{'; '.join(parts)} (minimum {settings.min_free_mb:g} MB)")


# -- clock --------------------------------------------------------------------------------------

def engine_built_at(settings) -> datetime | None:
    """When the daemon's embedding engine was built (its manifest says), if readable."""
    try:
        text = read_manifest(settings.embedding_engine()).get("built_at")
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")) if text else None
    except (EdgeVerifyError, ValueError):  # no engine or no date: the release date alone bounds the clock
        return None


def clock_check(context) -> Result:
    now = context.now()
    floor, why = BUILD_DATE, "this software's release"
    built = engine_built_at(context.settings)
    if built is not None and built.tzinfo is not None and built > floor:
        floor, why = built, "the embedding engine's build"
    shown = now.strftime("%Y-%m-%d %H:%M UTC")
    if now < floor:
        return Result.failed(f"the clock says {shown}, before {why} ({floor:%Y-%m-%d}): the time is lost; set it "
                             "(sudo timedatectl set-time 'YYYY-MM-DD HH:MM' or enable NTP) and check the RTC battery; "
                             "event and audit times are wrong until then")
    return Result.passed(f"{shown}, after {why} ({floor:%Y-%m-%d})")


def ntp_check(context) -> Result:
    done = context.command(["timedatectl", "show", "--property=NTP", "--property=NTPSynchronized"])
    if done is None:
        return Result.skipped("NTP state unavailable: timedatectl is not installed")
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["no answer"])[0]
        return Result.skipped(f"NTP state unavailable: {why}")
    values = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    if values.get("NTPSynchronized") == "yes":
        return Result.passed("the clock is synchronised by NTP")
    if values.get("NTP") == "yes":
        return Result.failed("NTP is on but the clock is not synchronised: check the network and the NTP server "
                             "(timedatectl timesync-status)")
    return Result.passed("NTP is off: the clock runs on the RTC alone (fine offline; check system.clock)")


# -- thermal ------------------------------------------------------------------------------------

def read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, ValueError):  # some zones refuse reads (EINVAL, ENODATA) when their sensor is off
        return None


def read_zones(root: Path) -> list[dict]:
    """[{name, temp_c, trips: [(type, temp_c)]}] of the readable thermal zones."""
    zones = []
    for folder in sorted(root.glob("thermal_zone*")):
        name, raw = read_text(folder / "type"), read_text(folder / "temp")
        if not name or name in IGNORED_ZONES or raw is None or not raw.lstrip("-").isdigit():
            continue
        temp = int(raw) / 1000.0
        if not -40.0 <= temp <= 200.0:
            continue  # a disconnected sensor reads as an absurd value
        trips = []
        for trip_type in sorted(folder.glob("trip_point_*_type")):
            trip_temp = read_text(trip_type.with_name(trip_type.name.replace("_type", "_temp")))
            kind = read_text(trip_type)
            if kind and trip_temp and trip_temp.lstrip("-").isdigit() and int(trip_temp) > 0:
                trips.append((kind, int(trip_temp) / 1000.0))
        zones.append({"name": name, "temp_c": temp, "trips": trips})
    return zones


def read_cooling(root: Path) -> list[dict]:
    devices = []
    for folder in sorted(root.glob("cooling_device*")):
        name, state, top = (read_text(folder / item) for item in ("type", "cur_state", "max_state"))
        if name and state and state.isdigit():
            devices.append({"name": name, "state": int(state), "max": int(top) if top and top.isdigit() else None})
    return devices


def temperature_check(context) -> Result:
    zones = read_zones(context.thermal_root)
    if not zones:
        return Result.skipped(f"no readable thermal zones under {context.thermal_root} (not a Jetson, or a container)")
    limit = context.settings.max_temp_c
    hot = [zone for zone in zones if zone["temp_c"] > limit]
    listing = ", ".join(f"{zone['name']} {zone['temp_c']:.1f} C" for zone in zones)
    if hot:
        worst = max(hot, key=lambda zone: zone["temp_c"])
        return Result.failed(f"{worst['name']} at {worst['temp_c']:.1f} C, above the {limit:g} C limit ({listing}): "
                             "check that the fan turns, clean the heatsink, and give the enclosure air")
    return Result.passed(f"{listing} (limit {limit:g} C)")


def throttle_check(context) -> Result:
    zones, cooling = read_zones(context.thermal_root), read_cooling(context.thermal_root)
    if not zones and not cooling:
        return Result.skipped(f"no thermal zones or cooling devices under {context.thermal_root}")
    reasons = [f"{zone['name']} {zone['temp_c']:.1f} C reached its {kind} trip point {trip:.1f} C"
               for zone in zones for kind, trip in zone["trips"] if kind in THROTTLE_TRIPS and zone["temp_c"] >= trip]
    # Fans turning is cooling, not throttling; any other active cooling device slows the clocks.
    reasons += [f"{device['name']} at state {device['state']}" + (f" of {device['max']}" if device["max"] else "")
                for device in cooling if device["state"] > 0 and "fan" not in device["name"].lower()]
    if reasons:
        return Result.failed(f"throttling: {'; '.join(reasons)}: the SoC runs slower than it should; cool it (fan, "
                             "heatsink, airflow) and check the power supply")
    return Result.passed(f"no throttling ({len(zones)} zones below their trip points, {len(cooling)} cooling "
                         "devices idle or fans)")


# -- the service --------------------------------------------------------------------------------

def service_check(context) -> Result:
    unavailable = service.systemd_available(context.systemd_runtime)
    if unavailable:
        return Result.skipped(f"cannot ask systemd: {unavailable}")
    state = service.service_state(context.command)
    if state is None:
        return Result.skipped("systemctl did not answer")
    unit = service.SERVICE
    if state.load == "not-found":
        return Result.failed(f"the {unit} service is not installed: follow the install steps at the top of "
                             "systemd/edge-verify.service")
    boot = "" if state.enabled == "enabled" else f"; it is {state.enabled or 'not enabled'}, so it will not start at " \
        f"boot: sudo systemctl enable {unit}"
    if state.active == "failed" or state.sub == "auto-restart":
        what = "failed" if state.active == "failed" else "crashed and is restarting"
        return Result.failed(f"the {unit} service has {what}: see journalctl -u {unit} -n 50{boot}")
    if boot:
        return Result.failed(f"the {unit} service is {state.active}{boot}")
    if state.active == "active":
        return Result.passed(f"the {unit} service is active ({state.sub}, pid {state.pid}) and enabled")
    return Result.passed(f"the {unit} service is {state.active} and enabled; start it again after the selftest: "
                         f"sudo systemctl start {unit}")


def run(context, step) -> None:
    step("disk", lambda: disk_check(context))
    step("clock", lambda: clock_check(context))
    step("ntp", lambda: ntp_check(context))
    step("temperature", lambda: temperature_check(context))
    step("throttling", lambda: throttle_check(context))
    step("service", lambda: service_check(context))
