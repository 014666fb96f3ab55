"""The door as users feel it: time to unlock for staff, wrong-person unlocks, strangers let in.

Steps (each writes under --door DIR, the folder benchmarks/door_clips.py made):

  galleries  enroll the staff (LFW photos 1-5) and the distractors through the
             product's enrollment library call (edge.enroll.capture.enroll, the code
             behind `edge-verify enroll`, quality gates included), into real encrypted
             galleries of 158, 1,000 and 5,000 people: DIR/galleries/<size>/.
             A distractor with fewer than 5 photos is given kiosk-like frames made
             from its photos (a few degrees of turn, a little shift and light), so
             every person has about 5 templates, as a kiosk enrollment gives;
  run        every clip through `edge-verify run --source file://CLIP --until-end
             --events ...` (benchmarks/door_run.py: the face pipeline replayed from
             the frame cache of benchmarks/door_frames.py, the door on mock pins),
             once per gallery size, with the code of this checkout ("after") or of
             another (--code before --root OLD_CHECKOUT): DIR/runs/<code>/<size>/.
             With --cooldown 0: the cooldown runs on the daemon's clock, not the
             clip's, so with it a person's next approach, or a stranger taken for
             them, would fall in it or not depending on how fast this machine
             replays the clip (every match is an unlock event; the first counts).
             Liveness is off (`--liveness off`; --flags may turn it on): the
             clips are photos, and these figures are the door's by identity.
             A frame cache made with `door_frames.py --search-every 15` replays
             the daemon's following of the face between searches (its default);
             `--flags --search-every 1` replays one that searches every frame,
             from the same cache;
  report     the table from the events.

Figures, per gallery size and code:
  staff approaches: time to unlock, from the approach's first frame to the end of
  the frame that unlocked, in clip time at 15 fps (the daemon is assumed to keep up
  with the camera, as it does on this CPU: see README "The daemon"): median, 95th
  percentile (an approach never unlocked counts as infinitely slow), share within
  2 s, share never unlocked;
  wrong-person unlocks: an unlock, in any approach, naming someone else;
  strangers let in: stranger approaches with any unlock, per 1,000; an unlock for
  a face LFW files under two names (benchmarks/lfw_same_faces.py: the stranger's
  photo shows the enrolled person) is counted apart, as "same face", not as a
  stranger let in.

    python benchmarks/door_measure.py galleries --door /tmp/door --lfw ../shared/datasets/lfw
    python benchmarks/door_measure.py run --door /tmp/door --code after
    python benchmarks/door_measure.py run --door /tmp/door --code search1 --flags --search-every 1
    python benchmarks/door_measure.py run --door /tmp/door --code before --root /tmp/door-before
    python benchmarks/door_measure.py report --door /tmp/door
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
import zlib
from pathlib import Path

import cv2
import numpy as np

import door_clips
import lfw_same_faces
from edge.enroll.capture import enroll
from edge.exc import EdgeVerifyError
from edge.gallery import open_gallery
from edge.pipeline import FacePipeline
from edge.vision.image import load_image

SIZES = (158, 1000, 5000)
TEMPLATES = 5
HERE = Path(__file__).resolve().parent


# ---- galleries ---------------------------------------------------------------------------------------

def kiosk_frames(photos: list, count: int, rng: np.random.Generator) -> list:
    """``count`` RGB frames: the photos themselves, then copies turned by up to 6 degrees, shifted by up
    to 5 px, scaled by 0.95-1.05 and lit 0.85-1.15 times: what 0.3 s apart at a kiosk camera looks like."""
    frames = list(photos[:count])
    while len(frames) < count:
        photo = photos[len(frames) % len(photos)]
        height, width = photo.shape[:2]
        turn = cv2.getRotationMatrix2D((width / 2, height / 2), float(rng.uniform(-6, 6)),
                                       float(rng.uniform(0.95, 1.05)))
        turn[:, 2] += rng.uniform(-5, 5, size=2)
        moved = cv2.warpAffine(photo, turn, (width, height), borderMode=cv2.BORDER_REFLECT)
        frames.append(np.clip(moved.astype(np.float32) * rng.uniform(0.85, 1.15), 0, 255).astype(np.uint8))
    return frames


def enroll_one(gallery, pipeline, lfw: Path, person: str, photo_names: list) -> dict:
    try:
        images = [load_image(lfw / "images" / name) for name in photo_names]
    except EdgeVerifyError as error:  # LFW holds one truncated JPEG
        return {"person": person, "templates": 0, "error": str(error)}
    frames = kiosk_frames(images, TEMPLATES, np.random.default_rng(zlib.crc32(person.encode())))
    try:
        result = enroll(person, pipeline, gallery, [(f"{person} {i + 1}", f) for i, f in enumerate(frames)],
                        count=TEMPLATES, force=True, actor="door benchmark")
        return {"person": person, "templates": result.templates, "rejected": len(result.rejected),
                "warnings": result.warnings}
    except EdgeVerifyError as error:
        return {"person": person, "templates": 0, "error": str(error)}


def build_galleries(door: Path, lfw: Path) -> None:
    """Galleries of exactly 158, 1,000 and 5,000 people, each holding the one before: the staff who
    can be enrolled (the quality gates refuse a few LFW photo sets), then distractors in the
    split's order until the size is reached (a distractor the gates refuse is skipped)."""
    plan = json.loads((door / "plan.json").read_text())
    counts = door_clips.photo_counts(lfw)
    split = plan["split"]
    pipeline = FacePipeline.load(threads=1)
    started = time.perf_counter()
    tried = door / "galleries" / "tried.json"
    outcome = json.loads(tried.read_text()) if tried.exists() else {}
    staff = [(person, [door_clips.image_name(person, n) for n in door_clips.ENROLL_PHOTOS])
             for person in split["staff"]]
    pool = [(person, [door_clips.image_name(person, n) for n in range(1, min(counts[person], TEMPLATES) + 1)])
            for person in door_clips.distractors(split, len(split["singles"]) + len(split["calibration"]),
                                                 plan["seed"])]
    previous = None
    for size in SIZES:
        folder = door / "galleries" / str(size)
        folder.mkdir(parents=True, exist_ok=True)
        if previous is not None and not (folder / "gallery.sqlite").exists():
            for name in ("gallery.sqlite", "gallery.key"):
                shutil.copy2(previous / name, folder / name)
        with open_gallery(folder / "gallery.sqlite", folder / "gallery.key", create=True,
                          actor="door benchmark") as gallery:
            enrolled = {person["name"] for person in gallery.list_people()}
            for person, photo_names in staff + pool:
                if len(enrolled) >= size:
                    break
                if person in enrolled or outcome.get(person, {}).get("templates", 1) == 0:
                    continue
                outcome[person] = enroll_one(gallery, pipeline, lfw, person, photo_names)
                if outcome[person]["templates"]:
                    enrolled.add(person)
                if len(outcome) % 100 == 0:
                    tried.write_text(json.dumps(outcome) + "\n")
                    print(f"{size}: {len(enrolled)} people ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
            summary = gallery.summary()
        tried.write_text(json.dumps(outcome) + "\n")
        staff_in = sorted(person for person, _ in staff if person in enrolled)
        (folder / "enrolled.json").write_text(json.dumps({"summary": summary, "staff": staff_in,
                                                          "people": sorted(enrolled)}, indent=1) + "\n")
        print(f"gallery {size}: {summary['people']} people, {summary['templates']} templates", file=sys.stderr)
        previous = folder


# ---- runs --------------------------------------------------------------------------------------------

def run_all(door: Path, code: str, root: Path | None, sizes, clips: list | None, extra: list) -> None:
    plan = json.loads((door / "plan.json").read_text())
    names = sorted({item["clip"] for item in plan["approaches"] if item["kind"] in ("staff", "stranger")})
    if clips:
        names = [name for name in names if Path(name).stem in clips]
    environment = {**os.environ, "GPIOZERO_PIN_FACTORY": "mock", "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    paths = [str(HERE)]
    if root is not None:
        paths.insert(0, str(root))  # the other checkout's `edge` is found first
    environment["PYTHONPATH"] = os.pathsep.join(paths + [environment.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    for size in sizes:
        gallery = door / "galleries" / str(size)
        out = door / "runs" / code / str(size)
        out.mkdir(parents=True, exist_ok=True)
        for name in names:
            events = out / f"{Path(name).stem}.jsonl"
            if events.exists():
                events.unlink()
            command = run_command(door, name, gallery, events, extra)
            started = time.perf_counter()
            done = subprocess.run(command, env=environment, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"{code} {size} {name}: exit {done.returncode}\n{done.stderr[-3000:]}")
            print(f"{code} {size} {name}: {time.perf_counter() - started:.0f} s", file=sys.stderr)


def run_command(door: Path, name: str, gallery: Path, events: Path, extra: list) -> list:
    """`edge-verify run` over one clip, its face pipeline replayed (door_run.py). Liveness is off unless
    ``extra`` says otherwise: the clips are photos, which a liveness model rightly refuses, and these
    figures are the door's by identity (a home with a liveness model would otherwise run it)."""
    cache = door / "frames" / f"{Path(name).stem}.npz"
    return [sys.executable, str(HERE / "door_run.py"), "--frames", str(cache),
            "--", "run", "--no-config", "--source", f"file://{door / 'clips' / name}", "--until-end",
            "--quiet", "--no-events-stdout", "--events", str(events), "--events-max-bytes", str(2**40),
            "--gallery", str(gallery / "gallery.sqlite"), "--key", str(gallery / "gallery.key"),
            "--pin", "BOARD11", "--pulse", "1", "--cooldown", "0", "--liveness", "off", *extra]


# ---- report ------------------------------------------------------------------------------------------

def read_events(path: Path) -> list:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def score(plan: dict, folder: Path, enrolled_staff: set) -> dict:
    """The figures of one run (events under ``folder``); approaches of staff the enrollment refused
    (``enrolled_staff`` lacks them) are left out: they cannot be let in."""
    fps = plan["fps"]
    by_clip: dict = {}
    for item in plan["approaches"]:
        if item["kind"] in ("staff", "stranger"):
            by_clip.setdefault(item["clip"], []).append(item)
    times, never, wrong, let_in, strangers, staff = [], 0, [], 0, 0, 0
    same_face = []
    for clip, items in by_clip.items():
        unlocks = [event for event in read_events(folder / f"{Path(clip).stem}.jsonl") if event["unlock"]]
        for item in items:
            inside = [event for event in unlocks if item["first_frame"] <= event["frame"] <= item["last_frame"]]
            filed_twice = [event for event in inside if item["kind"] == "stranger"
                           and lfw_same_faces.same_face(item["person"], event["person"])]
            same_face += [{"approach": item["id"], "person": item["person"], "unlocked_for": event["person"],
                           "distance": event["distance"]} for event in filed_twice[:1]]
            inside = [event for event in inside if event not in filed_twice]
            for event in inside:
                if item["kind"] == "stranger" or event["person"] != item["person"]:
                    wrong.append({"approach": item["id"], "kind": item["kind"], "person": item["person"],
                                  "unlocked_for": event["person"], "distance": event["distance"]})
            if item["kind"] == "stranger":
                strangers += 1
                let_in += bool(inside)
                continue
            if item["person"] not in enrolled_staff:
                continue
            staff += 1
            own = [event for event in inside if event["person"] == item["person"]]
            if own:
                times.append((own[0]["frame"] - item["first_frame"] + 1) / fps)
            else:
                never += 1
    every = np.array(times + [math.inf] * never)
    staff_wrong = [w for w in wrong if w["kind"] == "staff"]
    return {
        "staff_approaches": staff, "stranger_approaches": strangers,
        "median_s": (round(float(np.median(every)), 3) if np.isfinite(np.median(every)) else None) if staff else None,
        "p95_s": round(float(np.percentile(every, 95)), 3) if staff and np.isfinite(np.percentile(every, 95)) else None,
        "within_2s": round(float(np.mean(every <= 2.0)), 4) if staff else None,
        "unlocked_p50_s": round(float(np.median(times)), 3) if times else None,
        "unlocked_p95_s": round(float(np.percentile(times, 95)), 3) if times else None,
        "never_unlocked": round(never / staff, 4) if staff else None,
        "wrong_person_unlocks": len(staff_wrong),
        "strangers_let_in": let_in, "strangers_per_1000": round(1000.0 * let_in / strangers, 2) if strangers else None,
        "wrong_examples": wrong[:10],
        "same_face_unlocks": same_face,
    }


def report(door: Path) -> dict:
    plan = json.loads((door / "plan.json").read_text())
    table = {}
    for code_folder in sorted((door / "runs").iterdir()):
        for size_folder in sorted(code_folder.iterdir(), key=lambda p: int(p.name)):
            enrolled = json.loads((door / "galleries" / size_folder.name / "enrolled.json").read_text())
            row = score(plan, size_folder, set(enrolled["staff"]))
            row.update(people=enrolled["summary"]["people"], templates=enrolled["summary"]["templates"],
                       staff_enrolled=len(enrolled["staff"]))
            table[f"{code_folder.name} {size_folder.name}"] = row
    return table


def markdown(table: dict) -> str:
    lines = ["| code | enrolled (templates) | staff approaches | median s | p95 s | within 2 s | never | p50 / p95 s of "
             "those let in | wrong person | strangers let in |", "|---|---|---|---|---|---|---|---|---|---|"]
    for key, row in table.items():
        code, size = key.split()

        def show(value, unit=""):
            return "never" if value is None else f"{value}{unit}"
        lines.append(f"| {code} | {row['people']:,} ({row['templates']:,}) | {row['staff_approaches']} | "
                     f"{show(row['median_s'])} | {show(row['p95_s'])} | {100 * row['within_2s']:.1f} % | "
                     f"{100 * row['never_unlocked']:.1f} % | {show(row['unlocked_p50_s'])} / "
                     f"{show(row['unlocked_p95_s'])} | {row['wrong_person_unlocks']} | "
                     f"{row['strangers_let_in']} of {row['stranger_approaches']}"
                     f"{same_face_note(row)} |")
    return "\n".join(lines)


def same_face_note(row: dict) -> str:
    filed = row.get("same_face_unlocks") or []
    return f" (+{len(filed)} same face filed under two names)" if filed else ""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    steps = parser.add_subparsers(dest="step", required=True)
    galleries = steps.add_parser("galleries")
    galleries.add_argument("--door", type=Path, required=True)
    galleries.add_argument("--lfw", type=Path, default=Path("../shared/datasets/lfw"))
    runs = steps.add_parser("run")
    runs.add_argument("--door", type=Path, required=True)
    runs.add_argument("--code", default="after", help="name of this code in the report (after, before, ...)")
    runs.add_argument("--root", type=Path, help="checkout whose `edge` to run (default: this one)")
    runs.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    runs.add_argument("--clips", nargs="*", help="clip names without .avi (default: staff and strangers)")
    runs.add_argument("--flags", nargs=argparse.REMAINDER, default=[], help="more `edge-verify run` flags")
    reporting = steps.add_parser("report")
    reporting.add_argument("--door", type=Path, required=True)
    reporting.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.step == "galleries":
        build_galleries(args.door, args.lfw)
    elif args.step == "run":
        run_all(args.door, args.code, args.root, args.sizes, args.clips, args.flags)
    else:
        table = report(args.door)
        print(markdown(table))
        if args.json:
            args.json.write_text(json.dumps(table, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
