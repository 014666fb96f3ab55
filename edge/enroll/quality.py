"""Quality gates for enrollment frames: is this face good enough to be a template for months?

A template taken from a blurred, dark, sideways or tiny face makes its owner fail
at the door long after the installer has left, so enrollment only keeps frames
that pass every gate. Each gate returns ``(ok, reason)``; the reason names the
measured value and the limit, so the installer knows what to fix.

What is measured, and on what:
  * the number of faces and the face's size: on the detector's boxes;
  * pose: on the five MTCNN landmarks (eye on the image's left, eye on the
    image's right, nose tip, mouth corners);
  * brightness, contrast, sharpness: on the aligned chip the embedding model
    sees (the same pixels the template is made from), on its central part, which
    is the face itself rather than the padding around it.

The limits were set from the values measured on LFW photos (the fixture faces
and a sample of 600 LFW images; `python benchmarks/enroll_quality.py --lfw DIR`
prints the percentiles) and on crafted bad frames, so that ordinary photos pass
and each crafted defect fails its gate. The figures are in the comments.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

# Smallest face box side, in pixels. The daemon ignores faces under 80 px
# (systemd/config.toml, [decision] min_face_px); a template from a face smaller
# than any the kiosk acts on would be upsampled into the 150 px chip and hold
# less detail than the probes it is compared with. Fixture faces: 85-112 px;
# LFW: 5th percentile 82 px (a kiosk camera at arm's length gives 150 px or more).
MIN_FACE_PX = 80.0

# A second face counts as "another person at the kiosk", which makes whose face
# is enrolled a guess, when its box side is at least this share of the main
# face's and the box is mostly inside the frame. Two people side by side measure
# ~1.0; a bystander further back less (fixture Arnold_Schwarzenegger_0004: 0.61).
# In the LFW sample 66 of 600 photos hold a second whole face, at 0.30-1.0 of
# the main one (median 0.70); the 28 at 0.75 or more are mostly press photos of
# two people side by side, which is what an enrollment frame must not be.
SIMILAR_FACE = 0.75
# A face cut by the frame's edge (fixture Gloria_Macapagal_Arroyo_0003: a guard
# behind her, 67 % inside) is someone passing the edge of view, not a second
# person in front of the camera.
WHOLE_FACE = 0.8

# Roll: angle of the eye line, degrees. Alignment straightens roll, but a head
# tilted this far is usually turned out of plane too; LFW (deep-funneled, thus
# straightened) stays within 12 degrees for 99 % of faces, the fixtures within 10.
# A photo rotated by 40 degrees fails.
MAX_ROLL_DEG = 20.0

# Yaw, degrees, estimated from the nose tip's sideways offset from the eyes'
# midpoint: with the nose tip about half an eye distance in front of the eyes
# (an average adult head), offset / (half the eye distance) ~= tan(yaw). Beyond
# ~50 degrees the far eye and mouth corner are hidden: MTCNN guesses where they
# are and the alignment is wrong. Fixture faces reach 44 degrees (Arnold_
# Schwarzenegger_0001), LFW's 1st-99th percentile is -37 to +33 degrees.
MAX_YAW_DEG = 50.0

# Pitch: where the nose tip sits between the eye line (0) and the mouth line (1);
# chin up moves it toward the eyes, chin down toward the mouth. Frontal faces:
# ~0.53; LFW 1st-99th percentile 0.30-0.78, extremes 0.23 and 0.87; fixtures
# 0.28-0.72.
PITCH_RANGE = (0.2, 0.85)

# Mean grey level of the face (0-255). Fixture faces 73-170, LFW 54-193. Below 40
# the face is mostly sensor noise and JPEG blocks; above 215 skin clips to white.
# A photo darkened to 15 % measures 12-25, one washed out (0.4 x + 190) 222-250.
BRIGHTNESS_RANGE = (40.0, 215.0)

# Standard deviation of the face's grey levels. Fixture faces 19-67, LFW: 1st
# percentile 19, least 16. Contrast flattened to a quarter (fog, glare, a washed
# out screen) measures 5-17.
MIN_CONTRAST = 14.0

# Variance of the Laplacian of the face after its grey levels are scaled to a
# standard deviation of 50, so that a dark or flat face (judged by the gates
# above) is not also called blurred. Fixture faces 20-210 (the least, Hugo_
# Chavez_0003, is a soft photo), LFW: 1st percentile 25, median 97; the fixture
# photos blurred with a Gaussian of sigma 3 px measure 1-17, sigma 2 px 3-30.
# So this catches heavy focus or motion blur only; LFW's 250 px JPEGs are softer
# than a kiosk camera's frames, whose faces are larger and downsampled into the chip.
MIN_SHARPNESS = 18.0
SHARPNESS_SCALE = 50.0


@dataclass(frozen=True)
class GateResult:
    """One gate's verdict: ``name`` (face_count, face_size, pose, brightness, contrast, sharpness)."""

    name: str
    ok: bool
    reason: str


