"""`edge-verify identify IMG...`: who the kiosk would say each photo shows."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edge.cli.common import add_engine_arguments, load_pipeline

HELP = """\
For each photo: the person the kiosk would recognise, or nobody. Use it after
`edge-verify enroll` with a photo the enrollment did not use.

The decision is the kiosk's: the main face, the nearest enrolled person, and
the 1:N threshold for the gallery's current number of templates, chosen so that
at most 1 stranger in 1,000 attempts is taken for somebody (`edge-verify
gallery show` prints it). A face farther than that is nobody.

--json prints a list with one object per photo: image, person (null when
nobody passes the threshold), distance (to the nearest person), margin (how
much nearer than the second-nearest person; null with one person enrolled),
threshold, nearest, faces, and reason when person is null.
Exit code 0 when every photo was read, 1 when any was unreadable.
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser("identify", help="who the kiosk would say each photo shows",
                                   description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", metavar="IMG", nargs="+", type=Path, help="photo files")
    parser.add_argument("--json", action="store_true", help="print a JSON list, one object per photo")
    parser.add_argument("--gallery", metavar="PATH", type=Path,
                        help="gallery file (default: $EDGE_VERIFY_HOME/gallery.sqlite)")
    parser.add_argument("--key", metavar="PATH", type=Path, help="key file (default: gallery.key in $EDGE_VERIFY_HOME)")
    add_engine_arguments(parser, threads_default=None)
    parser.set_defaults(func=run)


def run(args) -> int:
    from edge.enroll.identify import GallerySnapshot, identify_image
    from edge.gallery import open_gallery

    pipeline = load_pipeline(args)
    with open_gallery(args.gallery, args.key) as gallery:
        snapshot = GallerySnapshot.load(gallery, pipeline.manifest)
    if snapshot.choice.note:
        print(f"edge-verify: warning: {snapshot.choice.note}", file=sys.stderr)
    answers = [identify_image(pipeline, snapshot, path) for path in args.images]
    if args.json:
        print(json.dumps(answers, indent=2))
    else:
        for answer in answers:
            print(describe(answer))
    return 1 if any(answer["faces"] is None for answer in answers) else 0


def describe(answer: dict) -> str:
    if answer["person"] is not None:
        margin = "" if answer["margin"] is None else f", margin {answer['margin']:.3f}"
        return (f"{answer['image']}: {answer['person']} "
                f"(distance {answer['distance']:.3f} <= {answer['threshold']:.3f}{margin})")
    return f"{answer['image']}: nobody ({answer['reason']})"
