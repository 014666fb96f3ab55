"""Flat attacks of people in neither liveness folder, judged per clip as `edge-verify liveness` judges them.

Each clip is an LFW photo (news photos of people who are not in NUAA or
replay_dev) mounted as a print (white margin) or a phone (dark bezel) in front
of a 640x480 camera with noise, blur, exposure drift and JPEG
(edge_build.training.liveness_synth), written as an MJPG file and read back
through ``file://`` by edge.liveness.check.judge_clip: the product's detector,
its tracks and the liveness model of $EDGE_VERIFY_HOME, every frame as the
daemon judges it. A clip is accepted when any of its tracks is live on any
frame (the door could have opened). A clip whose every track is shorter
than the cues' window ("short": the detector lost the face or a fast turn
broke the track) cannot be let in by any cue; it is counted apart.

Two hands, in turn with the two media:

* ``moving``: the hand of liveness_motion_clips.py (turns up to about 30
  degrees, shifts, nearer and farther, 0.5-1.2 swings per clip);
* ``still``: a steady hand or a stand (turns under 3 degrees, shifts under
  5 mm), which the motion cue cannot see turn: only the frame cues can refuse.

Optional real clips (``--real DIR --groups G,..``): a liveness folder's real
sequences of the named groups, cut into runs of ``--frames``, read through
``dir://`` (the frames as captured, not re-encoded); a real clip is refused
when no track is live. Name groups the model was not fitted on.

    EDGE_VERIFY_HOME=... python benchmarks/liveness_synthetic_attacks.py --lfw ../shared/datasets/lfw \\
        --clips 240 --cues auto texture,context,motion cnn,motion cnn \\
        --real ../shared/datasets/nuaa_train --groups 0004 --json synthetic_attacks.json

Optional real photos (``--photos N``): LFW photos of N other people, each
judged alone as `edge-verify liveness PHOTO` does (the frame cues on one
frame): real faces from press cameras neither folder was captured with. A
photo is refused when any frame cue calls it an attack.

The room behind the card is plain (a gradient and soft shapes, no other face):
easier for the context cue than a real room. With ``--rooms DIR`` (e.g. a
folder of real frames of people in their rooms) each card is held up instead
in one of DIR's frames, over the face of the person in it, as an attacker
holds a photo over their own face: a real room, shoulders and hair around the
card. The card is then made ``COVER`` times the size of that face (up to an
A4 sheet at arm's length) and the hand does not carry it across the view, so
the real face stays covered. Photos are drawn with --seed (1 by default;
liveness_motion_clips.py chose the motion cue's settings on seed 0's clips).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from edge.exc import EdgeVerifyError, ImageError
from edge.liveness.check import judge_clip, judge_photo
from edge.liveness.judge import load_liveness
from edge.pipeline import SEARCH_EVERY, FacePipeline
from edge.vision.image import load_image
from edge_build.training import liveness_synth as synth
from edge_build.training.liveness_clips import face_crop
from edge_build.training.liveness_data import load_frames

FPS = 15.0
KINDS = ("print", "phone")
HANDS = ("moving", "still")
COVER = 1.6  # a card held over a real face is this many times the face's box, so turned by 30 degrees it still covers it


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lfw", type=Path, required=True, help="LFW folder (images/<name>/*.jpg)")
    parser.add_argument("--clips", type=int, default=240, help="attack clips, one LFW person each (default 240)")
    parser.add_argument("--frames", type=int, default=15, help="frames per clip (default 15: a second at 15 fps)")
    parser.add_argument("--cues", nargs="+", default=["auto"],
                        help="cue sets to judge with, each as `[liveness] cues` (default: auto, every cue of the model)")
    parser.add_argument("--real", type=Path, help="a liveness folder (real/ and fake/) whose real sequences to judge")
    parser.add_argument("--groups", help="comma-separated groups of --real (subjects or sources) to judge")
    parser.add_argument("--photos", type=int, default=0,
                        help="also judge this many LFW photos of other people as single real frames (default 0)")
    parser.add_argument("--exclude", type=Path, action="append", default=[], metavar="DIR",
                        help="leave out LFW people with a photo in DIR (e.g. photos a model was trained on), so every "
                             "clip and photo shows someone the model never saw")
    parser.add_argument("--rooms", type=Path, metavar="DIR",
                        help="hold each card over the face of a person in one of DIR's frames (real rooms, e.g. "
                             "../shared/datasets/replay_dev/real) instead of in a plain room")
    parser.add_argument("--search-every", type=int, default=SEARCH_EVERY, metavar="N",
                        help="clips: the whole frame searched for faces every N frames, the face of the frame before "
                             f"followed in between, as the daemon finds faces (default {SEARCH_EVERY}, the daemon's; "
                             "1 searches every frame)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write the figures and every clip's verdict here")
    return parser.parse_args(argv)


def still_hand(rng: np.random.Generator) -> synth.Motion:
    """A steady hand or a stand: a few degrees and millimetres at most."""
    return synth.Motion(yaw_deg=rng.uniform(0.0, 3.0), pitch_deg=rng.uniform(0.0, 2.0), roll_deg=rng.uniform(0.0, 1.5),
                        shift=rng.uniform(0.0, 0.005), depth=rng.uniform(0.0, 0.01))


def lfw_people(folder: Path, rng: np.random.Generator, exclude: list[Path] = ()) -> list[Path]:
    """LFW's person folders in a random order, less the people with a photo (LFW file name) in ``exclude``."""
    seen = {image.stem.rsplit("_", 1)[0] for root in exclude for image in Path(root).rglob("*.jpg")}
    people = sorted(path for path in (folder / "images").iterdir() if path.is_dir() and path.name not in seen)
    if not people:
        raise SystemExit(f"{folder}/images: no person folders left (is this LFW?)")
    return [people[index] for index in rng.permutation(len(people))]


