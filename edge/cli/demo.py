"""`edge-verify demo`: the kiosk end to end, with no camera and no GPIO."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from edge.demo import run_demo

HELP = """\
Runs the whole kiosk on this computer in about half a minute:

  1. fetches the starter models if they are not here yet (needs the build extra once:
     pip install 'edge-verify[build]');
  2. enrolls three people from photos that ship with edge-verify;
  3. makes a video clip in which enrolled people and strangers step up to the
     "camera" in turn (enrolled people with a different photo than they enrolled with);
  4. plays the clip through the real daemon with the door relay on a simulated
     (gpiozero MockFactory) pin, printing every decision and whether the door is
     open, then a summary: who was let in, that no stranger was, and the relay
     pin's recorded history.

Exit status 0 when the run went as the clip demands, 1 otherwise.
The models go to $EDGE_VERIFY_HOME/models as usual; the gallery, clip and events
go to a temporary folder (removed afterwards) or to --home DIR (kept).
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="try the kiosk without camera or GPIO", description=HELP,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, metavar="DIR",
                        help="keep the demo's gallery, clip and events here (a new or empty folder, or an "
                        "earlier demo home)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary demo folder and say where it is")
    parser.add_argument("--verbose", action="store_true", help="also show the daemon's log")
    parser.set_defaults(func=run)


def run(args) -> int:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO if args.verbose else logging.ERROR,
                        format="edge-verify: %(levelname)s: %(message)s")
    result = run_demo(home=args.home, keep=args.keep, out=lambda line: print(line, flush=True))
    return 0 if result.ok else 1