@dataclass
class Assessment:
    """The verdict on one frame: the face judged, its chip (normalised, for the embedder),
    every measured value, and the result of every gate that could be run."""

    face: object | None
    chip: np.ndarray | None
    measures: dict = field(default_factory=dict)
    gates: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.gates) and all(gate.ok for gate in self.gates)

    @property
    def reasons(self) -> list[str]:
        return [gate.reason for gate in self.gates if not gate.ok]


# ---- the gates -------------------------------------------------------------------------------------

def face_count_gate(faces, shape) -> tuple[bool, str]:
    """Exactly one face, or one main face with only much smaller ones around it."""
    if not faces:
        return False, "no face found"
    main = max(face_side(face) for face in faces)
    others = sorted((face_side(face) for face in faces if inside_share(face, shape) >= WHOLE_FACE), reverse=True)[1:]
    similar = [side for side in others if side >= SIMILAR_FACE * main]
    if similar:
        return False, (f"{1 + len(similar)} faces of similar size (second face {similar[0] / main:.2f} of the "
                       f"first >= {SIMILAR_FACE}); only the person enrolling may be in view")
    return True, f"one face ({len(faces)} detected)"


def face_size_gate(face) -> tuple[bool, str]:
    side = face_side(face)
    if side < MIN_FACE_PX:
        return False, f"face too small: {side:.0f} px < {MIN_FACE_PX:.0f} px (come closer to the camera)"
    return True, f"face size {side:.0f} px >= {MIN_FACE_PX:.0f} px"


def pose_gate(landmarks) -> tuple[bool, str]:
    yaw, pitch, roll = pose(landmarks)
    if abs(roll) > MAX_ROLL_DEG:
        return False, f"head tilted: roll {roll:+.1f} deg, limit +/-{MAX_ROLL_DEG:.0f} (hold the head upright)"
    if abs(yaw) > MAX_YAW_DEG:
        return False, (f"head turned sideways: yaw {yaw:+.0f} deg, limit +/-{MAX_YAW_DEG:.0f} "
                       "(look straight at the camera)")
    low, high = PITCH_RANGE
    if pitch < low:
        return False, f"head tilted up: pitch {pitch:.2f} < {low} (lower the chin)"
    if pitch > high:
        return False, f"head tilted down: pitch {pitch:.2f} > {high} (raise the chin)"
    return True, f"pose yaw {yaw:+.0f} deg, pitch {pitch:.2f}, roll {roll:+.1f} deg"


def brightness_gate(brightness: float) -> tuple[bool, str]:
    low, high = BRIGHTNESS_RANGE
    if brightness < low:
        return False, f"too dark: brightness {brightness:.0f} < {low:.0f} (more light on the face)"
    if brightness > high:
        return False, (f"too bright: brightness {brightness:.0f} > {high:.0f} "
                       "(less light, or no light behind the camera)")
    return True, f"brightness {brightness:.0f} in {low:.0f}-{high:.0f}"


def contrast_gate(contrast: float) -> tuple[bool, str]:
    if contrast < MIN_CONTRAST:
        return False, f"too little contrast: {contrast:.1f} < {MIN_CONTRAST:.0f} (fog, glare or backlight)"
    return True, f"contrast {contrast:.1f} >= {MIN_CONTRAST:.0f}"


def sharpness_gate(sharpness: float) -> tuple[bool, str]:
    if sharpness < MIN_SHARPNESS:
        return False, (f"too blurred: sharpness {sharpness:.1f} < {MIN_SHARPNESS:.0f} "
                       "(hold still; clean or focus the lens)")
    return True, f"sharpness {sharpness:.1f} >= {MIN_SHARPNESS:.0f}"


# ---- measurements ------------------------------------------------------------------------------------

def face_side(face) -> float:
    """The box's shorter side: MTCNN boxes are taller than wide, and the width is what
    limits the detail across the eyes."""
    return float(min(face.width, face.height))


def inside_share(face, shape) -> float:
    """Share of the face's box that lies inside an image of ``shape`` (H, W, ...)."""
    x1, y1, x2, y2 = face.box
    inside_w = max(0.0, min(x2, shape[1]) - max(x1, 0.0))
    inside_h = max(0.0, min(y2, shape[0]) - max(y1, 0.0))
    return inside_w * inside_h / face.area if face.area > 0 else 0.0


