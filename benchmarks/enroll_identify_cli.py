"""A whole staff through the command line, as an installer would: enrollment, duplicates, identify.

Protocol (benchmarks/identification.py's LFW plan):
  1. `edge-verify enroll NAME --images` photos 1-5 of each of the 158 LFW people with >= 10
     photos, one command each, into a new gallery: how many are refused, and why
     (a false duplicate is a person refused as "already enrolled" under another name);
  2. a real duplicate: photos 6-10 of each enrolled person under another name
     (`edge-verify enroll NAME-again --images` photos 6-10): how many the duplicate check
     refuses (exit code 4); one that gets in is removed again (`gallery remove`), so the
     gallery stays the same for the next person;
  3. `edge-verify identify --json` on photos 6-10 of every enrolled person, one photo at a time,
     and on 1,000 strangers (people with one LFW photo, the first alphabetically), then
     `edge-verify identify --combine --json` with each person's photos 6-10 as one attempt:
     accepted as themselves, accepted as someone else, strangers accepted (a photo LFW files
     under one name that shows the person it was taken for, benchmarks/lfw_same_faces.py, is
     counted apart as "same_face").

Every step is the installed command in a subprocess, with --no-config (the built-in [decision]
defaults). Writes OUT/report.json; the gallery is OUT/gallery.sqlite.

    python benchmarks/enroll_identify_cli.py --lfw ../shared/datasets/lfw --out /tmp/enroll-cli
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import identification
import lfw_same_faces

TOKEN = "door-benchmark-token-1"


def command(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["edge-verify", *args], input=stdin, capture_output=True, text=True,
                          env={**os.environ, "EDGE_VERIFY_ADMIN_TOKEN": TOKEN})


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def enroll_all(lfw: Path, people: dict, where: list, log) -> dict:
    outcome = {}
    for number, (person, images) in enumerate(people.items(), start=1):
        done = command("enroll", person, "--images", *[str(lfw / "images" / image) for image in images],
                       "--no-config", "--json", *where)
        outcome[person] = {"code": done.returncode, "said": last_line(done.stderr) if done.returncode else None,
                           "templates": json.loads(done.stdout)["templates"] if done.returncode == 0 else 0}
        if number % 20 == 0:
            log(f"enrolled {number}/{len(people)}")
    return outcome


def duplicates(lfw: Path, probes: dict, enrolled: list, where: list, log) -> dict:
    outcome = {}
    for number, person in enumerate(enrolled, start=1):
        again = f"{person}-again"
        done = command("enroll", again, "--images", *[str(lfw / "images" / image) for image in probes[person]],
                       "--no-config", "--json", *where)
        outcome[person] = {"code": done.returncode, "said": last_line(done.stderr) if done.returncode else None}
        if done.returncode == 0:
            removed = command("gallery", "remove", again, *where)
            if removed.returncode != 0:
                raise SystemExit(f"could not remove {again}: {removed.stderr}")
        if number % 20 == 0:
            log(f"duplicates tried {number}/{len(enrolled)}")
    return outcome


def identify(lfw: Path, images: list, where: list, combine: bool = False):
    done = command("identify", "--json", "--no-config", *(["--combine"] if combine else []), *where,
                   *[str(lfw / "images" / image) for image in images])
    if done.returncode not in (0, 1):
        raise SystemExit(f"identify failed: {done.stderr}")
    return json.loads(done.stdout)


def wrong(who: str, answer: str | None) -> bool:
    """Taken for someone else: not nobody, not themselves, and not a face LFW files under both names
    (benchmarks/lfw_same_faces.py: those are counted apart as "same_face")."""
    return answer is not None and answer != who and not lfw_same_faces.same_face(who, answer)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--strangers", type=int, default=1000)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    where = ["--gallery", str(args.out / "gallery.sqlite"), "--key", str(args.out / "gallery.key")]
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"{message} ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)

    plan = identification.plan(args.lfw, args.strangers, None)
    report_path = args.out / "report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    if "enroll" not in report:
        if not (args.out / "gallery.admin-token").exists():
            setting = command("admin", "set-token", "--gallery", str(args.out / "gallery.sqlite"), stdin=TOKEN + "\n")
            if setting.returncode != 0:
                raise SystemExit(setting.stderr)
        report["enroll"] = enroll_all(args.lfw, plan["enroll"], where, log)
        report_path.write_text(json.dumps(report, indent=1) + "\n")
    enrolled = [person for person, item in report["enroll"].items() if item["code"] == 0]
    if "duplicates" not in report:
        report["duplicates"] = duplicates(args.lfw, plan["probe"], enrolled, where, log)
        report_path.write_text(json.dumps(report, indent=1) + "\n")
    if "identify" not in report:
        probes = [image for person in enrolled for image in plan["probe"][person]]
        singles = identify(args.lfw, probes, where)
        strangers = identify(args.lfw, plan["strangers"], where)
        combined = {person: identify(args.lfw, plan["probe"][person], where, combine=True) for person in enrolled}
        truth = [image.split("/")[0] for image in probes]
        report["identify"] = {
            "single": {"probes": len(probes),
                       "right": sum(1 for who, answer in zip(truth, singles) if answer["person"] == who),
                       "wrong": sum(1 for who, answer in zip(truth, singles) if wrong(who, answer["person"])),
                       "threshold": singles[0]["threshold"],
                       "wrong_examples": [{"image": image, "taken_for": answer["person"], "distance": answer["distance"]}
                                          for image, who, answer in zip(probes, truth, singles)
                                          if answer["person"] not in (None, who)],
                       "same_face": sum(1 for who, answer in zip(truth, singles)
                                        if answer["person"] not in (None, who) and not wrong(who, answer["person"]))},
            "combined": {"attempts": len(combined),
                         "right": sum(1 for who, answer in combined.items() if answer["person"] == who),
                         "wrong": sum(1 for who, answer in combined.items() if wrong(who, answer["person"])),
                         "photos_combined": sum(answer["photos_combined"] for answer in combined.values())},
            "strangers": {"probes": len(strangers),
                          "accepted": sum(1 for image, a in zip(plan["strangers"], strangers)
                                          if wrong(image.split("/")[0], a["person"])),
                          "same_face": sum(1 for image, a in zip(plan["strangers"], strangers)
                                           if a["person"] and not wrong(image.split("/")[0], a["person"])),
                          "accepted_examples": [{"image": image, "taken_for": a["person"], "distance": a["distance"]}
                                                for image, a in zip(plan["strangers"], strangers) if a["person"]],
                          "without_face": sum(1 for a in strangers if not a["faces"])},
        }
        report_path.write_text(json.dumps(report, indent=1) + "\n")
    summary = {
        "people": len(report["enroll"]), "enrolled": len(enrolled),
        "refused_as_duplicate": sum(1 for item in report["enroll"].values() if item["code"] == 4),
        "refused_otherwise": {person: item["said"] for person, item in report["enroll"].items()
                              if item["code"] not in (0, 4)},
        "duplicates_refused": sum(1 for item in report["duplicates"].values() if item["code"] == 4),
        "duplicates_tried": len(report["duplicates"]),
        "duplicates_other_refusals": {person: item["said"] for person, item in report["duplicates"].items()
                                      if item["code"] not in (0, 4)},
        "identify": report["identify"],
    }
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
