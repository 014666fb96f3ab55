"""Crafted bad frames, each made from a good fixture photo with one defect."""
from __future__ import annotations

import cv2
import numpy as np


def blurred(rgb, sigma=3.0):
    return cv2.GaussianBlur(rgb, (0, 0), sigma)


def rotated(rgb, degrees=40.0):
    height, width = rgb.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    return cv2.warpAffine(rgb, matrix, (width, height), borderValue=(128, 128, 128))


def darkened(rgb, factor=0.15):
    return np.clip(rgb.astype(np.float32) * factor, 0, 255).astype(np.uint8)


def brightened(rgb):
    return np.clip(rgb.astype(np.float32) * 0.4 + 190, 0, 255).astype(np.uint8)


def flattened(rgb, factor=0.25):
    as_float = rgb.astype(np.float32)
    return np.clip((as_float - as_float.mean()) * factor + 128, 0, 255).astype(np.uint8)


def side_by_side(left, right):
    return np.ascontiguousarray(np.concatenate([left, right], axis=1))


def tiny(rgb, scale=0.3):
    """The photo shrunk into the corner of a grey frame of the same size: a face far away."""
    height, width = rgb.shape[:2]
    small = cv2.resize(rgb, (int(width * scale), int(height * scale)), interpolation=cv2.INTER_AREA)
    canvas = np.full_like(rgb, 128)
    canvas[:small.shape[0], :small.shape[1]] = small
    return canvas
