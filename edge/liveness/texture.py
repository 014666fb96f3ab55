"""Texture cue: is the skin in the face a live surface, or a print or a screen?

Read on a small **grey** chip of the inner face, so a colour cast cannot drive
it (the shipped colour head failed on other cameras exactly that way). Every
feature is a ratio or a histogram of signs, so brightness and contrast cancel:

* uniform rotation-invariant LBP histograms at three radii (P=8 R=1, P=8 R=2,
  P=16 R=2): the micro-texture of skin against paper grain and a screen's pixels;
* the share of spectral energy in radial frequency bands of the windowed chip
  (prints lose the high bands; a screen's pixel grid and moire put energy there),
  and how peaked the high band is (moire is a few sharp peaks);
* gradient sharpness ratios (Laplacian to gradient energy, a blur measure).

The chip is aligned on the five landmarks and always resampled to the same
64 px, from a face that was anti-aliased first, so 240x180 and 1280x720
cameras give chips of the same scale. A linear (logistic) head reads the
features: its weights, standardisation and threshold come from the liveness
manifest (edge.liveness.model). Linear on purpose: with two small training
folders a richer head learns the folders' cameras, and a dot product needs no
inference engine (plain numbers in the manifest, about 0.05 ms).
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from edge.vision import align

FEATURES = "grey-lbp-fft-v1"  # the manifest's weights fit exactly this feature list
CHIP_SIZE = 64
CHIP_PADDING = 0.05  # inner face: eyebrows to chin, little background
LBP_SETS = ((8, 1.0), (8, 2.0), (16, 2.0))
BANDS = 8  # radial bands of the spectrum from DC to Nyquist
HIGH_BAND_FROM = 0.25  # cycles per pixel: where the "high band" starts (of 0.5)
EPS = 1e-9


def grey(image: np.ndarray) -> np.ndarray:
    """uint8 grey of an RGB (H, W, 3) or grey (H, W) image."""
    if image.ndim == 2:
        return image
    return cv2.cvtColor(np.ascontiguousarray(image[..., :3]), cv2.COLOR_RGB2GRAY)


def grey_chip(image: np.ndarray, landmarks: np.ndarray, size: int = CHIP_SIZE,
              padding: float = CHIP_PADDING) -> np.ndarray:
    """(size, size) float32 grey chip of the face with these five landmarks.

    A face larger than the chip is first shrunk by area averaging, so fine
    texture is low-pass filtered the same way whatever the camera's resolution."""
    points = align.template_points(align.MTCNN_TEMPLATE, size, padding)
    a, t = align.umeyama(points, np.asarray(landmarks, dtype=np.float64))  # chip -> image
    scale = math.hypot(a[0, 0], a[1, 0])  # image pixels per chip pixel
    source = grey(image)
    if scale > 1.25:
        # crop around the chip first: shrinking the whole frame would cost more than the rest together
        corners = np.array([[0, 0], [size, 0], [0, size], [size, size]], dtype=np.float64) @ a.T + t
        height, width = source.shape
        left, top = (max(int(v) - 2, 0) for v in corners.min(axis=0))
        right, bottom = min(int(corners[:, 0].max()) + 3, width), min(int(corners[:, 1].max()) + 3, height)
        if right - left >= 2 and bottom - top >= 2:
            shrink = 1.0 / scale
            crop = source[top:bottom, left:right]
            small = cv2.resize(crop, (max(int(round(crop.shape[1] * shrink)), 1), max(int(round(crop.shape[0] * shrink)), 1)),
                               interpolation=cv2.INTER_AREA)
            factor = np.array([small.shape[1] / crop.shape[1], small.shape[0] / crop.shape[0]])
            a = a * factor[:, None]
            t = (t - np.array([left, top])) * factor
            source = small
    matrix = np.hstack([a, t[:, None]])
    chip = cv2.warpAffine(source, matrix, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)
    return chip.astype(np.float32)


def _riu2_table(points: int) -> np.ndarray:
    """Code -> bin: uniform patterns (at most two 0/1 transitions) by their number of ones, the rest in one bin."""
    # All codes at once: a Python loop over the 65,536 codes of 16 points took 0.2-0.35 s, paid by
    # the first face the daemon judged after it started (its event's latency: 254-432 ms, now 77-105).
    bits = (np.arange(1 << points, dtype=np.int64)[:, None] >> np.arange(points)) & 1
    transitions = (bits != np.roll(bits, 1, axis=1)).sum(axis=1)  # circular: bit k against bit k - 1
    return np.where(transitions <= 2, bits.sum(axis=1), points + 1).astype(np.int64)


_TABLES: dict = {}
_MAPS: dict = {}  # (chip shape, points, radius) -> the neighbours' sampling maps (the same for every chip)
_BANDS: dict = {}  # chip size -> (window, band masks, high-band mask)


