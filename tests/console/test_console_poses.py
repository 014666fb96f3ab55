"""Guided enrollment in the kiosk's console (issue 17 with issue 13 item 5): the console asks for the poses of
`edge-verify enroll --camera` (front, slight left, slight right, and without glasses when the person wears
them), shows each pose's good frames with a tick when done and a pose not given in words, keeps the
templates with choose_templates, and says the person's coverage in the words of `gallery show NAME`.

The camera here is a folder of stills (dir://, read whole, no daemon): frames made from the committed
George_W_Bush photos, which measure yaw about +1 (photo 2, front), +16 (photo 3, turned to his left) and
-30 (photo 4, turned to his right), each shifted a few pixels so every still is its own picture."""
from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import pytest
from buildkit import cnn_only_liveness
from consolekit import Client, kiosk_settings, serve_console
from daemonkit import face_frame

from edge.cli import main

FRONT, LEFT, RIGHT = 2, 3, 4  # photo numbers
SHIFTS = (-2, 0, 2, -6, 6, -1)


def stills(folder: Path, looks: list[tuple[int, int]]) -> str:
    """A dir:// camera of (photo, shift) frames, in order."""
    folder.mkdir()
    for number, (photo, shift) in enumerate(looks):
        cv2.imwrite(str(folder / f"{number:03d}.png"), face_frame("George_W_Bush", photo, shift=shift))
    return f"dir://{folder}"


def looks(photo: int, count: int, first: int = 0) -> list[tuple[int, int]]:
    return [(photo, SHIFTS[first + index]) for index in range(count)]


def enroll_through_console(tmp_path, gallery_files, pipeline, camera: str, form: dict,
                           **settings) -> tuple[dict, Client]:
    gallery, key = gallery_files
    running = serve_console(tmp_path, kiosk_settings(tmp_path, gallery, key, source=camera, **settings),
                            pipeline=pipeline)
    try:
        client = Client(running)
        client.login()
        response, _ = client.request("POST", "/enroll", {**form, "csrf": client.page_csrf("/enroll")})
        assert response.status == 303
        running.app.wait_for_enrollment(120)
        _, answer = client.request("GET", "/api/enroll")
        progress = json.loads(answer)
        _, page = client.request("GET", "/enroll")
        progress["page"] = page
        _, people = client.request("GET", "/people")
        progress["people"] = people
        _, person = client.request("GET", "/person?name=" + form["name"].replace(" ", "+"))
        progress["person"] = person
    finally:
        running.close()
    return progress, client


def gallery_show_words(gallery_files, name: str, capsys) -> tuple[str, str]:
    """The coverage lines `edge-verify gallery show NAME` prints: (verdict line, add line or "")."""
    gallery, key = gallery_files
    capsys.readouterr()
    assert main(["gallery", "show", name, "--gallery", str(gallery), "--key", str(key)]) == 0
    lines = capsys.readouterr().out.splitlines()
    verdict = next(line for line in lines if line.startswith("coverage "))
    add = next((line for line in lines if line.startswith("  add: ")), "")
    return verdict, add


def test_console_walks_through_each_pose_with_a_tick_and_keeps_the_best_templates(tmp_path, gallery_files, pipeline,
                                                                                  capsys):
    camera = stills(tmp_path / "camera", looks(FRONT, 3) + looks(LEFT, 3) + looks(RIGHT, 3) + looks(FRONT, 3, 3))
    progress, _ = enroll_through_console(tmp_path, gallery_files, pipeline, camera,
                                         {"name": "George Bush", "count": "5", "glasses": "yes"})
    assert progress["state"] == "done", progress.get("error")
    texts = [line["text"] for line in progress["lines"]]
    for number, prompt in enumerate(["look straight at the camera", "turn your head slightly to your left",
                                     "turn your head slightly to your right",
                                     "take your glasses off and look straight at the camera"], start=1):
        assert f"pose {number} of 4: {prompt}" in texts
    assert [pose["state"] for pose in progress["poses"]] == ["done"] * 4
    assert [pose["text"] for pose in progress["poses"]] == [
        f"\u2714 {name}: 3/3 good frames" for name in ("front", "left", "right", "front, no glasses")]
    assert progress["good"] == 12 and progress["count"] == 12
    assert any(text.startswith("keeping the 5 of 12 good frames") for text in texts)  # choose_templates
    verdict, add = gallery_show_words(gallery_files, "George Bush", capsys)
    assert progress["result"] == f"George Bush enrolled: 5 templates, {verdict.split(':')[0]}"
    assert progress["coverage"] == verdict + (f"\n{add}" if add else "")
    assert "looks front, left, right" in verdict
    assert "\u2714 left: 3/3 good frames" in progress["page"]  # the finished page, drawn by the server
    with pytest.raises(StopIteration):
        next(line for line in progress["verdicts"] if line.startswith("Warning"))


