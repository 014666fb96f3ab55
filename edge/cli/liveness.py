"""`edge-verify liveness IMG|CLIP...`: a real person, or a print or a screen?"""
from __future__ import annotations

import argparse
import json

from edge.cli.common import positive_int
from edge.liveness.check import is_photo, judge_clip, judge_photo
from edge.liveness.judge import CUES, check_colour_chips, load_liveness
from edge.models.registry import BACKENDS, PRECISIONS
from edge.pipeline import SEARCH_EVERY, FacePipeline
from edge.vision.image import load_image

HELP = f"""\
Judge the main face of photos and clips with the liveness cues the daemon uses: the liveness
model (`edge-verify train liveness`: texture, context and motion cues, and cnn with --cnn) and,
when one is built, the attributes engine's `live` head (the colour cue). Any enabled cue that
calls an attack refuses, and the verdict names it.

A photo (IMG: .jpg, .png, ...) is one frame: the frame cues judge it alone. A clip (file://clip.avi,
a video path, or dir://FOLDER of frames) is read frame by frame and judged per track (the main face
of consecutive frames whose boxes overlap), as the daemon judges (finding the face as it does too:
the whole frame searched every --search-every frames, the face of the frame before followed in
between): a track is live on a frame when its
last frames' mean scores pass every frame cue and the motion cue has not seen it move like a plane
(a face that has begun to turn like one is held for a few frames while the cue decides).

Prints one line per photo or track; with --json one object per input:
  photo: {{image, face, live, refused_by, reason, scores}}
  clip:  {{clip, frames, faces, tracks: [{{track, first_frame, last_frame, frames, live, live_frames,
          refused_by, last}}]}}
Scores are attack scores (higher: more like an attack) for texture and context, the attack logit
for cnn, the probability of `live` for colour, and the call (live, attack, deciding, undecided)
for motion. Cues: {', '.join(CUES)}.
Exit status: 0 when every input was read, 1 when one is unreadable.
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser("liveness", help="is the face a real person, or a print or a screen?",
                                   description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", metavar="IMG|CLIP", help="photos, video files or file:// / dir:// URIs")
    parser.add_argument("--json", action="store_true", help="print JSON (see above)")
    parser.add_argument("--cues", default="auto", metavar="LIST",
                        help="comma-separated cues, or auto: every cue whose model is present (default auto)")
    parser.add_argument("--active", action="store_true",
                        help="clips: live only after a head turn shows parallax (the daemon's [liveness] active)")
    parser.add_argument("--min-face", type=float, default=0.0, metavar="PX",
                        help="clips: ignore faces smaller than this (the daemon's min_face_px; default 0)")
    parser.add_argument("--search-every", type=positive_int, default=SEARCH_EVERY, metavar="N",
                        help="clips: search the whole frame for faces every N frames, following the face of the "
                             f"frame before in between (the daemon's [engine] search_every; default {SEARCH_EVERY}; "
                             "1 searches every frame)")
    group = parser.add_argument_group("engines")
    group.add_argument("--precision", choices=PRECISIONS, default="fp32",
                       help="attributes engine precision, as built by `edge-verify build --model attributes` (default fp32)")
    group.add_argument("--backend", choices=BACKENDS, default="onnxruntime", help="attributes engine backend (default onnxruntime)")
    group.add_argument("--threads", type=positive_int, help="CPU threads per engine (default: onnxruntime's choice)")
    parser.set_defaults(func=run)


def run(args) -> int:
    # Read every photo and find the cues before loading the detector: a typo fails in milliseconds.
    photos = {item: load_image(item) for item in args.inputs if is_photo(item)}
    liveness = load_liveness(args.cues, args.active, args.precision, args.backend, threads=args.threads)
    # Faces are found and aligned exactly as at the door (FP32 detector, the embedding contract's chips).
    pipeline = FacePipeline.load(threads=args.threads, flip=False)
    check_colour_chips(liveness, pipeline.manifest)
    results = []
    for item in args.inputs:
        if item in photos:
            results.append({"image": item, **judge_photo(pipeline, liveness, photos[item])})
        else:
            results.append({"clip": item, **judge_clip(pipeline, liveness, item, args.min_face, args.search_every)})
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"cues: {', '.join(liveness.cues)}")
    for result in results:
        for line in describe(result):
            print(line)
    return 0


def describe(result: dict) -> list[str]:
    if "image" in result:
        if not result["face"]:
            return [f"{result['image']}: no face found"]
        return [f"{result['image']}: {verdict_text(result)} ({scores_text(result['scores'])})"]
    lines = [f"{result['clip']}: {result['frames']} frames, {result['faces']} with a face, {len(result['tracks'])} tracks"]
    for track in result["tracks"]:
        refused = ", ".join(f"{cue} on {count}" for cue, count in track["refused_by"].items()) or "none"
        lines.append(f"  track {track['track']} (frames {track['first_frame']}-{track['last_frame']}): "
                     f"{'LIVE' if track['live'] else 'NOT LIVE'}, live on {track['live_frames']} of {track['frames']} "
                     f"frames; refused by: {refused}; last: {scores_text(track['last']['scores'])}")
    return lines


def verdict_text(result: dict) -> str:
    if result["live"]:
        return "LIVE"
    return f"NOT LIVE ({result['refused_by']}: {result['reason']})" if result["refused_by"] else "NOT LIVE"


def scores_text(scores: dict) -> str:
    return ", ".join(f"{name} {value:.4f}" if isinstance(value, float) else f"{name} {value}"
                     for name, value in scores.items())
