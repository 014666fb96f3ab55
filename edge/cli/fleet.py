"""`edge-verify fleet ...`: the kiosk's side of a site with many doors."""
from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
from pathlib import Path

HELP = """\
Join this kiosk to its site's hub: the gallery follows the site's staff list, the
daemon's events go to the hub, the kiosk reports online/offline.

    edge-verify fleet run --bundle /etc/edge-verify/fleet.json --state /var/lib/edge-verify/fleet
    edge-verify fleet status --state /var/lib/edge-verify/fleet

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
    status = commands.add_parser("status", help="what the agent last heard from the hub, spool depth")
    status.add_argument("--state", type=Path, required=True)
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=run_status)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def run_agent(args) -> int:
    from edge.fleet.agent import Agent  # paho and its threads: only for the agent
    from edge.fleet.bundle import read_bundle
    from edge.fleet.metrics import parse_address
    from edge.gallery import open_gallery

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
    from edge.fleet.status import kiosk_status

    status = kiosk_status(args.state)
    print(json.dumps(status, indent=2) if args.json else status["text"])
    return 0
