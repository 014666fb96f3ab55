"""`edge-verify admin set-token`: the token that authorises gallery changes."""
from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from edge import paths
from edge.exc import AuthError
from edge.gallery import lift_lockout, open_gallery
from edge.gallery.audit import default_actor
from edge.gallery.auth import set_token, token_from, token_path

HELP = """\
Enrollment, removal, renaming, import and export need the admin token. Set it with

  sudo edge-verify admin set-token            (then type the new token twice)
  printf '%s\\n' "$NEW" | edge-verify admin set-token --token "$CURRENT"

Setting the token needs root, or the current token (--token or
$EDGE_VERIFY_ADMIN_TOKEN); the very first token may be set by whoever can write
the gallery's folder. The new token is read from the terminal without echo, or
from the first line of stdin; --new works too but shows the token in `ps`.
Only a salted scrypt hash is kept, in gallery.admin-token beside the gallery
(mode 0600), and the change is written to the gallery's audit log.
Use the token with --token TOKEN or EDGE_VERIFY_ADMIN_TOKEN=TOKEN.
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser("admin", help="set the admin token that authorises gallery changes; unlock",
                                   description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    set_token = actions.add_parser("set-token", help="set or change the admin token", description=HELP,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    set_token.add_argument("--token", metavar="CURRENT",
                           help="the current token (default: $EDGE_VERIFY_ADMIN_TOKEN); not needed as root")
    set_token.add_argument("--new", metavar="NEW", help="the new token (default: read from the terminal or stdin)")
    set_token.add_argument("--gallery", metavar="PATH", type=Path,
                           help="the gallery the token guards (default: $EDGE_VERIFY_HOME/gallery.sqlite)")
    set_token.add_argument("--key", metavar="PATH", type=Path,
                           help="the gallery's key file, for the audit record (default: gallery.key in "
                           "$EDGE_VERIFY_HOME)")
    set_token.set_defaults(func=run_set_token)
    unlock = actions.add_parser("unlock", help="lift the lock after too many wrong admin tokens (root only)",
                                description="After 10 wrong admin tokens in a row every admin command is refused, "
                                "even with the right token, until root runs this. It is recorded in the audit log.")
    unlock.add_argument("--gallery", metavar="PATH", type=Path,
                        help="the gallery (default: $EDGE_VERIFY_HOME/gallery.sqlite)")
    unlock.add_argument("--key", metavar="PATH", type=Path, help="its key file, for the audit record")
    unlock.set_defaults(func=run_unlock)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def run_set_token(args) -> int:
    gallery = args.gallery if args.gallery is not None else paths.gallery_path()
    new = args.new if args.new is not None else read_new_token()
    stored = token_path(gallery)
    if gallery.exists():
        with open_gallery(gallery, args.key) as opened:
            grounds = set_token(stored, new, token_from(args.token), audit=opened, actor=default_actor())
    else:
        # No gallery, so no key to sign a record with yet: the gallery's first record notes the token.
        grounds = set_token(stored, new, token_from(args.token))
    print(f"admin token set (authorised as {grounds}); its salted hash is in {stored}")
    return 0


def run_unlock(args) -> int:
    forgiven = lift_lockout(args.gallery, args.key)
    print(f"admin commands unlocked ({forgiven} wrong token{'s' if forgiven != 1 else ''} forgiven)")
    return 0


def read_new_token() -> str:
    """From the terminal (typed twice, not echoed) or the first line of stdin."""
    if sys.stdin.isatty():
        first = getpass.getpass("new admin token: ")
        if getpass.getpass("again: ") != first:
            raise AuthError("the two tokens typed differ; nothing was changed")
        return first
    line = sys.stdin.readline()
    if not line:
        raise AuthError("no new token given: type it at the terminal, pipe it on stdin, or pass --new")
    return line.rstrip("\r\n")
