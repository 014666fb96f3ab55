"""`edge-verify verify` on committed fixture photos, and its errors on bad input.

Runs the real command (a subprocess, as a user would) on the real models.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

FACES = Path(__file__).resolve().parent / "fixtures" / "faces"


def verify(*args, env=None):
    command = [sys.executable, "-m", "edge", "verify", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, env=env or os.environ.copy(), timeout=120)


@pytest.fixture(scope="module")
def ready(models_ready):
    return models_ready


@pytest.mark.parametrize("a, b, same", [
    ("Colin_Powell_0001.jpg", "Colin_Powell_0003.jpg", True),
    ("Serena_Williams_0002.jpg", "Serena_Williams_0004.jpg", True),
    ("Hugo_Chavez_0001.jpg", "Hugo_Chavez_0002.jpg", True),
    ("Colin_Powell_0001.jpg", "Tony_Blair_0001.jpg", False),
    ("Serena_Williams_0001.jpg", "Jennifer_Aniston_0001.jpg", False),
    ("George_W_Bush_0002.jpg", "Hugo_Chavez_0003.jpg", False),
])
def test_same_and_different_people(ready, a, b, same):
    result = verify(FACES / a, FACES / b, "--json")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert set(answer) >= {"same", "distance", "threshold"}
    assert answer["same"] is same
    assert (answer["distance"] <= answer["threshold"]) is same


def test_plain_output_names_the_decision(ready):
    result = verify(FACES / "Tony_Blair_0001.jpg", FACES / "Tony_Blair_0002.jpg")
    assert result.returncode == 0
    assert result.stdout.startswith("SAME person: distance ")


def one_error_line(result):
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_corrupt_file(ready, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes((FACES / "Colin_Powell_0001.jpg").read_bytes()[:600])
    line = one_error_line(verify(broken, FACES / "Colin_Powell_0002.jpg"))
    assert "broken.jpg" in line and "not a readable image" in line


def test_not_an_image(ready, tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("this is not a photo\n")
    assert "not a readable image" in one_error_line(verify(FACES / "Colin_Powell_0001.jpg", text))


def test_missing_file(ready, tmp_path):
    assert "no such file" in one_error_line(verify(tmp_path / "absent.jpg", FACES / "Colin_Powell_0001.jpg"))


def test_no_face(ready, tmp_path):
    wall = tmp_path / "wall.png"
    cv2.imwrite(str(wall), np.full((240, 320, 3), 128, np.uint8))
    assert "no face found" in one_error_line(verify(wall, FACES / "Colin_Powell_0001.jpg"))


def test_huge_image_is_refused_before_decoding(ready, tmp_path):
    huge = tmp_path / "huge.png"
    # 12,000 x 6,000 = 72 megapixels of flat colour: a tiny file that would need 216 MB decoded.
    cv2.imwrite(str(huge), np.zeros((6000, 12000, 3), np.uint8), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    line = one_error_line(verify(huge, FACES / "Colin_Powell_0001.jpg"))
    assert "megapixel limit" in line


def test_large_photo_of_a_face_still_works(ready, tmp_path):
    # A 4x upscaled photo (1000x1000): the detector shrinks it, alignment uses dlib's pyramid.
    image = cv2.imread(str(FACES / "Colin_Powell_0001.jpg"))
    big = tmp_path / "big.jpg"
    cv2.imwrite(str(big), cv2.resize(image, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC))
    result = verify(big, FACES / "Colin_Powell_0003.jpg", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["same"] is True
