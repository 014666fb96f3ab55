"""`edge-verify console ...`: the web console of the kiosk (and of the hub)."""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from edge.console.kiosk import KioskConsole
from edge.console.serve import RunningConsole, serve_until
from edge.console.settings import kiosk_settings
from edge.console.tls import default_names, fingerprint, make_certificate
from edge.daemon import config

HELP = """\
A web console for installers and technicians, served by the kiosk over HTTPS:
the live picture with the face box and per-frame guidance, guided enrollment,
the people list (remove, rename), the identify check, the self-test, a door
test pulse, camera and liveness figures and the recent decisions. On the hub
(--hub), the people of every site and door, and the devices with their status.

It is off by default. To turn it on, once, as root:
  edge-verify console init-cert            # TLS certificate (prints its fingerprint)
  then in /etc/edge-verify/config.toml:    [console] enabled = true   (listen, port)
  edge-verify console serve                # or the edge-verify-console service

Log in with the admin token (kiosk) or a hub admin account (hub). It listens on
[console] listen only: a loopback address (use an SSH tunnel:
ssh -L 8443:127.0.0.1:8443 kiosk) or the address or name of one interface.
While the door daemon runs, the console takes its frames from it; an enrollment
keeps the door locked until it ends.
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser("console", help="the web console for installers and technicians (HTTPS)",
                                   description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE",
                        help=f"the kiosk's config file (default: {config.DEFAULT_PATH} when it exists)")
    common.add_argument("--no-config", action="store_true", help="ignore the default config file")
    common.add_argument("--hub", action="store_true", help="the hub's console ([console] of HOME/hub.toml)")
    common.add_argument("--home", metavar="HOME", help="the hub's folder (with --hub; default $EDGE_VERIFY_HUB_HOME "
                        "or /var/lib/edge-verify-hub)")
    actions = parser.add_subparsers(dest="console_action", metavar="ACTION", required=True)
    cert = actions.add_parser("init-cert", parents=[common], help="make the console's TLS certificate and key",
                              description="Make a self-signed certificate and private key (mode 0600) for the "
                              "console's address, this machine's name and localhost; prints the SHA-256 fingerprint "
                              "to compare with the one the browser shows.")
    cert.add_argument("--name", action="append", default=[], metavar="NAME",
                      help="another address or host name the certificate must name (repeatable)")
    cert.add_argument("--force", action="store_true", help="replace an existing certificate and key")
    cert.set_defaults(func=run_init_cert)
    serve = actions.add_parser("serve", parents=[common], help="serve the console until stopped",
                               description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    serve.add_argument("--quiet", action="store_true", help="log warnings and errors only")
    serve.set_defaults(func=run_serve)


def settings_of(args):
    if args.hub:
        from edge.console import hub as hub_console  # psycopg is the fleet extra's: loaded for --hub only
        from edge.hub.home import hub_home

        home = hub_home(args.home)
        return home / "hub.toml", hub_console.console_settings(home)
    daemon = config.from_command_line(args.config, args.no_config)
    return daemon.path or "the config file", kiosk_settings(daemon)


def run_init_cert(args) -> int:
    _, console = settings_of(args)
    printed = make_certificate(console.certificate, console.private_key,
                               default_names(console.address) + args.name, overwrite=args.force)
    print(f"console certificate {console.certificate} (key {console.private_key})\nSHA-256 fingerprint {printed}")
    return 0


def run_serve(args) -> int:
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING if args.quiet else logging.INFO,
                        format="edge-verify console: %(levelname)s: %(message)s")
    if args.hub:
        from edge.console import hub as hub_console  # psycopg is the fleet extra's: loaded for --hub only
        from edge.hub.home import hub_home

        home = hub_home(args.home)
        running = RunningConsole(hub_console.HubConsole(home), hub_console.console_settings(home), str(home / "hub.toml"))
    else:
        daemon = config.from_command_line(args.config, args.no_config)
        console = kiosk_settings(daemon)
        running = RunningConsole(KioskConsole(daemon, console.session_s), console,
                                 str(daemon.path or "the config file"))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    print(f"edge-verify console at {running.url} (certificate fingerprint {fingerprint(settings_of(args)[1].certificate)})",
          file=sys.stderr, flush=True)
    return serve_until(running, stop)