def _neighbour_maps(shape: tuple, points: int, radius: float) -> list:
    key = (shape, points, radius)
    if key not in _MAPS:
        height, width = shape
        margin = int(math.ceil(radius)) + 1
        ys, xs = np.mgrid[margin:height - margin, margin:width - margin].astype(np.float32)
        maps = []
        for k in range(points):
            angle = 2.0 * math.pi * k / points
            dx, dy = radius * math.cos(angle), -radius * math.sin(angle)
            if abs(dx - round(dx)) < 1e-6 and abs(dy - round(dy)) < 1e-6:
                maps.append((int(round(dx)), int(round(dy))))
            else:
                maps.append((xs + np.float32(dx), ys + np.float32(dy)))
        _MAPS[key] = maps
    return _MAPS[key]


def lbp_histogram(chip: np.ndarray, points: int, radius: float) -> np.ndarray:
    """Normalised histogram (points + 2 bins) of rotation-invariant uniform LBP codes."""
    table = _TABLES.get(points)
    if table is None:
        table = _TABLES[points] = _riu2_table(points)
    margin = int(math.ceil(radius)) + 1
    height, width = chip.shape
    centre = chip[margin:height - margin, margin:width - margin]
    # a small tolerance: a flat patch (sensor noise only) should not flicker between codes
    darkest = centre - 0.5
    code = np.zeros(centre.shape, dtype=np.int32)  # 16 bits at most
    for k, where in enumerate(_neighbour_maps(chip.shape, points, radius)):
        if isinstance(where[0], int):
            ix, iy = where
            neighbour = chip[margin + iy:height - margin + iy, margin + ix:width - margin + ix]
        else:
            neighbour = cv2.remap(chip, where[0], where[1], cv2.INTER_LINEAR)
        code |= (neighbour >= darkest).astype(np.int32) << k
    histogram = np.bincount(table[code].ravel(), minlength=points + 2).astype(np.float64)
    return histogram / max(histogram.sum(), 1.0)


def _band_masks(size: int):
    if size not in _BANDS:
        f = np.fft.fftfreq(size)
        radius = np.sqrt(f[None, :] ** 2 + f[:, None] ** 2)
        edges = np.linspace(0.0, 0.5, BANDS + 1)
        total = (radius > edges[1]) & (radius <= 0.5)
        bands = [(radius > lo) & (radius <= hi) for lo, hi in zip(edges[1:-1], edges[2:])]
        high = (radius > HIGH_BAND_FROM) & (radius <= 0.5)
        _BANDS[size] = (np.outer(np.hanning(size), np.hanning(size)), total, bands, high)
    return _BANDS[size]


def spectrum_features(chip: np.ndarray) -> np.ndarray:
    """log share of energy per radial band (DC band left out) and the high band's peakedness."""
    window, total_mask, bands, high_mask = _band_masks(chip.shape[0])
    power = np.abs(np.fft.fft2((chip - chip.mean()) * window)) ** 2
    total = power[total_mask].sum() + EPS
    shares = [power[band].sum() / total for band in bands]
    high = power[high_mask]
    peaked = np.log((high.max() + EPS) / (np.median(high) + EPS))
    return np.array([*np.log(np.asarray(shares) + 1e-6), peaked])


def sharpness_features(chip: np.ndarray) -> np.ndarray:
    """Contrast-free blur measures: Laplacian energy over gradient energy, and gradient kurtosis."""
    gx = cv2.Sobel(chip, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(chip, cv2.CV_32F, 0, 1, ksize=3)
    lap = cv2.Laplacian(chip, cv2.CV_32F, ksize=1)
    inner = (slice(2, -2), slice(2, -2))
    g2 = (gx[inner] ** 2 + gy[inner] ** 2).astype(np.float64)
    ratio = np.log((np.mean(lap[inner].astype(np.float64) ** 2) + EPS) / (np.mean(g2) + EPS))
    magnitude = np.sqrt(g2)
    centred = magnitude - magnitude.mean()
    kurtosis = np.log(np.mean(centred ** 4) / (np.mean(centred ** 2) ** 2 + EPS) + EPS)
    return np.array([ratio, kurtosis])


def features(chip: np.ndarray) -> np.ndarray:
    """The texture feature vector (float64) of one grey chip; its order is FEATURES."""
    chip = np.asarray(chip, dtype=np.float32)
    parts = [lbp_histogram(chip, points, radius) for points, radius in LBP_SETS]
    return np.concatenate([*parts, spectrum_features(chip), sharpness_features(chip)])


FEATURE_COUNT = sum(points + 2 for points, _ in LBP_SETS) + (BANDS - 1) + 1 + 2


def face_features(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Texture features of the face with these landmarks in an RGB (or grey) frame."""
    return features(grey_chip(image, landmarks))


def attack_score(feature_vector: np.ndarray, head: dict) -> float:
    """Probability of an attack from the manifest's linear head {mean, scale, weights, bias}."""
    x = (np.asarray(feature_vector, dtype=np.float64) - head["mean"]) / head["scale"]
    logit = float(x @ head["weights"] + head["bias"])
    return 1.0 / (1.0 + math.exp(-max(min(logit, 60.0), -60.0)))