def lfw_photos(people: list[Path], pipeline, rng: np.random.Generator, count: int) -> list[tuple[str, np.ndarray, tuple]]:
    """``count`` (name, RGB photo, face box): one photo each of the first ``count`` people with a face found;
    the people used are taken off ``people``."""
    photos = []
    while people:
        person = people.pop(0)
        shots = sorted(person.glob("*.jpg"))
        if not shots:
            continue
        path = shots[int(rng.integers(len(shots)))]
        try:
            image = load_image(path)
        except ImageError as error:  # a few LFW files are truncated
            print(f"skipped: {error}", file=sys.stderr)
            continue
        face = pipeline.main_face(image)
        if face is not None:
            photos.append((path.name, image, face.box))
        if len(photos) == count:
            return photos
    raise SystemExit(f"LFW: only {len(photos)} photos with a face, {count} asked")


def write_clip(path: Path, frames: list[np.ndarray]) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, frames[0].shape[1::-1])
    if not writer.isOpened():
        raise SystemExit(f"cannot write {path}")
    for frame in frames:
        writer.write(frame[..., ::-1])
    writer.release()


def attack_clips(photos, rng: np.random.Generator, frames: int, scratch: Path, rooms=()) -> list[dict]:
    """Write one clip per photo: print and phone in turn, the hand moving for two clips, still for the next two;
    with ``rooms`` ((name, RGB frame, face box), see room_frames), held over the face in one of them in turn."""
    clips = []
    for number, (name, image, box) in enumerate(tqdm(photos, desc="attack clips", unit="clip", file=sys.stderr)):
        kind, hand = KINDS[number % 2], HANDS[(number // 2) % 2]
        motion = synth.random_motion(rng) if hand == "moving" else still_hand(rng)
        card = face_crop(image, box, rng)
        place, room = {}, None
        if rooms:
            room = rooms[number % len(rooms)]
            place = over_face(synth.mount(card, kind).shape[:2], room[2], rng)
            motion = replace(motion, shift=min(motion.shift, 0.01), depth=min(motion.depth, 0.02))
        shown, _ = synth.flat_attack(card, rng, frames, kind=kind, motion=motion, room=None if room is None else room[1],
                                     **place)
        path = scratch / f"attack-{number:04d}.avi"
        write_clip(path, shown)
        clips.append({"clip": path.name, "source": name, "kind": kind, "hand": hand, "live": False,
                      "uri": f"file://{path}", **({"room": room[0]} if room else {})})
    return clips


def over_face(card_shape: tuple[int, int], box, rng: np.random.Generator, size: tuple[int, int] = (640, 480)) -> dict:
    """flat_attack's distance, card width and centre for a card (mounted, ``card_shape`` (h, w)) held over the face
    with this box: centred on it and COVER times its size in the view (focal length = frame width)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    card_h, card_w = card_shape
    across_px = COVER * max(x2 - x1, (y2 - y1) * card_w / card_h)
    distance = rng.uniform(0.28, 0.5)
    return {"distance_m": distance, "card_width_m": across_px * distance / size[0],
            "centre": ((x1 + x2) / 2, (y1 + y2) / 2)}


def room_frames(folder: Path, pipeline, rng: np.random.Generator, count: int, size: tuple[int, int] = (640, 480)):
    """Up to ``count`` (name, RGB frame, face box) of ``folder``'s images of ``size`` with a face, drawn at random."""
    paths = sorted(folder.rglob("*.jpg"))
    rooms = []
    for index in rng.permutation(len(paths)):
        image = load_image(paths[index])
        if image.shape[1::-1] != size:
            continue
        face = pipeline.main_face(image)
        if face is not None:
            rooms.append((paths[index].name, image, face.box))
        if len(rooms) == count:
            break
    if not rooms:
        raise SystemExit(f"--rooms {folder}: no {size[0]}x{size[1]} image with a face")
    return rooms


def real_clips(root: Path, groups: set, frames: int, scratch: Path) -> list[dict]:
    """The named groups' real sequences in runs of ``frames``, each a folder of links read through dir://."""
    runs = {}
    for frame in load_frames(root):
        if frame.live and frame.group in groups:
            runs.setdefault((frame.group, frame.sequence), []).append(frame)
    missing = groups - {group for group, _ in runs}
    if missing:
        raise SystemExit(f"{root}/real: no frames of group(s) {', '.join(sorted(missing))}")
    clips = []
    for (group, sequence), members in sorted(runs.items()):
        members.sort(key=lambda frame: frame.order)
        for start in range(0, len(members) - frames + 1, frames):
            folder = scratch / f"real-{len(clips):04d}"
            folder.mkdir()
            for index, frame in enumerate(members[start:start + frames]):
                (folder / f"{index:03d}{frame.path.suffix.lower()}").symlink_to(frame.path.resolve())
            clips.append({"clip": folder.name, "source": f"{group}/{sequence}", "kind": "real", "hand": "real",
                          "live": True, "uri": f"dir://{folder}"})
    return clips


def verdict(pipeline, liveness, clip: dict, search_every: int = SEARCH_EVERY) -> dict:
    judged = judge_clip(pipeline, liveness, clip["uri"], search_every=search_every)
    refused = {}
    for track in judged["tracks"]:
        for cue, count in track["refused_by"].items():
            refused[cue] = refused.get(cue, 0) + count
    return {"faces": judged["faces"], "tracks": len(judged["tracks"]),
            "longest_track": max((track["frames"] for track in judged["tracks"]), default=0),
            "live": any(track["live"] for track in judged["tracks"]), "refused_by": refused}


def photo_verdicts(pipeline, liveness, photos) -> list[dict]:
    rows = []
    for name, image, _ in photos:
        judged = judge_photo(pipeline, liveness, image)
        rows.append({"photo": name, "face": judged["face"], "live": judged["live"], "refused_by": judged["refused_by"],
                     "scores": judged["scores"]})
    return rows


def photo_tally(rows: list[dict]) -> dict:
    refused = [row for row in rows if row["face"] and not row["live"]]
    by = {}
    for row in refused:
        by[row["refused_by"]] = by.get(row["refused_by"], 0) + 1
    return {"photos": sum(row["face"] for row in rows), "refused": len(refused), "refused_by": by}


def tally(rows: list[dict], window: int) -> dict:
    """Attack clips accepted (any live track) per medium and hand; real clips refused (no live track).
    ``short``: clips whose every track is shorter than the cues' window (the detector lost the face or the
    track broke): no cue could let them in, so their refusal is not the cues' doing."""
    out = {}
    for kind in KINDS:
        for hand in HANDS:
            chosen = [row for row in rows if row["kind"] == kind and row["hand"] == hand]
            if chosen:
                out[f"{kind} {hand}"] = {"clips": len(chosen), "accepted": sum(row["live"] for row in chosen),
                                         "short": sum(row["longest_track"] < window for row in chosen)}
    real = [row for row in rows if row["kind"] == "real"]
    if real:
        out["real"] = {"clips": len(real), "refused": sum(not row["live"] for row in real),
                       "short": sum(row["longest_track"] < window for row in real)}
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    if (args.real is None) != (args.groups is None):
        raise SystemExit("--real and --groups go together: the real clips of which groups?")
    rng = np.random.default_rng(args.seed)
    pipeline = FacePipeline.load(flip=False, threads=1)
    cue_sets = {}
    for text in args.cues:
        try:
            cue_sets[text] = load_liveness(text)
        except EdgeVerifyError as error:
            raise SystemExit(f"--cues {text}: {error}") from error
    report = {"seed": args.seed, "frames": args.frames, "search_every": args.search_every,
              "excluded": [str(path) for path in args.exclude],
              "rooms": str(args.rooms) if args.rooms else "plain",
              "cue_sets": {}}
    with tempfile.TemporaryDirectory(prefix="synthetic-attacks-") as scratch:
        scratch = Path(scratch)
        people = lfw_people(args.lfw, rng, args.exclude)
        photos = lfw_photos(people, pipeline, rng, args.clips)
        rooms = room_frames(args.rooms, pipeline, rng, args.clips) if args.rooms else ()  # drawn after: same photos
        clips = attack_clips(photos, rng, args.frames, scratch, rooms)
        real_photos = lfw_photos(people, pipeline, rng, args.photos) if args.photos else []
        if args.real is not None:
            clips += real_clips(args.real, set(args.groups.split(",")), args.frames, scratch)
        for text, liveness in cue_sets.items():
            rows = [clip | verdict(pipeline, liveness, clip, args.search_every)
                    for clip in tqdm(clips, desc=f"judged with {text}", unit="clip", file=sys.stderr)]
            report["cue_sets"][text] = {"cues": list(liveness.cues), "tally": tally(rows, liveness.window),
                                        "clips": [{k: v for k, v in row.items() if k != "uri"} for row in rows]}
            if real_photos:
                photos = photo_verdicts(pipeline, liveness, real_photos)
                report["cue_sets"][text] |= {"photo_tally": photo_tally(photos), "photos": photos}
    print(f"{'cues':<28} {'clips':<16} {'n':>4} {'accepted / refused':>19} {'short':>6}")
    for text, result in report["cue_sets"].items():
        for name, counts in result["tally"].items():
            decided = counts.get("accepted", counts.get("refused"))
            print(f"{','.join(result['cues']):<28} {name:<16} {counts['clips']:>4} {decided:>19} {counts['short']:>6}")
        if "photo_tally" in result:
            counts = result["photo_tally"]
            print(f"{','.join(result['cues']):<28} {'LFW real photos':<16} {counts['photos']:>4} {counts['refused']:>19}"
                  f"  refused by {counts['refused_by']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
