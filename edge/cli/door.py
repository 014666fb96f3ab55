"""`edge-verify door lock`: drive the relay pin to LOCKED and exit (systemd's ExecStopPost and boot unit)."""
from __future__ import annotations

import argparse

from edge.daemon import config
from edge.door.relock import drive_locked, lock_target
from edge.exc import ConfigError

HELP = """\
door lock: drive the door relay's pin to its LOCKED level, release it, and exit 0.

The service runs it after every stop of the daemon (ExecStopPost=, so also after a
crash, kill -9 or a watchdog abort in the middle of an unlock pulse) and once at
boot (edge-verify-lock.service): a Jetson GPIO line that its program let go of
keeps its last level or goes back to the pad's special function, so nothing else
relocks the door. The pin and polarity come from the daemon's config file
([door] pin and active_high only: an error elsewhere in the file does not stop
the lock), or from --pin and --active-high/--active-low.

  sudo -u edge-verify GPIOZERO_PIN_FACTORY=jetson edge-verify door lock

While the daemon runs it holds the pin and this command fails (the daemon keeps
the door locked itself). Exit status: 0 locked, 1 the pin could not be driven,
2 a bad setting.
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser("door", help="door relay commands (door lock: drive the relay to LOCKED)",
                                   description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="door_action", metavar="ACTION", required=True)
    lock = actions.add_parser("lock", help="drive the relay pin to LOCKED and exit", description=HELP,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    lock.add_argument("--config", metavar="FILE",
                      help=f"the daemon's config file (default: {config.DEFAULT_PATH} when it exists)")
    lock.add_argument("--no-config", action="store_true", help="ignore the default config file")
    pin, polarity = config.BY_NAME["door.pin"], config.BY_NAME["door.active_high"]
    lock.add_argument(pin.flag_name, dest=pin.dest, metavar="PIN", default=argparse.SUPPRESS,
                      help=f"{pin.help} (default: [door] pin, else {pin.default})")
    lock.add_argument(polarity.flag_name, dest=polarity.dest, action="store_const", const=True,
                      default=argparse.SUPPRESS, help=polarity.help)
    lock.add_argument(polarity.negative_flag, dest=polarity.dest, action="store_const", const=False,
                      default=argparse.SUPPRESS, help=f"the opposite of {polarity.flag_name}")
    lock.set_defaults(func=door_lock)


def door_lock(args) -> int:
    if args.config is not None and args.no_config:
        raise ConfigError("--config and --no-config contradict each other; give one")
    path = args.config if args.config is not None else (None if args.no_config else config.default_config_path())
    print(drive_locked(lock_target(path, config.flag_values(args))))
    return 0
