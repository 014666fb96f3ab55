"""The door, behind one interface, chosen by ``[door] kind``.

    from edge.door import open_door

    with open_door(settings) as door:      # created LOCKED
        door.unlock_pulse()                # relocks by itself after [door] pulse_s

``edge.door.actuator`` has the interface (Door) every kind implements and the
signal handlers that lock it; ``edge.door.lock`` the kind "relay": a fail-secure
relay lock on gpiozero pins, with optional door sensor and exit button, and the
wiring rules. ``edge.door.jetson`` is a gpiozero pin factory for Jetson boards
(select it with ``GPIOZERO_PIN_FACTORY=jetson``); it is imported only when
selected. A new kind is a module with an opener ``(settings, pin_factory=None,
pulse_s=None) -> Door`` and one line in ``KINDS``.
"""
from __future__ import annotations

from typing import Optional

from edge.door.actuator import Door, install_signal_handlers
from edge.door.lock import PULSE_MAX_S, PULSE_MIN_S, DoorLock, open_relay, validate_pulse
from edge.exc import ConfigError

# [door] kind -> opener(settings, pin_factory=None, pulse_s=None) -> Door
KINDS = {"relay": open_relay}

__all__ = ["Door", "DoorLock", "KINDS", "open_door", "install_signal_handlers", "validate_pulse", "PULSE_MIN_S",
           "PULSE_MAX_S"]


def open_door(settings, pin_factory=None, pulse_s: Optional[float] = None) -> Door:
    """The door of kind ``settings["door.kind"]``, opened LOCKED from the daemon's settings
    (edge.daemon.config.Settings). ``pin_factory``: the gpiozero pin factory for kinds on
    GPIO pins (None: gpiozero's default, which honours $GPIOZERO_PIN_FACTORY). ``pulse_s``
    replaces ``[door] pulse_s``. An unknown kind is a ConfigError naming the known ones."""
    kind = settings["door.kind"]
    if kind not in KINDS:
        raise ConfigError(f"unknown door kind {kind!r}; known kinds: {', '.join(KINDS)}")
    return KINDS[kind](settings, pin_factory=pin_factory, pulse_s=pulse_s)
