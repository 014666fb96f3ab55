"""Context cue: is the face inside the straight edges of a sheet, a phone or a screen?

A print or a phone held up to the camera brings its border with it: long,
straight edges close around the face, on more than one side, roughly parallel
to the face's own axes. A real head has hair, ears and shoulders there, and the
room's straight lines (doors, shelves, monitors) are rarely on two sides of the
face at once and at the right distance.

Per frame: the region around the face box is brought to a fixed scale (face
width 96 px, so every camera resolution gives the same geometry), its edges are
found (Canny after a percentile contrast stretch: no fixed brightness) and
grouped into line segments (probabilistic Hough). For each side of the face
(left, right, top, bottom) the cue measures how much of that side is covered by
segments parallel to it (within 25 degrees of the face's roll) that lie outside
the face box and within a band around it. The attack score is the coverage of
the second best covered side: one side can be a door frame, two are a border.
The threshold comes from the liveness manifest (edge.liveness.model).
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from edge.liveness.texture import grey

FEATURES = "border-lines-v1"
FACE_WIDTH_PX = 96  # the region is rescaled so the face box is this wide
# How far from the face box a border may lie, in face widths (left/right) and heights (top/bottom).
SIDE_BAND = 1.2
TOP_BAND = 1.0
BOTTOM_BAND = 2.0
OUTSIDE = 0.03  # a border lies at least this far outside the box (the jaw and hair lie on it)
MAX_TILT_DEG = 25.0
MIN_SEGMENT = 0.3  # shortest segment, in face heights
SIDES = ("left", "right", "top", "bottom")
GREY_LEVELS = np.arange(256, dtype=np.uint8)


def face_roll(landmarks) -> float:
    """The face's in-plane angle (radians) from the eye line."""
    left, right = np.asarray(landmarks, dtype=np.float64)[:2]
    return math.atan2(right[1] - left[1], right[0] - left[0])


