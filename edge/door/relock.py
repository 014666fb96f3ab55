"""Drive the relay pin to LOCKED from outside the daemon: ``edge-verify door lock``.

Why it exists: when the daemon dies (crash, ``kill -9``, the watchdog's abort)
mid-pulse, nothing in that process can relock, and the kernel does not either:
a released Jetson GPIO line keeps its last level (JetPack 5 and 6.2.2) or goes
back to its pad's special function (6.0 to 6.2.1). systemd runs this command
after every stop of the service (``ExecStopPost=``) and once at boot
(edge-verify-lock.service), so the pin is driven to the locked level as soon as
the daemon is gone, whatever the reason. The wiring's hardware on-time limit
covers the case where even this cannot run (README "Fail-secure wiring").

It reads only what it needs, ``[door] pin`` and ``active_high``, from the
daemon's config file: a mistake elsewhere in the file (a bad camera URI, a key
from a newer release) must not stop the door from being locked.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from gpiozero import OutputDevice
from gpiozero.exc import BadPinFactory, GPIOZeroError

from edge.daemon.config import BY_NAME, convert
from edge.exc import ConfigError, DoorError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

LOCK_KEYS = ("door.pin", "door.active_high")
RELAY_KINDS = ("relay",)  # a [door] kind other than a relay has no pin to lock


@dataclass(frozen=True)
class LockTarget:
    pin: str
    active_high: bool
    origin: str  # where the pin came from, for the report

    @property
    def locked_level(self) -> str:
        return "low" if self.active_high else "high"


def lock_target(path: Optional[str | os.PathLike], flags: dict) -> LockTarget:
    """The relay pin and polarity from the config file (None: none) and flags, or ConfigError."""
    values, origin = {}, "built-in default"
    if path is not None:
        values, origin = _door_section(Path(path)), str(path)
    settings, origins = {}, {}
    for name in LOCK_KEYS:
        option = BY_NAME[name]
        if name in flags:
            settings[name], origins[name] = convert(option, flags[name], "the command line", from_text=True), "flag"
        elif name.split(".", 1)[1] in values:
            settings[name] = convert(option, values[name.split(".", 1)[1]], origin, from_text=False)
            origins[name] = origin
        else:
            settings[name], origins[name] = option.default, "built-in default"
    if not str(settings["door.pin"]).strip():
        raise ConfigError(f"[door] pin must name a pin, e.g. {BY_NAME['door.pin'].default} ({origins['door.pin']})")
    return LockTarget(settings["door.pin"], settings["door.active_high"], origins["door.pin"])


def _door_section(path: Path) -> dict:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist; pass --pin and --active-high/--active-low "
                          "or --no-config") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read config file {path}: {error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML ({error}); the relay pin cannot be read from it: "
                          "pass --pin and --active-high/--active-low") from None
    door = document.get("door", {})
    if not isinstance(door, dict):
        raise ConfigError(f"{path}: [door] must be a table")
    kind = door.get("kind", "relay")
    if kind not in RELAY_KINDS:
        raise ConfigError(f"{path}: [door] kind = {kind!r} has no relay pin to lock")
    return door


def drive_locked(target: LockTarget, pin_factory=None) -> str:
    """Request the pin at its locked level, then release it; returns one line for the log.

    The request itself sets the level (gpiozero's initial_value, one line request
    on the Jetson factory): the pin is never driven to "unlocked" on the way.
    """
    try:
        relay = OutputDevice(target.pin, active_high=target.active_high, initial_value=False,
                             pin_factory=pin_factory)
    except BadPinFactory as error:
        raise DoorError(f"no GPIO pin factory: set GPIOZERO_PIN_FACTORY=jetson on a Jetson ({error})") from error
    except GPIOZeroError as error:
        raise DoorError(f"cannot drive the relay pin {target.pin!r}: {error}") from error
    try:
        if relay.is_active:
            raise DoorError(f"relay pin {target.pin} still reads ON after it was driven to locked: "
                            "cut the lock's supply and check the relay driver")
    finally:
        relay.close()
    return (f"door locked: relay pin {target.pin} driven {target.locked_level} "
            f"(active_high = {str(target.active_high).lower()}, from {target.origin}) and released")
