"""`edge-verify hub ...`: the site's hub (PostgreSQL + the MQTT broker), for many doors."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edge.cli.common import add_engine_arguments, load_pipeline

HELP = """\
The hub of a site with many doors: one staff list in PostgreSQL, changes sent to
every kiosk through the site's MQTT broker (Mosquitto), events back from them.

Set up:     edge-verify hub init --home DIR --dsn DSN --admin NAME [--site main]
            then start Mosquitto with DIR/broker/mosquitto.conf, and `edge-verify hub serve`
Kiosks:     edge-verify hub add-device door-1 --site main --out door-1.json   (copy it to the kiosk)
            edge-verify hub revoke-device door-1
Staff:      edge-verify hub enroll "Ada Lovelace" --site main --images a.jpg b.jpg c.jpg
            edge-verify hub rename "Ada Lovelace" "Ada King" --site main
            edge-verify hub remove "Ada Lovelace" --site main
            edge-verify hub list --site main [--devices] [--audit 20]
Admins:     edge-verify hub add-admin NAME | unlock-admin NAME

Every command but serve acts as an admin: --admin NAME (or $EDGE_VERIFY_HUB_ADMIN),
password from $EDGE_VERIFY_HUB_PASSWORD or asked. Wrong passwords are audited and
slow the account down; ten in a row lock it until another admin unlocks it.
The hub's folder is --home, else $EDGE_VERIFY_HUB_HOME, else /var/lib/edge-verify-hub.
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser("hub", help="the hub of a site with many doors (PostgreSQL + MQTT)",
                                   description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="hub_command", metavar="COMMAND")

    def command(name: str, help_text: str, func):
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--home", metavar="DIR", help="the hub's folder (default: $EDGE_VERIFY_HUB_HOME or "
                                                        "/var/lib/edge-verify-hub)")
        sub.add_argument("--admin", metavar="NAME", help="admin account (default: $EDGE_VERIFY_HUB_ADMIN)")
        sub.add_argument("--json", action="store_true", help="print the result as JSON")
        sub.set_defaults(func=func)
        return sub

    init = command("init", "make the hub (CA, broker files, database, first admin), or add a site to it", run_init)
    init.add_argument("--dsn", help="PostgreSQL connection string (first run only; kept in hub.toml)")
    init.add_argument("--site", default="main", help="site name (default: main); run again to add another")
    init.add_argument("--broker-host", default="127.0.0.1", help="address the broker listens on and kiosks dial")
    init.add_argument("--broker-port", type=int, default=8883, help="broker TLS port (default: 8883)")
    init.add_argument("--server-name", action="append", default=[], metavar="NAME",
                      help="more names or addresses in the broker's certificate (repeatable)")
    init.add_argument("--pid-file", help="the broker's pid file, to reload it after device changes")
    init.add_argument("--broker-user", default="mosquitto",
                      help="account Mosquitto drops to when started as root (owns DIR/broker; default: mosquitto)")
    init.add_argument("--metrics", default="127.0.0.1:9101", help="loopback address of the hub's /metrics")
    init.add_argument("--offline-policy", choices=("keep", "lock"), default="keep",
                      help="what kiosks do when the hub is silent too long: keep deciding (default) or lock down")
    init.add_argument("--max-silence", type=int, default=3600, metavar="S",
                      help="seconds of hub silence the policy allows (default: 3600)")

    command("serve", "run the hub: publish changes, answer kiosks, store events (systemd unit: "
                     "edge-verify-hub.service)", run_serve)

    add = command("add-device", "register a kiosk and write its provisioning bundle", run_add_device)
    add.add_argument("name", help="device name (lower-case letters, digits, dashes)")
    add.add_argument("--site", default="main")
    add.add_argument("--out", type=Path, required=True, help="bundle file to write (mode 0600; never overwritten)")
    add.add_argument("--broker-host", help="broker address as the kiosk reaches it (default: hub.toml's)")

    revoke = command("revoke-device", "revoke a kiosk: broker password and ACL removed, refused by the hub",
                     run_revoke_device)
    revoke.add_argument("name")

    enroll = command("enroll", "enroll a person for a whole site from photos (same checks as a kiosk)", run_enroll)
    enroll.add_argument("name", metavar="NAME")
    enroll.add_argument("--site", default="main")
    enroll.add_argument("--images", type=Path, nargs="+", required=True, metavar="F")
    enroll.add_argument("--force", action="store_true", help="enroll although the face matches another person")
    add_engine_arguments(enroll)

    rename = command("rename", "give a person of a site another name (every kiosk follows)", run_rename)
    rename.add_argument("old", metavar="NAME")
    rename.add_argument("new", metavar="NEW_NAME")
    rename.add_argument("--site", default="main")

    remove = command("remove", "remove a person from a whole site (every kiosk, within seconds)", run_remove)
    remove.add_argument("name", metavar="NAME")
    remove.add_argument("--site", default="main")

    listing = command("list", "sites; with --site its people; devices; the audit log", run_list)
    listing.add_argument("--site")
    listing.add_argument("--devices", action="store_true")
    listing.add_argument("--audit", type=int, default=0, metavar="N", help="the last N audit records")

    admin = command("add-admin", "add a hub admin account (password from $EDGE_VERIFY_HUB_NEW_PASSWORD or asked)",
                    run_add_admin)
    admin.add_argument("name")
    unlock = command("unlock-admin", "unlock an admin account locked after wrong passwords", run_unlock_admin)
    unlock.add_argument("name")

    policy = command("policy", "set what a site's kiosks do when the hub is silent too long", run_policy)
    policy.add_argument("--site", default="main")
    policy.add_argument("--offline-policy", choices=("keep", "lock"), required=True)
    policy.add_argument("--max-silence", type=int, required=True, metavar="S")
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def _commands():
    from edge.hub import commands  # psycopg is the fleet extra's: only loaded for hub commands

    return commands


