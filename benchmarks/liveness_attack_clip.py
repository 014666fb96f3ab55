"""Write a clip of a flat attack: a photo held up to the camera as a print or a phone, moved by a hand.

    python benchmarks/liveness_attack_clip.py PHOTO attack.avi --kind print --frames 30
    GPIOZERO_PIN_FACTORY=mock edge-verify run --no-config --source file://attack.avi --until-end --events ev.jsonl

The photo is mounted (white margin for a print, dark bezel for a phone), turned and
shifted as a plane in front of a 640x480 camera with noise, blur, exposure drift and
JPEG (edge_build.training.liveness_synth); the clip is MJPG at 15 fps.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from edge.vision.image import load_image
from edge_build.training import liveness_synth as synth


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("photo", type=Path, help="the face photo to hold up")
    parser.add_argument("out", type=Path, help="the clip to write (.avi)")
    parser.add_argument("--kind", choices=("print", "phone"), default="print")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--yaw", type=float, default=25.0, help="peak turn about the vertical axis, degrees")
    parser.add_argument("--pitch", type=float, default=12.0, help="peak turn about the horizontal axis, degrees")
    parser.add_argument("--width-m", type=float, default=0.15, help="width of the print or phone, metres")
    parser.add_argument("--distance-m", type=float, default=0.35, help="distance from the camera, metres")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    motion = synth.Motion(yaw_deg=args.yaw, pitch_deg=args.pitch, roll_deg=4.0, shift=0.02, depth=0.03)
    frames, _ = synth.flat_attack(load_image(args.photo), np.random.default_rng(args.seed), args.frames,
                                  kind=args.kind, motion=motion, card_width_m=args.width_m, distance_m=args.distance_m)
    writer = cv2.VideoWriter(str(args.out), cv2.VideoWriter_fourcc(*"MJPG"), 15.0, (640, 480))
    if not writer.isOpened():
        raise SystemExit(f"cannot write {args.out}")
    for frame in frames:
        writer.write(frame[..., ::-1])
    writer.release()
    print(f"wrote {args.out}: {args.frames} frames of {args.photo.name} as a moving {args.kind}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
