"""Synthetic flat attacks: a photo held up to the camera as a moving plane.

A face photo is mounted as a flat rectangle (a print with a white margin, or a
phone with a dark bezel), placed in front of a pinhole camera and moved over
the frames the way a hand moves it: turned about its vertical and horizontal
axes, rolled, shifted and brought nearer or farther, with the camera's noise,
focus, exposure drift and compression on top. Every frame is exactly a
homography of the photo, which is what the motion cue must recognise; the
clip's geometry is returned so a test can check that it moved enough.

Used by benchmarks/liveness_motion_clips.py (hundreds of clips from LFW, NUAA
and replay photos), by the tests (small fixture photos) and to make attack
clips for the daemon.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Motion:
    """Peak amplitudes of one clip's hand motion."""

    yaw_deg: float = 20.0
    pitch_deg: float = 12.0
    roll_deg: float = 5.0
    shift: float = 0.03  # metres
    depth: float = 0.05  # metres nearer/farther


def random_motion(rng: np.random.Generator, strength: float = 1.0) -> Motion:
    """A hand's motion; ``strength`` scales the turns (1: up to about 30 degrees)."""
    return Motion(yaw_deg=strength * rng.uniform(5.0, 30.0), pitch_deg=strength * rng.uniform(3.0, 20.0),
                  roll_deg=rng.uniform(0.0, 8.0), shift=rng.uniform(0.0, 0.05), depth=rng.uniform(0.0, 0.08))


def mount(photo: np.ndarray, kind: str = "print") -> np.ndarray:
    """The photo on its medium: a print with a white margin, or a phone with a dark bezel."""
    height, width = photo.shape[:2]
    if kind == "print":
        margin = int(round(0.06 * max(height, width)))
        return cv2.copyMakeBorder(photo, margin, margin, margin, margin, cv2.BORDER_CONSTANT, value=(245, 245, 240))
    if kind == "phone":
        side, ends = int(round(0.05 * width)), int(round(0.12 * height))
        return cv2.copyMakeBorder(photo, ends, ends, side, side, cv2.BORDER_CONSTANT, value=(18, 18, 22))
    raise ValueError(f"unknown mount {kind!r}: print or phone")


def background(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """A plain room: a smooth gradient with a few soft shapes (no faces)."""
    width, height = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(90, 200, 3)
    slope = rng.uniform(-0.08, 0.08, (2, 3))
    image = base + x[..., None] * slope[0] + y[..., None] * slope[1]
    for _ in range(int(rng.integers(2, 6))):
        x1, y1 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x2, y2 = x1 + int(rng.integers(40, width // 2)), y1 + int(rng.integers(40, height // 2))
        cv2.rectangle(image, (x1, y1), (x2, y2), tuple(float(v) for v in rng.uniform(60, 220, 3)), -1)
    image = cv2.GaussianBlur(image, (0, 0), 6)
    return np.clip(image, 0, 255).astype(np.uint8)


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    cy, sy, cp, sp, cr, sr = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch), math.cos(roll), math.sin(roll)
    about_y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    about_x = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    about_z = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return about_z @ about_x @ about_y


def plane_homography(card_size: tuple[int, int], frame_size: tuple[int, int], card_width_m: float, distance_m: float,
                     turn: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """3x3 map from card pixels to frame pixels for a card ``card_width_m`` wide, ``distance_m`` away,
    turned by ``turn`` (3x3) and shifted by ``offset`` (metres), seen by a camera of focal length = frame width."""
    card_w, card_h = card_size
    width, height = frame_size
    metres = card_width_m / card_w
    to_plane = np.array([[metres, 0, -card_w / 2 * metres], [0, metres, -card_h / 2 * metres], [0, 0, 1]])
    camera = np.array([[width, 0, width / 2], [0, width, height / 2], [0, 0, 1.0]])
    extrinsic = np.column_stack([turn[:, 0], turn[:, 1], np.array([0, 0, distance_m]) + offset])
    return camera @ extrinsic @ to_plane


def flat_attack(photo: np.ndarray, rng: np.random.Generator, frames: int = 15, size: tuple[int, int] = (640, 480),
                kind: str = "print", motion: Motion | None = None, card_width_m: float | None = None,
                distance_m: float | None = None, room: np.ndarray | None = None,
                centre: tuple[float, float] | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(RGB frames, homographies): ``photo`` (RGB) mounted as ``kind`` and moved by ``motion`` over ``frames``.

    ``room``: an RGB frame of a real room (``size``) to hold the card up in, instead of a plain one;
    ``centre``: the frame pixel the card's centre is held at (default: the middle of the view)."""
    motion = motion or random_motion(rng)
    card = mount(photo, kind)
    card_h, card_w = card.shape[:2]
    card_width_m = card_width_m or rng.uniform(0.09, 0.16)
    distance_m = distance_m or rng.uniform(0.28, 0.5)
    room = background(rng, size) if room is None else np.asarray(room, np.uint8)
    if room.shape[:2] != (size[1], size[0]):
        raise ValueError(f"the room is {room.shape[1]}x{room.shape[0]}, the frames {size[0]}x{size[1]}")
    held = np.zeros(3)
    if centre is not None:  # the card's centre seen at that pixel: its offset across the view, in metres
        held[:2] = (np.asarray(centre, np.float64) - [size[0] / 2, size[1] / 2]) * distance_m / size[0]
    phases = rng.uniform(0, 2 * math.pi, 6)
    cycles = rng.uniform(0.5, 1.2)
    gain0, gain1 = rng.uniform(0.8, 1.15, 2)
    noise, focus, quality = rng.uniform(1.0, 5.0), rng.uniform(0.0, 1.0), int(rng.integers(60, 95))
    out, homographies = [], []
    for index in range(frames):
        phase = 2 * math.pi * cycles * index / max(frames - 1, 1)
        turn = rotation(math.radians(motion.yaw_deg) * math.sin(phase + phases[0]),
                        math.radians(motion.pitch_deg) * math.sin(phase + phases[1]),
                        math.radians(motion.roll_deg) * math.sin(phase + phases[2]))
        offset = np.array([motion.shift * math.sin(phase + phases[3]), motion.shift * math.sin(phase + phases[4]),
                           motion.depth * math.sin(phase + phases[5])])
        h = plane_homography((card_w, card_h), size, card_width_m, distance_m, turn, held + offset)
        warped = cv2.warpPerspective(card, h, size, flags=cv2.INTER_LINEAR)
        inside = cv2.warpPerspective(np.full((card_h, card_w), 255, np.uint8), h, size, flags=cv2.INTER_NEAREST)
        frame = np.where(inside[..., None] > 0, warped, room).astype(np.float32)
        gain = gain0 + (gain1 - gain0) * index / max(frames - 1, 1)
        frame = cv2.GaussianBlur(frame * gain, (0, 0), focus) if focus > 0.2 else frame * gain
        frame = np.clip(frame + rng.normal(0, noise, frame.shape), 0, 255).astype(np.uint8)
        ok, data = cv2.imencode(".jpg", frame[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        out.append(cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1].copy())
        homographies.append(h)
    return out, homographies
