"""`edge-verify liveness IMG...`: real person or printed photo?"""
from __future__ import annotations

import json

from edge.cli.common import positive_int
from edge.liveness import check_same_chips, liveness_check, load_attributes_engine
from edge.models.registry import BACKENDS, PRECISIONS
from edge.pipeline import FacePipeline
from edge.vision.image import load_image

HELP = """\
Score the main face of each photo for liveness with the attributes engine
(`edge-verify train attributes`, then `edge-verify build --model attributes`).
The score is the probability of a real, present person; `live` compares it with
the threshold stored in the engine's manifest. Prints one line per photo, or with
--json one object per photo: {image, score, live, face}; `face` is false (and
score null, live false) when no face was found. A photo of a photo is not live.
Exit status: 0 when every photo was read, 1 when a file is unreadable.
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser("liveness", help="is the face a real person or a printed photo?", description=HELP)
    parser.add_argument("images", nargs="+", metavar="IMG", help="photos to score")
    parser.add_argument("--json", action="store_true", help="print a JSON list of {image, score, live, face}")
    group = parser.add_argument_group("engines")
    group.add_argument("--precision", choices=PRECISIONS, default="fp32",
                       help="attributes engine precision, as built by `edge-verify build --model attributes` (default fp32)")
    group.add_argument("--backend", choices=BACKENDS, default="onnxruntime", help="attributes engine backend (default onnxruntime)")
    group.add_argument("--threads", type=positive_int, help="CPU threads per engine (default: onnxruntime's choice)")
    parser.set_defaults(func=run)


def judge(pipeline, engine, image) -> dict:
    main = pipeline.main_face(image)
    if main is None:
        return {"score": None, "live": False, "face": False}
    score, live = liveness_check(engine, main.chip)
    return {"score": round(score, 6), "live": live, "face": True}


def run(args) -> int:
    # Read every file and find the engine before loading models: a typo fails in milliseconds.
    images = [load_image(path) for path in args.images]
    engine = load_attributes_engine(args.precision, args.backend, threads=args.threads)
    # Faces are found and aligned exactly as at the door (FP32 detector, the embedding contract's chips).
    pipeline = FacePipeline.load(threads=args.threads, flip=False)
    check_same_chips(engine.manifest, pipeline.manifest)
    results = [{"image": path, **judge(pipeline, engine, image)} for path, image in zip(args.images, images)]
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for result in results:
        if not result["face"]:
            print(f"{result['image']}: no face found")
        else:
            verdict = "LIVE" if result["live"] else "NOT LIVE"
            print(f"{result['image']}: {verdict} (score {result['score']:.4f}, threshold {engine.manifest['thresholds']['live']:.4f})")
    return 0