def _print(args, result: dict, text: str) -> int:
    print(json.dumps(result, indent=2, default=str) if args.json else text)
    return 0


def run_init(args) -> int:
    result = _commands().init(args.home, args.dsn, args.site, args.admin, args.broker_host, args.broker_port,
                              args.server_name, args.pid_file, args.metrics, args.offline_policy, args.max_silence,
                              args.broker_user)
    return _print(args, result, f"hub at {result['home']}: site {result['site']} "
                                f"{'added' if result['new_site'] else 'already there'}; broker config "
                                f"{result['broker_config']}")


def run_serve(args) -> int:
    return _commands().serve(args.home)


def run_add_device(args) -> int:
    result = _commands().add_device(args.home, args.admin, args.name, args.site, args.out, args.broker_host)
    return _print(args, result, f"device {result['device']} added to site {result['site']}; bundle "
                                f"{result['bundle']} (copy it to the kiosk, mode 0600, then delete it here)")


def run_revoke_device(args) -> int:
    result = _commands().revoke_device(args.home, args.admin, args.name)
    note = "the broker reloaded" if result["broker_reloaded"] else "reload the broker now (SIGHUP) to cut it off"
    return _print(args, result, f"device {result['device']} revoked; {note}")


def run_enroll(args) -> int:
    result = _commands().enroll(args.home, args.admin, args.name, args.site, args.images, args.force,
                                lambda: load_pipeline(args), lambda line: print(line, file=sys.stderr, flush=True))
    return _print(args, result, f"enrolled {result['name']} at site {result['site']}: {result['templates']} templates "
                                f"(change {result['seq']})")


def run_rename(args) -> int:
    result = _commands().rename(args.home, args.admin, args.old, args.new, args.site)
    return _print(args, result, f"renamed {result['was']} to {result['name']} at site {result['site']} (change "
                                f"{result['seq']}, {result['templates']} templates)")


def run_remove(args) -> int:
    result = _commands().remove(args.home, args.admin, args.name, args.site)
    return _print(args, result, f"removed {result['name']} from site {result['site']} (change {result['seq']}, "
                                f"{result['templates_erased']} templates erased)")


def run_list(args) -> int:
    result = _commands().listing(args.home, args.admin, args.site, args.devices, args.audit)
    if args.json:
        return _print(args, result, "")
    for site in result["sites"]:
        print(f"site {site['name']}: change {site['last_seq']}, offline policy {site['offline_policy']} after "
              f"{site['max_silence_s']} s")
    for person in result.get("people", []):
        print(f"  {person['name']}: {person['templates']} templates ({person['origin']}, {person['enrolled_at']})")
    for device in result.get("devices", []):
        state = f"revoked {device['revoked_at']}" if device["revoked_at"] else (device["status"] or "never seen")
        print(f"  device {device['name']} ({device['site']}): {state}")
    for record in result.get("audit", []):
        print(f"  {record['time']} {record['actor']}: {record['action']} {record['subject']} {record['details']}")
    return 0


def run_add_admin(args) -> int:
    return _print(args, _commands().add_admin(args.home, args.admin, args.name), f"admin {args.name} added")


def run_unlock_admin(args) -> int:
    return _print(args, _commands().unlock_admin(args.home, args.admin, args.name), f"admin {args.name} unlocked")


def run_policy(args) -> int:
    result = _commands().set_policy(args.home, args.admin, args.site, args.offline_policy, args.max_silence)
    return _print(args, result, f"site {args.site}: {args.offline_policy} after {args.max_silence} s of hub silence")
