"""`edge-verify fleet ...`: the kiosk's side of a site with many doors."""
from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
from pathlib import Path

from edge import paths
from edge.cli.common import add_engine_arguments, load_pipeline
from edge.cli.enroll import liveness_for, progress
from edge.daemon import config
from edge.enroll.capture import camera_shots, enroll, image_shots
from edge.fleet.bundle import read_bundle
from edge.fleet.metrics import parse_address
from edge.fleet.status import kiosk_status
from edge.gallery import open_gallery
from edge.gallery.audit import default_actor
from edge.gallery.auth import require_token, token_from, token_path

HELP = """\
Join this kiosk to its site's hub: the gallery follows the site's staff list, the
daemon's events go to the hub, the kiosk reports online/offline.

    edge-verify fleet run --bundle /etc/edge-verify/fleet.json --state /var/lib/edge-verify/fleet
    edge-verify fleet status --state /var/lib/edge-verify/fleet
    edge-verify fleet enroll "Ada Lovelace" --bundle /etc/edge-verify/fleet.json --camera csi://0

`fleet enroll` takes the frames here (same gates and one-person check as `enroll`), and the
hub decides for the whole site (duplicate face, name taken by another door: refused); the
person then reaches every kiosk, this one included, within seconds. Needs this kiosk's
admin token, like `enroll`. At the camera, as with `enroll`, each good frame is judged by
this door's liveness cues (the liveness model and the config's [liveness] cues): when half
or more are called attacks it warns that this door will likely refuse the person here, and
enrolls them anyway. Photos are not judged.

The bundle comes from `edge-verify hub add-device NAME` (keep it mode 0600). Set
[fleet] state to the same folder in the daemon's config.toml, so the daemon spools
its events there and follows the site's offline policy. Without the network the
door keeps deciding with the gallery it has (or locks down, if the site's policy
says so after its allowed silence); events wait on disk and go out on reconnection.
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser("fleet", help="this kiosk's sync with its site's hub", description=HELP,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="fleet_command", metavar="COMMAND")
    run = commands.add_parser("run", help="run the fleet agent (systemd unit: edge-verify-fleet.service)")
    run.add_argument("--bundle", type=Path, required=True, help="provisioning bundle from `hub add-device`")
    run.add_argument("--state", type=Path, required=True, help="the agent's folder (spool, hub contact)")
    run.add_argument("--gallery", type=Path, help="gallery file (default: $EDGE_VERIFY_HOME/gallery.sqlite)")
    run.add_argument("--key", type=Path, help="gallery key (default: $EDGE_VERIFY_HOME/gallery.key)")
    run.add_argument("--metrics", default="127.0.0.1:9102", help="loopback address of /metrics ('' for none)")
    run.add_argument("--trace", type=Path, help="append one JSON line per applied change (measurements)")
    run.set_defaults(func=run_agent)
    enroll = commands.add_parser("enroll", help="enroll a person for the whole site, through the hub")
    enroll.add_argument("name", metavar="NAME")
    enroll.add_argument("--bundle", type=Path, required=True)
    enroll.add_argument("--state", type=Path, help="folder for the connection's files (default: beside the bundle)")
    source = enroll.add_mutually_exclusive_group(required=True)
    source.add_argument("--camera", metavar="URI")
    source.add_argument("--images", metavar="F", nargs="+", type=Path)
    enroll.add_argument("--force", action="store_true", help="enroll although the face matches another person")
    enroll.add_argument("--token", metavar="T", help="this kiosk's admin token (default: $EDGE_VERIFY_ADMIN_TOKEN)")
    enroll.add_argument("--gallery", metavar="PATH", type=Path, help="the gallery whose admin token applies")
    enroll.add_argument("--timeout", type=float, default=30.0, metavar="S", help="--camera: give up after S seconds")
    enroll.add_argument("--config", metavar="FILE",
                        help=f"this kiosk's daemon config, for its liveness settings (default: {config.DEFAULT_PATH} "
                        "when it exists)")
    enroll.add_argument("--no-config", action="store_true", help="ignore the default config file: built-in defaults")
    add_engine_arguments(enroll)
    enroll.set_defaults(func=run_enroll)
    status = commands.add_parser("status", help="what the agent last heard from the hub, spool depth")
    status.add_argument("--state", type=Path, required=True)
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=run_status)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def run_agent(args) -> int:
    from edge.fleet.agent import Agent  # paho and its threads: only for the agent

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    bundle = read_bundle(args.bundle)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with open_gallery(args.gallery, args.key, create=True, actor=f"fleet agent {bundle.device}") as gallery:
        agent = Agent(bundle, args.state, gallery, trace=args.trace,
                      metrics_address=parse_address(args.metrics) if args.metrics else None)
        return agent.run(stop)


def run_status(args) -> int:
    status = kiosk_status(args.state)
    print(json.dumps(status, indent=2) if args.json else status["text"])
    return 0


def run_enroll(args) -> int:
    from edge.fleet.enroll import HubSite  # paho: only for the fleet commands

    require_token(token_path(args.gallery or paths.gallery_path()), token_from(args.token))
    bundle = read_bundle(args.bundle)
    site = HubSite(bundle, args.state or args.bundle.parent / f".{bundle.device}-enroll", force=args.force)
    settings = config.from_command_line(args.config, args.no_config)
    frames = image_shots(args.images) if args.images else camera_shots(args.camera, args.timeout)
    actor = f"{default_actor()} with admin token at {bundle.device}"
    pipeline = load_pipeline(args)
    result = enroll(args.name, pipeline, site, frames, force=args.force, actor=actor, report=progress,
                    liveness=liveness_for(args, settings, pipeline))  # this door's cues, on its own camera
    print(f"enrolled {result.name} for site {bundle.site}: {result.templates} templates (change "
          f"{site.answer['seq']}); every kiosk gets it within seconds")
    return 0
