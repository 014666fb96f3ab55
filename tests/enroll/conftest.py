"""Fixtures for enrollment: a real gallery file and key in tmp_path, an admin token,
fixture photos as RGB arrays. The real pipeline comes from
tests/conftest.py (``pipeline``, ``models_ready``); crafted bad frames are in enroll_frames.py."""
from __future__ import annotations

import io
import sys

import numpy as np
import pytest

from edge.gallery import open_gallery
from edge.vision.image import load_image

TOKEN = "enroll-test-token"


@pytest.fixture
def gallery_files(tmp_path):
    """(gallery path, key path) in tmp_path; neither exists yet."""
    return tmp_path / "gallery.sqlite", tmp_path / "gallery.key"


@pytest.fixture
def gallery(gallery_files):
    path, key = gallery_files
    with open_gallery(path, key, create=True, actor="test") as opened:
        yield opened


@pytest.fixture
def token(gallery_files, monkeypatch):
    """Set the admin token of the tmp gallery with the real command; the environment holds none."""
    from edge.cli import main

    monkeypatch.delenv("EDGE_VERIFY_ADMIN_TOKEN", raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO(TOKEN + "\n"))
    assert main(["admin", "set-token", "--gallery", str(gallery_files[0])]) == 0
    return TOKEN


@pytest.fixture(scope="session")
def photo(face_images):
    """photo(person, number) -> RGB array of a fixture photo (number 1-4)."""
    def load(person: str, number: int = 1) -> np.ndarray:
        return load_image(face_images[person][number - 1])
    return load