def test_a_clip_that_never_turns_reports_the_missing_poses_in_words(tmp_path, gallery_files, pipeline, capsys):
    camera = stills(tmp_path / "camera", looks(FRONT, 6) + [(FRONT, 3), (FRONT, -3), (FRONT, 1)])
    progress, _ = enroll_through_console(tmp_path, gallery_files, pipeline, camera,
                                         {"name": "George Bush", "count": "5"})
    assert progress["state"] == "done", progress.get("error")
    states = {pose["text"].split(":")[0].lstrip("\u2714\u2718 "): pose["state"] for pose in progress["poses"]}
    assert states == {"front": "done", "left": "missed", "right": "missed"}
    missed = [pose["text"] for pose in progress["poses"] if pose["state"] == "missed"]
    assert missed == [f"\u2718 {look}: not given within the time (no more frames: the time was up or the camera "
                      "stopped)" for look in ("left", "right")]
    assert "Warning: not covered: left, right (add them later with --append)" in progress["verdicts"]
    verdict, add = gallery_show_words(gallery_files, "George Bush", capsys)
    assert verdict.startswith("coverage partial: looks front")
    assert progress["result"] == "George Bush enrolled: 3 templates, coverage partial"
    assert progress["coverage"] == f"{verdict}\n{add}"
    assert "turned slightly to their left" in add
    # the people list and the person's page use the same measure and words
    assert 'class="coverage partial"' in progress["people"] and ">coverage partial</a>" in progress["people"]
    assert f'<p id="person-coverage" class="coverage partial">{verdict}</p>' in progress["person"].replace(
        "&#x27;", "'")
    assert add.strip().removeprefix("add: ") in progress["person"].replace("&#x27;", "'").replace("&quot;", '"')


def test_the_console_warns_when_the_doors_liveness_cues_would_refuse_the_person(tmp_path, gallery_files, pipeline,
                                                                              fetched_home):
    cnn_only_liveness(fetched_home / "models", 6.0)  # the door's cnn cue calls every face an attack
    camera = stills(tmp_path / "camera", looks(FRONT, 3) + looks(LEFT, 3) + looks(RIGHT, 3))
    progress, _ = enroll_through_console(tmp_path, gallery_files, pipeline, camera,
                                         {"name": "George Bush", "count": "5"}, **{"decision.liveness": "auto"})
    assert progress["state"] == "done", progress.get("error")
    warnings = [line for line in progress["verdicts"] if line.startswith("Warning: the door's liveness cues")]
    assert warnings and warnings[0].startswith("Warning: the door's liveness cues call 5 of 5 of George Bush's "
                                               "frames an attack (cnn on 5)")


def test_the_console_keeps_no_coverage_measure_of_its_own():
    import edge.console.kiosk as kiosk

    assert not hasattr(kiosk, "COVERAGE_SPREAD_DEG") and not hasattr(kiosk, "coverage")


def test_starting_an_enrollment_needs_the_csrf_token(tmp_path, gallery_files):
    gallery, key = gallery_files
    running = serve_console(tmp_path, kiosk_settings(tmp_path, gallery, key))
    try:
        client = Client(running)
        client.login()
        response, page = client.request("POST", "/enroll", {"name": "Mallory", "count": "5"})
        assert response.status == 403 and "security token" in page
        assert running.app._job is None
    finally:
        running.close()


def test_pose_progress_follows_the_capture(pipeline):
    from edge.enroll.capture import Shot, capture_poses
    from edge.enroll.poses import PoseProgress, pose_plan

    frames = [Shot(f"f{index}", cv2.cvtColor(face_frame("George_W_Bush", photo, shift), cv2.COLOR_BGR2RGB))
              for index, (photo, shift) in enumerate(looks(FRONT, 2) + looks(LEFT, 1))]
    seen = []
    plan = pose_plan()
    progress = PoseProgress(plan, 2)

    def report(line):
        seen.append((line, progress.prompt, [(step.state, step.taken) for step in progress.steps]))

    started = time.monotonic()
    capture_poses(pipeline, frames, plan, report, per_pose=2, progress=progress)
    assert time.monotonic() - started < 60
    assert seen[0] == ("pose 1 of 3: look straight at the camera", "look straight at the camera",
                       [("asking", 0), ("waiting", 0), ("waiting", 0)])
    assert ("f1: good, front (2/2)", "look straight at the camera", [("done", 2), ("waiting", 0), ("waiting", 0)]) \
        in seen
    assert [(step.state, step.taken) for step in progress.steps] == [("done", 2), ("done", 1), ("missed", 0)]
    assert progress.missed() == ["right"] and progress.prompt is None
