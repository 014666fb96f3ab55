"""Clips of one NUAA subject for a daemon run: enrollment photos, a real clip, and their captured prints.

    python benchmarks/liveness_captured_clips.py --nuaa ../shared/datasets/nuaa_train --subject 0008 --out clips
    edge-verify enroll NUAA_0008 --images $(cat clips/enroll.txt)
    GPIOZERO_PIN_FACTORY=mock edge-verify run --no-config --source file://$PWD/clips/print-0008_00_00_01.avi \\
        --until-end --events ev.jsonl

Unlike benchmarks/liveness_attack_clip.py (a photo moved as a plane by the
computer), these are real attacks: NUAA's printed photos held and moved by a
hand in front of its webcam. Frames are taken in frame-number order (NUAA kept
about every 4th camera frame), scaled by --scale (NUAA's 240x180 faces are
70-80 px, under the kiosk's 80 px minimum), written as MJPG at 15 fps with a few
empty frames before and after. Enrollment: 5 frames spread over the first half
of the subject's first real sequence; the real clip: 30 frames of its second half.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

GAP_FRAMES = 8
CLIP_FRAMES = 30


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nuaa", type=Path, required=True, help="NUAA-style folder (real/SUBJECT, fake/SUBJECT)")
    parser.add_argument("--subject", default="0008")
    parser.add_argument("--scale", type=float, default=2.0)
    parser.add_argument("--out", type=Path, required=True)
    return parser.parse_args(argv)


def in_order(paths) -> list[Path]:
    """Frames of one NUAA sequence by their frame number (the last part of the name)."""
    return sorted(paths, key=lambda p: int(p.stem.rsplit("_", 1)[1]))


def sequences(folder: Path) -> dict:
    found = {}
    for path in folder.glob("*.jpg"):
        found.setdefault(path.stem.rsplit("_", 1)[0], []).append(path)
    return {name: in_order(paths) for name, paths in sorted(found.items())}


def read(path: Path, scale: float) -> np.ndarray:
    image = cv2.imread(str(path))
    if image is None:
        raise SystemExit(f"{path}: not an image")
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)


def write_clip(path: Path, frames: list[Path], scale: float) -> None:
    images = [read(frame, scale) for frame in frames]
    height, width = images[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 15.0, (width, height))
    blank = np.full_like(images[0], 128)
    for image in [blank] * GAP_FRAMES + images + [blank] * GAP_FRAMES:
        writer.write(image)
    writer.release()


def main(argv=None) -> int:
    args = parse_args(argv)
    real = sequences(args.nuaa / "real" / args.subject)
    fake = sequences(args.nuaa / "fake" / args.subject)
    if not real or not fake:
        raise SystemExit(f"{args.nuaa}: no real or fake frames of subject {args.subject}")
    args.out.mkdir(parents=True, exist_ok=True)
    first = next(iter(real.values()))
    half = len(first) // 2
    enrolled = []
    for frame in first[:half:max(1, half // 5)][:5]:
        target = args.out / f"{frame.stem}.png"
        cv2.imwrite(str(target), read(frame, args.scale))
        enrolled.append(str(target.resolve()))
    (args.out / "enroll.txt").write_text("\n".join(enrolled) + "\n")
    write_clip(args.out / "real.avi", first[half:half + CLIP_FRAMES], args.scale)
    for name, frames in fake.items():
        write_clip(args.out / f"print-{name}.avi", frames[:CLIP_FRAMES], args.scale)
    print(f"{args.out}: enroll.txt ({len(enrolled)} photos), real.avi, "
          + ", ".join(f"print-{name}.avi" for name in fake))
    return 0


if __name__ == "__main__":
    sys.exit(main())