def pose(landmarks) -> tuple[float, float, float]:
    """(yaw_degrees, pitch, roll_degrees) estimated from the five landmarks.

    Roll is the eye line's angle. The landmarks are then turned upright about the
    eyes' midpoint, so yaw and pitch do not mix with roll: yaw is atan of the
    nose's sideways offset in half eye distances (see MAX_YAW_DEG), pitch the
    nose's height between the eye line (0) and the mouth line (1).
    """
    points = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    left_eye, right_eye, nose, mouth_left, mouth_right = points
    eye_line = right_eye - left_eye
    eye_distance = float(np.hypot(*eye_line))
    if eye_distance < 1e-6:
        return math.inf, math.inf, 0.0
    roll = math.degrees(math.atan2(eye_line[1], eye_line[0]))
    cos, sin = eye_line / eye_distance
    upright = np.array([[cos, sin], [-sin, cos]])  # rotates by -roll
    eyes_middle = (left_eye + right_eye) / 2.0
    nose_x, nose_y = upright @ (nose - eyes_middle)
    _, mouth_y = upright @ ((mouth_left + mouth_right) / 2.0 - eyes_middle)
    yaw = math.degrees(math.atan(nose_x / (eye_distance / 2.0)))
    pitch = nose_y / mouth_y if mouth_y > 1e-6 else math.inf
    return float(yaw), float(pitch), float(roll)


def chip_pixels(chip: np.ndarray, mean, std) -> np.ndarray:
    """The normalised (3, S, S) chip back in 0-255 grey levels (S, S) float32."""
    chip = np.asarray(chip, dtype=np.float32)
    rgb = chip * np.asarray(std, np.float32).reshape(3, 1, 1) + np.asarray(mean, np.float32).reshape(3, 1, 1)
    # ITU-R BT.601 luma weights, as OpenCV's RGB2GRAY uses
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def face_region(grey: np.ndarray, padding: float) -> np.ndarray:
    """The face proper: the chip is padded by ``padding`` (the manifest's chip_padding)
    of the face's size on each side, so the face is its central 1 / (1 + 2 padding)."""
    size = grey.shape[0]
    margin = int(round(size * (1.0 - 1.0 / (1.0 + 2.0 * padding)) / 2.0))
    return grey[margin:size - margin, margin:size - margin]


def chip_measures(grey: np.ndarray, padding: float) -> dict:
    """brightness (mean), contrast (std) and contrast-normalised sharpness of the face region."""
    face = face_region(np.asarray(grey, dtype=np.float32), padding)
    brightness, contrast = float(face.mean()), float(face.std())
    scaled = (face - brightness) * (SHARPNESS_SCALE / max(contrast, 1e-3))
    sharpness = float(cv2.Laplacian(scaled, cv2.CV_32F, ksize=1).var())
    return {"brightness": brightness, "contrast": contrast, "sharpness": sharpness}


# ---- one frame ---------------------------------------------------------------------------------------

def assess(pipeline, rgb: np.ndarray) -> Assessment:
    """Detect, align and judge the main face of an RGB frame with every gate."""
    scene = pipeline.look(rgb)
    ok, reason = face_count_gate(scene.faces, rgb.shape)
    if scene.main is None:
        return Assessment(None, None, {"faces": 0}, [GateResult("face_count", ok, reason)])
    chip = scene.main.chip[0]
    grey = chip_pixels(chip, pipeline.mean, pipeline.std)
    return judge(scene.main.face, chip, chip_measures(grey, pipeline.padding), len(scene.faces), (ok, reason))


def judge(face, chip: np.ndarray, chip_values: dict, n_faces: int, count_verdict: tuple[bool, str]) -> Assessment:
    yaw, pitch, roll = pose(face.landmarks)
    measures = {"faces": n_faces, "face_px": round(face_side(face), 1), "detector_score": round(float(face.score), 4),
                "yaw_deg": round(yaw, 1), "pitch": round(pitch, 3), "roll_deg": round(roll, 1)}
    measures.update({key: round(value, 1) for key, value in chip_values.items()})
    verdicts = [("face_count", count_verdict), ("face_size", face_size_gate(face)),
                ("pose", pose_gate(face.landmarks)), ("brightness", brightness_gate(measures["brightness"])),
                ("contrast", contrast_gate(measures["contrast"])), ("sharpness", sharpness_gate(measures["sharpness"]))]
    gates = [GateResult(name, ok, reason) for name, (ok, reason) in verdicts]
    return Assessment(face, chip, measures, gates)
