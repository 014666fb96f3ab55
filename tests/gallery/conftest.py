"""Fixtures for the gallery tests: a real key file and a real SQLite gallery in tmp_path."""
from __future__ import annotations

import numpy as np
import pytest

from edge.gallery.crypto import create_key
from edge.gallery.store import Gallery


@pytest.fixture
def key_path(tmp_path):
    create_key(tmp_path / "gallery.key")
    return tmp_path / "gallery.key"


@pytest.fixture
def key(key_path):
    return key_path.read_bytes()


@pytest.fixture
def gallery_path(tmp_path):
    return tmp_path / "gallery.sqlite"


@pytest.fixture
def gallery(gallery_path, key):
    with Gallery.create(gallery_path, key, actor="test") as opened:
        yield opened


@pytest.fixture
def make_vectors():
    """make_vectors(seed, count, dim=128): embedding-like float32 rows with a norm near 1, as dlib's are."""
    def make(seed: int, count: int, dim: int = 128) -> np.ndarray:
        return (np.random.default_rng(seed).normal(size=(count, dim)) / np.sqrt(dim)).astype(np.float32)
    return make
