"""The `edge-verify` command line.

Each subcommand lives in its own module under edge/cli/ and exposes
``register(subparsers)``, which adds its parser and sets ``func`` to a handler
taking the parsed arguments and returning an exit code. Modules are imported only
when the command line is built, so importing edge.cli is cheap.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from edge.disk import is_no_space, space_advice
from edge.exc import EdgeVerifyError
from edge.owners import permission_advice

# Order here is the order in `edge-verify --help`.
COMMANDS = (
    "demo",
    "run",
    "verify",
    "identify",
    "enroll",
    "gallery",
    "admin",
    "selftest",
    "door",
    "console",
    "hub",
    "fleet",
    "liveness",
    "models",
    "build",
    "bench",
    "train",
)

DESCRIPTION = """\
Face verification for door kiosks.

Installers:   edge-verify enroll NAME --images a.jpg b.jpg ...   then   edge-verify identify photo.jpg
Technicians:  edge-verify selftest
Kiosk makers: edge-verify models fetch; edge-verify build ...; edge-verify bench lfw --lfw DIR
Try it:       edge-verify demo   (no camera or GPIO needed)
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-verify",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"edge.cli.{name}")
        except ModuleNotFoundError as error:
            if error.name == f"edge.cli.{name}":
                continue  # command not part of this build
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except EdgeVerifyError as error:
        print(f"edge-verify: error: {error}", file=sys.stderr)
        return error.exit_code
    except BrokenPipeError:
        # `edge-verify ... | head`: the reader has gone; nothing to say, and nothing more to print.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as error:
        # Said by the gallery layer in its own words where it can; anything else about space or
        # permissions is still one line saying what to do.
        if is_no_space(error):
            print(f"edge-verify: error: {space_advice(error.filename or '.')}", file=sys.stderr)
            return 1
        if isinstance(error, PermissionError):
            print(f"edge-verify: error: {permission_advice(error.filename or 'a file', 'use')}", file=sys.stderr)
            return 1
        raise
    except KeyboardInterrupt:
        print("edge-verify: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
