"""`edge-verify run`: the door daemon (what systemd runs)."""
from __future__ import annotations

import argparse
import logging
import sys

HELP = """\
The kiosk service: reads a camera, finds the face of the person at the door,
searches the enrolled gallery and pulses the door relay when K of the last N
frames agree on the same enrolled person. Unknown faces are logged, never let in.
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
    from edge.daemon import config

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
    from edge.daemon import config

    if args.config is not None and args.no_config:
        from edge.exc import ConfigError

        raise ConfigError("--config and --no-config contradict each other; give one")
    path = args.config if args.config is not None else (None if args.no_config else config.default_config_path())
    return config.load(path, config.flag_values(args))


def run(args) -> int:
    from edge.daemon.loop import Daemon

    logging.basicConfig(stream=sys.stderr, level=logging.WARNING if args.quiet else logging.INFO,
                        format="edge-verify: %(levelname)s: %(message)s")
    settings = settings_from(args)
    try:
        return Daemon(settings, until_end=args.until_end).run()
    except Exception as error:
        from edge.exc import EdgeVerifyError

        if isinstance(error, EdgeVerifyError):
            raise  # one line from the dispatcher
        logging.getLogger("edge.daemon").exception("daemon failed (door locked): %s", error)
        return 1
