"""`edge-verify selftest`: the technician's hardware check."""
from __future__ import annotations

import argparse
import json

from edge.daemon import config
from edge.exc import ConfigError
from edge.selftest.context import Context
from edge.selftest.runner import GROUPS, parse_groups, print_check, run_selftest
from edge.selftest.settings import (DEFAULT_LATENCY_BUDGET_MS, DEFAULT_MAX_TEMP_C, DEFAULT_MIN_FREE_MB, Settings,
                                    parse_size)

HELP = f"""\
Checks the kiosk part by part and says which part is at fault, one line per check:

  PASS camera.open  opened csi://0 1280x720 (35 ms)
  FAIL door.feedback  relay feedback never changed: check relay wiring/coil supply ...

Groups ({', '.join(GROUPS)}):
  camera   opens the configured source; frame size and rate; frames neither black nor frozen;
           with --with-face, a face in front of the camera is found, and the door's liveness cues
           must not call it an attack (a real person stands there: else the door refuses real people)
  compute  every engine loads and its manifest matches this device; embedding latency within
           --latency-budget-ms; on a GPU the CUDA preprocessing matches the CPU reference
  door     door sensor and exit button states; one short (1 s) relay pulse (asked first, unless --yes),
           seen by --feedback-pin when one is wired back; the door always ends LOCKED
  gallery  key present and private; the file opens and decrypts; audit chain intact; people;
           templates fit the engine; the match threshold for this gallery size
  system   free disk for logs; a plausible clock and NTP state; temperatures and throttling
           (/sys/class/thermal); the service's state

Settings are the daemon's: --config FILE (default /etc/edge-verify/config.toml when it exists)
and the same settings flags as `edge-verify run` (--source, --pin, --active-low, --gallery ...).
Run it with the daemon stopped (sudo systemctl stop edge-verify): while the daemon runs, it holds
the relay pin and the camera, and those checks are skipped with that reason. Run it as the
service user so file permissions are the daemon's:
  sudo systemctl stop edge-verify
  sudo -u edge-verify EDGE_VERIFY_HOME=/var/lib/edge-verify GPIOZERO_PIN_FACTORY=jetson edge-verify selftest
  sudo systemctl start edge-verify

Exit status: 0 when nothing failed (passes and skips only), 1 when a check failed, 2 for a bad
setting. --json prints {{"checks": [{{name, status, detail, ms}}, ...], "summary": {{...}}}}.
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser("selftest", help="check camera, compute, door, gallery, fleet and system (technicians)",
                                   description=HELP,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print the report as JSON (no progress lines)")
    parser.add_argument("--only", metavar="GROUPS",
                        help=f"comma-separated groups to run (default: all): {','.join(GROUPS)}")
    parser.add_argument("--yes", action="store_true", help="pulse the door relay without asking")
    parser.add_argument("--with-face", action="store_true",
                        help="also require a face to be found: stand in front of the camera")
    parser.add_argument("--config", metavar="FILE",
                        help=f"daemon config file (default: {config.DEFAULT_PATH} when it exists)")
    parser.add_argument("--no-config", action="store_true", help="ignore the default config file")
    limits = parser.add_argument_group("self-test settings")
    limits.add_argument("--feedback-pin", metavar="PIN",
                        help="input wired back from the relay (or the lock supply); it must change during the pulse")
    limits.add_argument("--latency-budget-ms", type=float, default=DEFAULT_LATENCY_BUDGET_MS, metavar="MS",
                        help=f"longest embedding time per face chip (default {DEFAULT_LATENCY_BUDGET_MS:g})")
    limits.add_argument("--min-free-mb", type=float, default=DEFAULT_MIN_FREE_MB, metavar="MB",
                        help=f"least free disk for logs and data (default {DEFAULT_MIN_FREE_MB:g})")
    limits.add_argument("--max-temp-c", type=float, default=DEFAULT_MAX_TEMP_C, metavar="C",
                        help=f"hottest allowed thermal zone (default {DEFAULT_MAX_TEMP_C:g})")
    limits.add_argument("--expect-size", metavar="WxH", help="frame size the camera must give (default: from the URI)")
    limits.add_argument("--expect-fps", type=float, metavar="FPS",
                        help="frame rate the camera must give (default: from the URI)")
    config.add_arguments(parser)
    parser.set_defaults(func=run)


def build_context(args) -> Context:
    daemon = config.from_command_line(args.config, args.no_config, config.flag_values(args))
    for name in ("latency_budget_ms", "min_free_mb", "max_temp_c", "expect_fps"):
        value = getattr(args, name)
        if value is not None and not value > 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be greater than 0, got {value:g}")
    settings = Settings(daemon=daemon, feedback_pin=args.feedback_pin, latency_budget_ms=args.latency_budget_ms,
                        min_free_mb=args.min_free_mb, max_temp_c=args.max_temp_c, expect_fps=args.expect_fps)
    if args.expect_size:
        settings.expect_width, settings.expect_height = parse_size(args.expect_size)
    door_pins = (daemon["door.pin"], daemon["door.sensor_pin"], daemon["door.exit_pin"])
    if settings.feedback_pin and settings.feedback_pin in door_pins:
        raise ConfigError(f"--feedback-pin {settings.feedback_pin} is already used by the door; wire the feedback to a "
                          "pin of its own")
    return Context(settings=settings, yes=args.yes, with_face=args.with_face)


def run(args) -> int:
    groups = parse_groups(args.only)
    context = build_context(args)
    if not args.json:
        origin = context.settings.config_path or "none (built-in defaults and flags)"
        print(f"edge-verify selftest: {', '.join(groups)}; config {origin}", flush=True)
    report = run_selftest(context, groups, emit=None if args.json else print_check)
    if args.json:
        data = report.as_json()
        data["summary"]["config"] = str(context.settings.config_path) if context.settings.config_path else None
        print(json.dumps(data, indent=2))
    else:
        print(report.summary_line())
    return report.exit_code
