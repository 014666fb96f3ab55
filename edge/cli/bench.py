"""`edge-verify bench lfw|speed`: accuracy on LFW and speed per stage."""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np

from edge.bench import lfw, runner
from edge.cli.common import add_engine_arguments, load_pipeline, write_json
from edge.exc import ConfigError
from edge.vision.image import load_image

LFW_HELP = """\
Score the pipeline on the LFW protocol of DIR/pairs.txt (View 2): 10-fold accuracy
(each fold at the threshold chosen on the other nine), accuracy at the shipped
threshold, ROC AUC, true-accept rate at a false-accept rate of 1e-3, images where
no face was found, and median milliseconds per image per stage. DIR holds
pairs.txt and images/<Name>/<Name>_NNNN.jpg. Takes ~4 minutes for 7,701 images
on one core.
"""

SPEED_HELP = """\
Time decode, detect, align and embed over every image under DIR (recursive) after
a warm-up, and print the median and 90th percentile per stage.
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser("bench", help="accuracy (LFW) and speed benchmarks",
                                   description="Benchmarks for kiosk makers: accuracy on LFW, speed per stage.")
    kinds = parser.add_subparsers(dest="bench", metavar="KIND")
    lfw = kinds.add_parser("lfw", help="LFW View 2 accuracy", description=LFW_HELP)
    lfw.add_argument("--lfw", required=True, type=Path, metavar="DIR", help="LFW folder with pairs.txt and images/")
    lfw.add_argument("--pairs", type=Path, help="pairs file (default: DIR/pairs.txt; pairsDevTrain.txt to choose a threshold)")
    lfw.add_argument("--json", dest="json_out", metavar="OUT", help="write the figures as JSON to OUT ('-' for stdout)")
    lfw.add_argument("--save-embeddings", type=Path, metavar="NPZ", help="keep every image's embedding in NPZ")
    add_engine_arguments(lfw, threads_default=1)
    lfw.set_defaults(func=run_lfw)

    speed = kinds.add_parser("speed", help="per-stage timing over a folder of images", description=SPEED_HELP)
    speed.add_argument("--images", required=True, type=Path, metavar="DIR")
    speed.add_argument("--warmup", type=int, default=5, help="images run before timing starts (default: 5)")
    speed.add_argument("--json", dest="json_out", metavar="OUT", help="write the figures as JSON to OUT ('-' for stdout)")
    add_engine_arguments(speed, threads_default=1)
    speed.set_defaults(func=run_speed)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def run_lfw(args) -> int:
    pairs_path = args.pairs or args.lfw / "pairs.txt"
    pairs = lfw.read_pairs(pairs_path)
    images_dir = args.lfw / "images"
    if not images_dir.is_dir():
        raise ConfigError(f"{images_dir} does not exist: --lfw must point at the folder holding images/ and pairs.txt")
    names = lfw.unique_images(pairs)
    pipeline = load_pipeline(args)
    by_path, stages, unreadable = runner.describe_all(pipeline, [images_dir / n for n in names], "LFW")
    embeddings = {name: by_path[images_dir / name] for name in names}
    distances = lfw.pair_distances(pairs, embeddings)
    result = lfw.score(pairs, distances, pipeline.threshold)
    no_face = [name for name, value in embeddings.items() if value is None]
    result.update({
        "images": len(names),
        "no_face": len(no_face),
        "no_face_images": no_face,
        "unreadable": unreadable,
        "ms": {stage: runner.summarise(values)["median"] for stage, values in stages.items()},
        "backend": args.backend, "precision": args.precision, "threads": args.threads, "flip": args.flip,
        "pairs_file": str(pairs_path),
    })
    if args.save_embeddings:
        found = {k: v for k, v in embeddings.items() if v is not None}
        np.savez_compressed(args.save_embeddings, names=np.array(list(found)), embeddings=np.stack(list(found.values())))
    # With --json - the JSON owns stdout, so the table goes to stderr.
    print_lfw_table(result, sys.stderr if args.json_out == "-" else sys.stdout)
    if args.json_out:
        write_json(result, args.json_out)
    return 0


def print_lfw_table(result: dict, out=sys.stdout) -> None:
    rows = [
        ("pairs", f"{result['pairs']}"),
        ("10-fold accuracy", f"{result['accuracy_mean'] * 100:.2f} % ± {result['accuracy_std'] * 100:.2f}"),
        (f"accuracy at shipped threshold {result['threshold']:.4f}", f"{result['accuracy_at_threshold'] * 100:.2f} %"),
        ("ROC AUC", f"{result['auc']:.5f}"),
        ("TAR at FAR 1e-3", f"{result['tar_at_far_1e-3'] * 100:.2f} %"),
        ("images with no face", f"{result['no_face']} of {result['images']}"),
    ] + [(f"median ms, {stage}", f"{value:.2f}" if value is not None else "-") for stage, value in result["ms"].items()]
    width = max(len(label) for label, _ in rows)
    print(f"{'LFW':<{width}}  {result['backend']} {result['precision']}", file=out)
    for label, value in rows:
        print(f"{label:<{width}}  {value}", file=out)


def run_speed(args) -> int:
    paths = runner.list_images(args.images)
    if not paths:
        raise ConfigError(f"no images (jpg, png, bmp, webp) under {args.images}")
    pipeline = load_pipeline(args)
    for path in paths[: args.warmup]:
        try:
            pipeline.describe(load_image(path))
        except Exception as error:  # warm-up only; the timed pass reports problems per image
            warnings.warn(f"warm-up skipped {path}: {error}")
    _, stages, unreadable = runner.describe_all(pipeline, paths, "speed")
    result = {
        "images": len(paths),
        "unreadable": len(unreadable),
        "ms": {stage: runner.summarise(values) for stage, values in stages.items()},
        "backend": args.backend, "precision": args.precision, "threads": args.threads, "flip": args.flip,
    }
    out = sys.stderr if args.json_out == "-" else sys.stdout
    width = 8
    print(f"{'stage':<{width}}  median ms   p90 ms   ({len(paths)} images, {args.backend} {args.precision}, {args.threads} thread(s))", file=out)
    for stage, figures in result["ms"].items():
        if figures["median"] is not None:
            print(f"{stage:<{width}}  {figures['median']:9.2f}  {figures['p90']:7.2f}", file=out)
    if args.json_out:
        write_json(result, args.json_out)
    return 0
