"""`edge-verify run`: the door daemon (what systemd runs)."""
from __future__ import annotations

import argparse
import logging
import sys

from edge.daemon import config
from edge.daemon.loop import Daemon
from edge.exc import EdgeVerifyError

HELP = """\
The kiosk service: reads a camera, finds the face of the person at the door,
follows it across frames, searches the enrolled gallery with the combined
embedding of the face's recent frames, and pulses the door relay when that names
an enrolled person (after at least --min-frames frames). Unknown faces are
logged, never let in.
One JSON line per decision goes to stdout (the journal) and to --events FILE.

Settings come from --config FILE (default /etc/edge-verify/config.toml when it
exists; example: systemd/config.toml); every setting is also a flag below, and
a flag wins over the file.

The door is FAIL-SECURE: the relay is created de-energised (locked) before
anything else starts, and it is locked again on exit, on SIGTERM and on any
error. Wire the lock so that a de-energised relay means LOCKED (see the [door]
section of the example config). After a crash or kill -9 only systemd's
`edge-verify door lock` (ExecStopPost=) and the wiring's hardware on-time limit
relock the door: a released Jetson pin keeps its last level.

Scripted runs without hardware:
  GPIOZERO_PIN_FACTORY=mock edge-verify run --source file://clip.avi --until-end --events ev.jsonl

Exit status: 0 after SIGTERM or (with --until-end) the end of a file; 1 when the
camera, the gallery, the models or the door fail; 2 for a bad setting.
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser("run", help="run the door daemon (the systemd service)", description=HELP,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", metavar="FILE",
                        help=f"TOML settings file (default: {config.DEFAULT_PATH} when it exists)")
    parser.add_argument("--no-config", action="store_true",
                        help="ignore the default config file; use built-in defaults and flags only")
    parser.add_argument("--until-end", action="store_true",
                        help="exit (status 0) when a file:// or dir:// source ends, instead of idling with the "
                        "door locked")
    parser.add_argument("--quiet", action="store_true", help="log warnings and errors only")
    config.add_arguments(parser)
    parser.set_defaults(func=run)


def settings_from(args):
    return config.from_command_line(args.config, args.no_config, config.flag_values(args))


def run(args) -> int:
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING if args.quiet else logging.INFO,
                        format="edge-verify: %(levelname)s: %(message)s")
    settings = settings_from(args)
    try:
        return Daemon(settings, until_end=args.until_end).run()
    except Exception as error:
        if isinstance(error, EdgeVerifyError):
            raise  # one line from the dispatcher
        logging.getLogger("edge.daemon").exception("daemon failed (door locked): %s", error)
        return 1