def region(image: np.ndarray, box) -> tuple[np.ndarray, np.ndarray, float]:
    """(grey region around the face at the fixed scale, face box in it, scale)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    width, height = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
    frame = grey(image)
    rows, cols = frame.shape
    left, right = max(int(x1 - SIDE_BAND * width - 2), 0), min(int(x2 + SIDE_BAND * width + 3), cols)
    top, bottom = max(int(y1 - TOP_BAND * height - 2), 0), min(int(y2 + BOTTOM_BAND * height + 3), rows)
    scale = FACE_WIDTH_PX / width
    crop = frame[top:bottom, left:right]
    size = (max(int(round(crop.shape[1] * scale)), 1), max(int(round(crop.shape[0] * scale)), 1))
    resized = cv2.resize(crop, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    face = (np.array([x1, y1, x2, y2]) - [left, top, left, top]) * scale
    return resized, face, scale


def stretch(grey_levels: np.ndarray, low: float, high: float) -> np.ndarray:
    """uint8 levels with ``low`` .. ``high`` spread over 0 .. 255 (clipped)."""
    return np.clip((grey_levels.astype(np.float32) - low) * (255.0 / max(high - low, 1.0)), 0, 255).astype(np.uint8)


def percentiles(grey_image: np.ndarray, *qs: float) -> tuple:
    """``np.percentile(grey_image, q)`` (its default, linear method) of a uint8 image for each ``q``, read
    off the image's histogram, made once for all of them: the same numbers, without numpy's partial
    sort of every pixel (0.5-1.5 ms on a region; the histogram takes ~0.05 ms). Numpy float64s, as
    numpy's are: arithmetic with a float32 array then happens in float64 (a Python float would keep
    float32 and round differently)."""
    counts = cv2.calcHist([np.ascontiguousarray(grey_image)], [0], None, [256], [0, 256]).ravel()
    last = np.cumsum(counts.astype(np.int64)) - 1  # the sorted position of each level's last pixel
    count = int(last[-1]) + 1
    if count == 0:
        raise ValueError("percentile of an empty region")
    return tuple(_interpolated(last, count, q) for q in qs)


def _interpolated(last: np.ndarray, count: int, q: float) -> np.float64:
    """Numpy's linear percentile from the sorted positions of each level's last pixel."""
    virtual = (count - 1) * (q / 100)  # numpy's operands, in its order: the same rounding
    below = math.floor(virtual)
    if virtual >= count - 1:
        return np.float64(np.searchsorted(last, count - 1))
    a, b = (float(np.searchsorted(last, index)) for index in (below, below + 1))
    gamma = virtual - below
    # numpy's lerp: from the lower value below one half, from the upper one above
    return np.float64(b - (b - a) * (1 - gamma) if gamma >= 0.5 else a + (b - a) * gamma)


def edges(region_grey: np.ndarray) -> np.ndarray:
    """Canny edges of a uint8 grey region after a 2-98 percentile contrast stretch."""
    low, high = percentiles(region_grey, 2, 98)
    # A stretched pixel depends on its grey level alone, so the 256 levels are stretched once and
    # looked up: the same numbers as stretching every pixel in float (identical features on 1,374
    # replay_dev faces), about 0.25 ms less of the cue's ~5 ms.
    stretched = cv2.LUT(region_grey, stretch(GREY_LEVELS, low, high))
    smooth = cv2.GaussianBlur(stretched, (5, 5), 1.0)
    return cv2.Canny(smooth, 25, 75)


def segments(edge_map: np.ndarray, face_height: float) -> np.ndarray:
    """(M, 4) line segments x1, y1, x2, y2."""
    found = cv2.HoughLinesP(edge_map, 1, math.pi / 180, threshold=25,
                            minLineLength=max(int(MIN_SEGMENT * face_height), 8), maxLineGap=4)
    return np.zeros((0, 4)) if found is None else found.reshape(-1, 4).astype(np.float64)


def _coverage(intervals: list, low: float, high: float) -> float:
    """Share of [low, high] covered by the union of intervals."""
    if high <= low:
        return 0.0
    covered, end = 0.0, low
    for start, stop in sorted((max(a, low), min(b, high)) for a, b in intervals):
        if stop <= end:
            continue
        covered += stop - max(start, end)
        end = stop
    return covered / (high - low)


def side_coverage(lines: np.ndarray, face: np.ndarray, roll: float) -> np.ndarray:
    """(4,) coverage of the left, right, top and bottom sides by border-like segments.

    Coordinates are first turned by -roll about the face centre, so "vertical"
    means parallel to the face's own vertical axis."""
    x1, y1, x2, y2 = face
    width, height = x2 - x1, y2 - y1
    centre = np.array([(x1 + x2) / 2, (y1 + y2) / 2])
    cos, sin = math.cos(-roll), math.sin(-roll)
    turn = np.array([[cos, -sin], [sin, cos]])
    found = {side: [] for side in SIDES}
    tilt = math.tan(math.radians(MAX_TILT_DEG))
    for segment in lines:
        a = turn @ (segment[:2] - centre) + centre
        b = turn @ (segment[2:] - centre) + centre
        dx, dy = abs(b[0] - a[0]), abs(b[1] - a[1])
        if dx <= tilt * dy:  # parallel to the face's vertical axis
            x = (a[0] + b[0]) / 2
            span = (min(a[1], b[1]), max(a[1], b[1]))
            if x1 - SIDE_BAND * width <= x <= x1 - OUTSIDE * width:
                found["left"].append(span)
            elif x2 + OUTSIDE * width <= x <= x2 + SIDE_BAND * width:
                found["right"].append(span)
        elif dy <= tilt * dx:  # parallel to the eye line
            y = (a[1] + b[1]) / 2
            span = (min(a[0], b[0]), max(a[0], b[0]))
            if y1 - TOP_BAND * height <= y <= y1 - OUTSIDE * height:
                found["top"].append(span)
            elif y2 + OUTSIDE * height <= y <= y2 + BOTTOM_BAND * height:
                found["bottom"].append(span)
    # a border runs along the face: coverage of the face's own extent (with a little margin)
    vertical = (y1 - 0.25 * height, y2 + 0.25 * height)
    horizontal = (x1 - 0.25 * width, x2 + 0.25 * width)
    return np.array([_coverage(found["left"], *vertical), _coverage(found["right"], *vertical),
                     _coverage(found["top"], *horizontal), _coverage(found["bottom"], *horizontal)])


def features(image: np.ndarray, box, landmarks) -> np.ndarray:
    """(4,) side coverages (left, right, top, bottom) for the face with this box and landmarks."""
    grey_region, face, _ = region(image, box)
    lines = segments(edges(grey_region), face[3] - face[1])
    return side_coverage(lines, face, face_roll(landmarks))


def attack_score(coverage: np.ndarray) -> float:
    """The second best covered side: 0 (no border) to 1 (two sides fully bordered)."""
    return float(np.sort(np.asarray(coverage, dtype=np.float64))[-2])
