"""Arguments and helpers shared by several subcommands."""
from __future__ import annotations

import argparse
import json
import math
import sys

from edge.pipeline import FacePipeline
from edge.models.registry import BACKENDS, PRECISIONS


def add_engine_arguments(parser, threads_default: int | None = None) -> None:
    group = parser.add_argument_group("engines")
    group.add_argument("--backend", choices=BACKENDS, default="onnxruntime",
                       help="inference backend for the embedding engine (default: onnxruntime, the CPU path)")
    group.add_argument("--precision", choices=PRECISIONS, default="fp32",
                       help="embedding engine precision; int8/fp16 engines are made by `edge-verify build` (default: fp32)")
    group.add_argument("--threads", type=positive_int, default=threads_default,
                       help="CPU threads per engine (default: onnxruntime's choice)" if threads_default is None
                       else f"CPU threads per engine (default: {threads_default})")
    group.add_argument("--no-flip", dest="flip", action="store_false",
                       help="embed each face once instead of averaging it with its mirror image (faster, ~0.3 LFW points worse)")


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_number(text: str) -> float:
    """argparse type: a finite number greater than 0 (not NaN, not infinite)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number greater than 0, got {text!r}")
    return value


def load_pipeline(args):
    return FacePipeline.load(precision=args.precision, backend=args.backend, threads=args.threads, flip=args.flip)


def write_json(data, path: str | None) -> None:
    """Write JSON to a file, or to stdout when path is None or '-'."""
    text = json.dumps(data, indent=2)
    if path in (None, "-"):
        print(text)
        return
    with open(path, "w") as handle:
        handle.write(text + "\n")
    print(f"wrote {path}", file=sys.stderr)
