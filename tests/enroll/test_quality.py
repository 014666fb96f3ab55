"""The quality gates on real fixture photos and on crafted bad frames made from them."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
from enroll_frames import blurred, brightened, darkened, flattened, rotated, side_by_side, tiny

from edge.enroll import quality
from edge.enroll.quality import assess, pose

# A frontal face's five landmarks (eyes, nose tip, mouth corners), in pixels.
FRONTAL = np.array([[38.0, 52.0], [74.0, 52.0], [56.0, 72.0], [42.0, 92.0], [70.0, 92.0]])


def failed(verdict) -> dict:
    return {gate.name: gate.reason for gate in verdict.gates if not gate.ok}


def test_every_fixture_photo_passes(pipeline, face_images):
    """The limits were calibrated so that ordinary photos pass: all 32 fixture photos do."""
    from edge.vision.image import load_image

    for paths in face_images.values():
        for path in paths:
            verdict = assess(pipeline, load_image(path))
            assert verdict.ok, (path.name, verdict.reasons)
            assert verdict.chip.shape == (3, pipeline.size, pipeline.size)


@pytest.mark.parametrize("defect, gate, pattern", [
    (blurred, "sharpness", r"too blurred: sharpness (\d+\.\d) < (\d+)"),
    (rotated, "pose", r"head tilted: roll ([+-]\d+\.\d) deg, limit \+/-(\d+)"),
    (darkened, "brightness", r"too dark: brightness (\d+) < (\d+)"),
    (brightened, "brightness", r"too bright: brightness (\d+) > (\d+)"),
    (flattened, "contrast", r"too little contrast: (\d+\.\d) < (\d+)"),
    (tiny, "face_size", r"face too small: (\d+) px < (\d+) px"),
])
def test_each_gate_rejects_its_crafted_frame(pipeline, photo, defect, gate, pattern):
    good = photo("Colin_Powell", 1)
    assert assess(pipeline, good).ok
    verdict = assess(pipeline, defect(good))
    assert not verdict.ok
    reasons = failed(verdict)
    assert gate in reasons, reasons
    match = re.search(pattern, reasons[gate])
    assert match, reasons[gate]
    measured, limit = abs(float(match.group(1))), float(match.group(2))
    # the reason carries the real measurement and limit, on the failing side of it
    if gate in ("sharpness", "contrast", "face_size") or "dark" in reasons[gate]:
        assert measured < limit
    else:
        assert measured > limit


def test_dark_frame_fails_on_light_not_on_blur(pipeline, photo):
    """Sharpness is measured on contrast-normalised grey levels: a dark face is 'too dark', not 'blurred'."""
    reasons = failed(assess(pipeline, darkened(photo("Colin_Powell", 1))))
    assert "brightness" in reasons and "sharpness" not in reasons


def test_two_faces_side_by_side_are_refused(pipeline, photo):
    verdict = assess(pipeline, side_by_side(photo("Colin_Powell", 1), photo("Tony_Blair", 2)))
    reasons = failed(verdict)
    assert re.match(r"2 faces of similar size \(second face \d\.\d\d of the first >= 0\.75\)", reasons["face_count"])


def test_blank_frame_has_no_face(pipeline):
    verdict = assess(pipeline, np.full((240, 320, 3), 90, np.uint8))
    assert not verdict.ok and verdict.reasons == ["no face found"] and verdict.chip is None


def test_a_small_bystander_is_allowed(pipeline, face_images):
    """Arnold_Schwarzenegger_0004 has a second, smaller face (0.61 of the main one) in view."""
    from edge.vision.image import load_image

    rgb = load_image(face_images["Arnold_Schwarzenegger"][3])
    assert len(pipeline.detect(rgb)) == 2
    assert assess(pipeline, rgb).ok


# ---- pose from landmarks (geometry, no model) ---------------------------------------------------------

def turned(points, degrees, centre=(56.0, 72.0)):
    angle = math.radians(degrees)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return (points - centre) @ rotation.T + centre


def test_frontal_pose():
    yaw, pitch, roll = pose(FRONTAL)
    assert yaw == pytest.approx(0.0, abs=1e-9)
    assert pitch == pytest.approx(0.5)
    assert roll == pytest.approx(0.0, abs=1e-9)
    assert quality.pose_gate(FRONTAL)[0]


def test_roll_is_the_eye_line_angle_and_does_not_leak_into_yaw_or_pitch():
    yaw, pitch, roll = pose(turned(FRONTAL, 30.0))
    assert roll == pytest.approx(30.0)
    assert yaw == pytest.approx(0.0, abs=1e-6) and pitch == pytest.approx(0.5)
    ok, reason = quality.pose_gate(turned(FRONTAL, -30.0))
    assert not ok and reason.startswith("head tilted: roll -30.0 deg")


def test_yaw_follows_the_nose():
    nose_under_right_eye = FRONTAL.copy()
    nose_under_right_eye[2, 0] = 74.0  # offset = half the eye distance -> tan(yaw) = 1
    assert pose(nose_under_right_eye)[0] == pytest.approx(45.0)
    assert quality.pose_gate(nose_under_right_eye)[0]  # 45 < 50: still usable
    profile = FRONTAL.copy()
    profile[2, 0] = 56.0 - 18.0 * 1.5
    ok, reason = quality.pose_gate(profile)
    assert pose(profile)[0] < -50 and not ok and reason.startswith("head turned sideways: yaw -56 deg")


@pytest.mark.parametrize("nose_y, words", [(54.0, "head tilted up"), (90.0, "head tilted down")])
def test_pitch_follows_the_nose_height(nose_y, words):
    points = FRONTAL.copy()
    points[2, 1] = nose_y
    ok, reason = quality.pose_gate(points)
    assert not ok and reason.startswith(words)
