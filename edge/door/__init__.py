"""The door: a fail-secure relay lock with optional door sensor and exit button.

``edge.door.lock`` has the lock and the wiring rules; ``edge.door.jetson`` is a
gpiozero pin factory for Jetson boards (select it with
``GPIOZERO_PIN_FACTORY=jetson``); it is imported only when selected.
"""
from edge.door.lock import PULSE_MAX_S, PULSE_MIN_S, DoorLock, install_signal_handlers, validate_pulse

__all__ = ["DoorLock", "install_signal_handlers", "validate_pulse", "PULSE_MIN_S", "PULSE_MAX_S"]
