"""Door clips from LFW photos: people walking up to the kiosk, as the camera would see them.

Each *approach* shows one person for a few seconds: 2-3 different photos of
them in turn (a real approach shows the face from slightly different angles and
expressions), pasted into a 640x480 frame at 15 fps, moving across the frame and
growing (walking closer), under a light level that drifts during the approach,
with sensor noise on every frame and motion or focus blur on some. Between two
approaches a few frames show the empty scene, so the kiosk sees the face leave.
Frames are written as MJPG AVI, what `edge-verify run --source file://...` reads.

Who is who (seeded, from the LFW image counts; ``people_split``):
  staff        the 158 people with >= 10 photos: enrolled with photos 1-5, they
               approach with 2-3 of photos 6-10 (200 approaches: each once, 42
               twice with another choice of photos);
  strangers    700 people with 2-9 photos, never enrolled: 1,000 approaches (300
               of them approach twice, other photos or another order);
  calibration  the other people with 2-9 photos: one approach each, used only to
               measure the impostor distances of combined probes
               (benchmarks/door_calibrate.py); never enrolled at 158 or 1,000;
  distractors  enrolled people who never approach: the people with one photo
               first (842 of them at 1,000 enrolled), then calibration people
               (4,842 at 5,000, of whom 773 are calibration people: LFW has
               5,749 people, too few to keep all three apart at 5,000).

    python benchmarks/door_clips.py --lfw ../shared/datasets/lfw --out /tmp/door

writes OUT/plan.json (the split and every approach with its frame range in its
clip) and the clips OUT/clips/{staff,strangers-N,calibration-N}.avi.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import cv2
import numpy as np

FPS = 15.0
FRAME_SIZE = (640, 480)  # width, height
GAP_FRAMES = 8  # empty scene between approaches: ~0.5 s, the face has left
STAFF_FRAMES = 45  # 3 s: long enough to see who is still outside after 2 s
STRANGER_FRAMES = 30  # 2 s
STAFF_APPROACHES = 200
STRANGER_PEOPLE = 700
STRANGER_APPROACHES = 1000
APPROACHES_PER_CLIP = 200
ENROLL_PHOTOS = range(1, 6)
APPROACH_PHOTOS = range(6, 11)


def image_name(person: str, number: int) -> str:
    return f"{person}/{person}_{number:04d}.jpg"


def photo_counts(lfw: Path) -> dict:
    return {folder.name: len(list(folder.glob("*.jpg")))
            for folder in sorted((lfw / "images").iterdir()) if folder.is_dir()}


def people_split(counts: dict, seed: int = 13) -> dict:
    """{staff, strangers, calibration, singles}: sorted name lists (strangers/calibration drawn with ``seed``)."""
    staff = sorted(name for name, count in counts.items() if count >= 10)
    several = sorted(name for name, count in counts.items() if 2 <= count < 10)
    singles = sorted(name for name, count in counts.items() if count == 1)
    rng = random.Random(seed)
    rng.shuffle(several)
    return {"staff": staff, "strangers": sorted(several[:STRANGER_PEOPLE]),
            "calibration": sorted(several[STRANGER_PEOPLE:]), "singles": singles}


def distractors(split: dict, count: int, seed: int = 13) -> list:
    """The first ``count`` enrolled people who never approach: singles first, then calibration people."""
    singles = list(split["singles"])
    calibration = list(split["calibration"])
    random.Random(seed + 1).shuffle(singles)
    random.Random(seed + 2).shuffle(calibration)
    pool = singles + calibration
    if count > len(pool):
        raise SystemExit(f"only {len(pool)} people can be distractors; asked for {count}")
    return pool[:count]


def choose_photos(rng: random.Random, numbers: list, taken: set) -> list:
    """2-3 distinct photo numbers, not a choice already used for this person (when another exists)."""
    for _ in range(50):
        size = min(len(numbers), rng.choice((2, 3)))
        picked = tuple(rng.sample(numbers, size))
        if picked not in taken:
            taken.add(picked)
            return list(picked)
    return list(picked)


def approaches(split: dict, counts: dict, seed: int = 13) -> list:
    """Every approach: {id, kind, person, photos: [relative image paths]} (ids in clip order)."""
    rng = random.Random(seed + 3)
    out = []

    def add(kind, person, numbers, taken):
        out.append({"kind": kind, "person": person,
                    "photos": [image_name(person, n) for n in choose_photos(rng, numbers, taken)]})

    staff = list(split["staff"])
    extra = rng.sample(staff, STAFF_APPROACHES - len(staff))
    taken: dict = {}
    order = staff + extra
    rng.shuffle(order)
    staff_list = spread(order)
    for person in staff_list:
        add("staff", person, list(APPROACH_PHOTOS), taken.setdefault(person, set()))
    strangers = list(split["strangers"])
    again = rng.sample(strangers, STRANGER_APPROACHES - len(strangers))
    order = strangers + again
    rng.shuffle(order)
    for person in spread(order):
        add("stranger", person, list(range(1, counts[person] + 1)), taken.setdefault(person, set()))
    for person in split["calibration"]:
        add("calibration", person, list(range(1, counts[person] + 1)), taken.setdefault(person, set()))
    for number, item in enumerate(out):
        item["id"] = number
    return out


def spread(order: list) -> list:
    """The same list with no person twice within 10 places (their second approach is not a re-try)."""
    result: list = []
    waiting = list(order)
    while waiting:
        for position, person in enumerate(waiting):
            if person not in result[-10:]:
                result.append(waiting.pop(position))
                break
        else:
            result.append(waiting.pop(0))
    return result


# ---- frames ------------------------------------------------------------------------------------------

def background(rng: np.random.Generator) -> np.ndarray:
    """An empty scene: a wall with a colour gradient and a darker floor band (BGR float32)."""
    width, height = FRAME_SIZE
    top, bottom = rng.uniform(70, 200, size=3), rng.uniform(40, 170, size=3)
    ramp = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    scene = top[None, None, :] * (1 - ramp) + bottom[None, None, :] * ramp
    scene = np.repeat(scene, width, axis=1).astype(np.float32)
    floor = int(height * rng.uniform(0.75, 0.9))
    scene[floor:] *= 0.7
    return scene


def feathered(photo: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """The photo scaled, and an alpha mask fading over its outer 12 % (no hard rectangle edge)."""
    side = max(int(round(photo.shape[0] * scale)), 8)
    scaled = cv2.resize(photo, (side, side), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    ramp = np.clip(np.minimum(np.arange(side), np.arange(side)[::-1]) / (0.12 * side), 0, 1).astype(np.float32)
    return scaled.astype(np.float32), np.minimum(ramp[:, None], ramp[None, :])[..., None]


def paste(scene: np.ndarray, photo: np.ndarray, alpha: np.ndarray, centre: tuple) -> np.ndarray:
    frame = scene.copy()
    side = photo.shape[0]
    left, top = int(round(centre[0] - side / 2)), int(round(centre[1] - side / 2))
    x1, y1 = max(left, 0), max(top, 0)
    x2, y2 = min(left + side, frame.shape[1]), min(top + side, frame.shape[0])
    if x2 <= x1 or y2 <= y1:
        return frame
    part = np.ascontiguousarray(photo[y1 - top:y2 - top, x1 - left:x2 - left])
    weight = np.ascontiguousarray(alpha[y1 - top:y2 - top, x1 - left:x2 - left, 0])
    frame[y1:y2, x1:x2] = cv2.blendLinear(part, np.ascontiguousarray(frame[y1:y2, x1:x2]), weight, 1.0 - weight)
    return frame


def blurred(frame: np.ndarray, box: tuple, rng: np.random.Generator) -> np.ndarray:
    """Motion blur (35 % of frames: a 3-11 px streak at any angle), focus blur (20 %), or none,
    applied around the face (``box``: x1, y1, x2, y2), the only part the kiosk looks at."""
    draw = rng.random()
    if draw >= 0.55:
        return frame
    x1, y1 = max(int(box[0]) - 16, 0), max(int(box[1]) - 16, 0)
    x2, y2 = min(int(box[2]) + 16, frame.shape[1]), min(int(box[3]) + 16, frame.shape[0])
    if x2 <= x1 or y2 <= y1:
        return frame
    region = frame[y1:y2, x1:x2]
    if draw < 0.35:
        length = int(rng.integers(3, 12))
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2, :] = 1.0 / length
        turn = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), float(rng.uniform(0, 180)), 1.0)
        kernel = cv2.warpAffine(kernel, turn, (length, length))
        kernel /= max(float(kernel.sum()), 1e-6)
        frame[y1:y2, x1:x2] = cv2.filter2D(region, -1, kernel)
    else:
        frame[y1:y2, x1:x2] = cv2.GaussianBlur(region, (0, 0), float(rng.uniform(0.6, 1.5)))
    return frame


class NoiseBank:
    """Sensor noise: unit Gaussian fields drawn once, taken at a random shift per frame
    (drawing 900,000 fresh numbers per frame would double the time to make a clip)."""

    def __init__(self, seed: int = 0, fields: int = 8):
        width, height = FRAME_SIZE
        rng = np.random.default_rng(seed)
        self.fields = [rng.standard_normal((height * 2, width * 2, 3), dtype=np.float32) for _ in range(fields)]

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        width, height = FRAME_SIZE
        field = self.fields[int(rng.integers(len(self.fields)))]
        top, left = int(rng.integers(height)), int(rng.integers(width))
        return field[top:top + height, left:left + width]


NOISE = None


def noise_bank() -> NoiseBank:
    global NOISE
    if NOISE is None:
        NOISE = NoiseBank()
    return NOISE


def approach_frames(photos: list, frames: int, rng: np.random.Generator) -> list:
    """BGR uint8 frames of one approach: ``photos`` (BGR arrays) shown in turn, moving, light drifting."""
    width, height = FRAME_SIZE
    scene = background(rng)
    scale_start = rng.uniform(1.25, 1.6)
    scale_end = scale_start + rng.uniform(0.05, 0.35)
    start = np.array([width / 2 + rng.uniform(-90, 90), height / 2 + rng.uniform(-30, 30)])
    end = np.array([width / 2 + rng.uniform(-60, 60), height / 2 + rng.uniform(-25, 25)])
    gain_start, gain_end = rng.uniform(0.55, 1.35, size=2)
    tint = rng.uniform(0.9, 1.1, size=3).astype(np.float32)
    noise = rng.uniform(2.0, 8.0)
    out = []
    for step in range(frames):
        t = step / max(frames - 1, 1)
        photo = photos[min(int(step * len(photos) / frames), len(photos) - 1)]
        image, alpha = feathered(photo, scale_start + (scale_end - scale_start) * t)
        centre = start + (end - start) * t + rng.normal(0, 2.5, size=2)
        frame = paste(scene, image, alpha, tuple(centre))
        half = image.shape[0] * 0.3  # the face: about the middle 60 % of an LFW photo
        frame = blurred(frame, (centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half), rng)
        gain = (gain_start + (gain_end - gain_start) * t) * tint
        frame = cv2.multiply(frame, (float(gain[0]), float(gain[1]), float(gain[2]), 0.0))
        frame = cv2.scaleAdd(np.ascontiguousarray(noise_bank().draw(rng)), float(noise), frame)
        out.append(np.clip(frame, 0, 255, out=frame).astype(np.uint8))
    return out


def empty_frames(count: int, rng: np.random.Generator) -> list:
    scene = background(rng)
    return [np.clip(scene + 4 * noise_bank().draw(rng), 0, 255).astype(np.uint8) for _ in range(count)]


def write_clip(path: Path, items: list, lfw: Path, frames_for: dict, seed: int) -> None:
    """Write the approaches ``items`` into one MJPG clip; sets each item's clip, first_frame, last_frame."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, FRAME_SIZE)
    if not writer.isOpened():
        raise SystemExit(f"cannot write {path}")
    index = 0
    try:
        for item in items:
            rng = np.random.default_rng([seed, item["id"]])
            for frame in empty_frames(GAP_FRAMES, rng):
                writer.write(frame)
                index += 1
            photos = [cv2.imread(str(lfw / "images" / name)) for name in item["photos"]]
            if any(photo is None for photo in photos):
                raise SystemExit(f"cannot read a photo of {item['person']} under {lfw}")
            frames = approach_frames(photos, frames_for[item["kind"]], rng)
            item.update(clip=path.name, first_frame=index, last_frame=index + len(frames) - 1)
            for frame in frames:
                writer.write(frame)
                index += 1
        for frame in empty_frames(GAP_FRAMES, np.random.default_rng([seed, 10**6])):
            writer.write(frame)
    finally:
        writer.release()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", type=Path, required=True, help="LFW folder (with images/)")
    parser.add_argument("--out", type=Path, required=True, help="folder for plan.json and clips/")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--kinds", nargs="+", default=["staff", "stranger", "calibration"],
                        choices=["staff", "stranger", "calibration"], help="which clips to write")
    args = parser.parse_args(argv)

    counts = photo_counts(args.lfw)
    split = people_split(counts, args.seed)
    items = approaches(split, counts, args.seed)
    frames_for = {"staff": STAFF_FRAMES, "stranger": STRANGER_FRAMES, "calibration": STRANGER_FRAMES}
    (args.out / "clips").mkdir(parents=True, exist_ok=True)
    for kind in args.kinds:
        chosen = [item for item in items if item["kind"] == kind]
        for part, first in enumerate(range(0, len(chosen), APPROACHES_PER_CLIP)):
            name = "staff" if kind == "staff" else f"{kind}-{part}"
            if kind == "staff":
                group = chosen  # one clip: every staff approach
            else:
                group = chosen[first:first + APPROACHES_PER_CLIP]
            write_clip(args.out / "clips" / f"{name}.avi", group, args.lfw, frames_for, args.seed)
            print(f"wrote {name}.avi: {len(group)} approaches", file=sys.stderr)
            if kind == "staff":
                break
    plan = {"fps": FPS, "frame_size": FRAME_SIZE, "gap_frames": GAP_FRAMES, "seed": args.seed,
            "frames": frames_for, "split": split, "approaches": items}
    (args.out / "plan.json").write_text(json.dumps(plan, indent=1) + "\n")
    print(f"wrote {args.out / 'plan.json'}: {len(items)} approaches", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
