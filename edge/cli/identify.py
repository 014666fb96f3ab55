"""`edge-verify identify IMG... [--combine]`: who the kiosk would say each photo (or the photos together) shows."""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from edge.cli.common import add_engine_arguments, load_pipeline
from edge.daemon import config
from edge.daemon.watch import LiveGallery
from edge.enroll.identify import identify_combined, identify_image
from edge.gallery import open_gallery
from edge.gallery.threshold import ThresholdFallbackWarning

HELP = """\
For each photo: the person the kiosk would recognise, or nobody. Use it after
`edge-verify enroll` with a photo the enrollment did not use. With --combine,
all the photos (of one person) are one attempt, as the door judges the frames
of one face it follows: their embeddings are combined and decided once.

The decision is the kiosk's, made by the daemon's own code: the main face, the
combined embedding (of one photo, or of all of them with --combine), the nearest
enrolled person, and the door's 1:N threshold for combined probes at the
gallery's current number of templates, chosen so that at most [decision]
stranger_rate (default 1 in 1,000) strangers per approach are taken for
somebody, or the [decision] threshold when the daemon's config sets one
(`edge-verify gallery show` prints it). A face farther than that is nobody. The
[decision] settings are read from --config FILE (default
/etc/edge-verify/config.toml when it exists).

--json prints a list with one object per photo: image, person (null when
nobody passes the threshold), distance (to the nearest person), margin (how
much nearer than the second-nearest person; null with one person enrolled),
threshold, nearest, faces, and reason when person is null. With --combine, one
object: images, photos_combined, person, distance, margin, threshold, nearest,
faces (per photo), skipped (photos without a usable face), reason.
Exit code 0 when every photo was read, 1 when any was unreadable.
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser("identify", help="who the kiosk would say each photo shows",
                                   description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", metavar="IMG", nargs="+", type=Path, help="photo files")
    parser.add_argument("--combine", action="store_true",
                        help="the photos show one person: decide on them together, as one attempt at the door")
    parser.add_argument("--json", action="store_true", help="print a JSON list, one object per photo (with "
                        "--combine: one object)")
    parser.add_argument("--gallery", metavar="PATH", type=Path,
                        help="gallery file (default: $EDGE_VERIFY_HOME/gallery.sqlite)")
    parser.add_argument("--key", metavar="PATH", type=Path, help="key file (default: gallery.key in $EDGE_VERIFY_HOME)")
    parser.add_argument("--config", metavar="FILE",
                        help=f"the daemon's config file, for its [decision] settings (default: {config.DEFAULT_PATH} "
                        "when it exists)")
    parser.add_argument("--no-config", action="store_true", help="ignore the default config file: built-in defaults")
    add_engine_arguments(parser, threads_default=None)
    parser.set_defaults(func=run)


def run(args) -> int:
    decision = config.from_command_line(args.config, args.no_config).decision
    pipeline = load_pipeline(args)
    with open_gallery(args.gallery, args.key) as gallery:
        live = LiveGallery(gallery, pipeline.manifest, threshold=decision["threshold"],
                           stranger_rate=decision["stranger_rate"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ThresholdFallbackWarning)  # said once below, as a one-line warning
            live.load()
    if live.combined_choice.note:
        print(f"edge-verify: warning: {live.combined_choice.note}", file=sys.stderr)
    if args.combine:
        answer = identify_combined(pipeline, live, args.images)
        print(json.dumps(answer, indent=2) if args.json else describe_combined(answer))
        return 1 if any(faces is None for faces in answer["faces"]) else 0
    answers = [identify_image(pipeline, live, path) for path in args.images]
    if args.json:
        print(json.dumps(answers, indent=2))
    else:
        for answer in answers:
            print(describe(answer))
    return 1 if any(answer["faces"] is None for answer in answers) else 0


def describe_combined(answer: dict) -> str:
    photos = f"{answer['photos_combined']} of {len(answer['images'])} photos combined"
    lines = [f"skipped {line}" for line in answer["skipped"]]
    if answer["person"] is not None:
        margin = "" if answer["margin"] is None else f", margin {answer['margin']:.3f}"
        lines.append(f"{photos}: {answer['person']} (distance {answer['distance']:.3f} <= "
                     f"{answer['threshold']:.3f}{margin})")
    else:
        lines.append(f"{photos}: nobody ({answer['reason']})")
    return "\n".join(lines)


def describe(answer: dict) -> str:
    if answer["person"] is not None:
        margin = "" if answer["margin"] is None else f", margin {answer['margin']:.3f}"
        return (f"{answer['image']}: {answer['person']} "
                f"(distance {answer['distance']:.3f} <= {answer['threshold']:.3f}{margin})")
    return f"{answer['image']}: nobody ({answer['reason']})"
