"""`edge-verify verify A B`: are two photos the same person?"""
from __future__ import annotations

import json

from edge.cli.common import add_engine_arguments, load_pipeline, positive_number
from edge.verify.api import face_distance, is_same
from edge.vision.image import load_image

HELP = """\
Compare the main face of two photos. Prints SAME or DIFFERENT with the distance
between the two face embeddings and the threshold (from the embedding engine's
manifest): a distance at or below the threshold means the same person.
Exit status: 0 when compared (same or not), 1 when a file is unreadable or holds no face.
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser("verify", help="are two photos the same person?", description=HELP)
    parser.add_argument("image_a", metavar="A.jpg")
    parser.add_argument("image_b", metavar="B.jpg")
    parser.add_argument("--json", action="store_true", help="print {same, distance, threshold} as JSON")
    parser.add_argument("--threshold", type=positive_number, help="override the manifest's threshold")
    add_engine_arguments(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    # Read both files before loading models: a typo should fail in milliseconds.
    images = [load_image(args.image_a), load_image(args.image_b)]
    pipeline = load_pipeline(args)
    a, b = (pipeline.embed_primary(image, source) for image, source in zip(images, (args.image_a, args.image_b)))
    distance = float(face_distance(a, b))
    threshold = args.threshold if args.threshold is not None else pipeline.threshold
    same = is_same(distance, threshold)
    if args.json:
        print(json.dumps({"same": same, "distance": round(distance, 6), "threshold": threshold}))
    else:
        print(f"{'SAME' if same else 'DIFFERENT'} person: distance {distance:.4f} (threshold {threshold:.4f})")
    return 0
