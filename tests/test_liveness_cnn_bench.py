"""The CNN liveness experiment's wide chip (benchmarks/liveness_cnn.py): where the face box lands."""
from __future__ import annotations

import numpy as np

from buildkit import load_benchmark

BENCH = load_benchmark("liveness_cnn")


def square(size: int, box) -> np.ndarray:
    image = np.zeros((size, size, 3), np.uint8)
    x0, y0, x1, y1 = box
    image[y0:y1, x0:x1] = 255
    return image


def test_the_box_fills_its_share_of_the_wide_chip_in_the_middle():
    chip = BENCH.wide_chip(square(400, (150, 150, 250, 250)), np.array([150.0, 150, 250, 250]))
    lit = np.argwhere(chip > 127)
    width = BENCH.texture.CHIP_SIZE / BENCH.WIDE_SCALE  # the box is 1 / WIDE_SCALE of the chip across
    assert abs((lit[:, 1].max() - lit[:, 1].min() + 1) - width) <= 1.5
    assert abs((lit[:, 0].max() - lit[:, 0].min() + 1) - width) <= 1.5
    assert np.allclose(lit.mean(axis=0), (BENCH.texture.CHIP_SIZE - 1) / 2, atol=1.0)


def test_a_camera_of_twice_the_resolution_gives_the_same_chip():
    small = BENCH.wide_chip(square(400, (150, 150, 250, 250)), np.array([150.0, 150, 250, 250]))
    large = BENCH.wide_chip(square(800, (300, 300, 500, 500)), np.array([300.0, 300, 500, 500]))
    assert np.abs(small.astype(int) - large.astype(int)).max() <= 40
    assert np.abs(small.astype(int) - large.astype(int)).mean() < 2


def test_outside_the_frame_is_black():
    chip = BENCH.wide_chip(square(200, (0, 0, 100, 100)), np.array([0.0, 0, 100, 100]))
    assert chip[:5, :5].max() == 0  # the chip's top-left corner lies above and left of the frame
    assert chip[40, 40] == 255
