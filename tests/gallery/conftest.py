"""Fixtures for the gallery tests: a real key file and a real SQLite gallery in tmp_path."""
from __future__ import annotations

import io
import sys

import numpy as np
import pytest

from edge.cli import main
from edge.gallery import open_gallery
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


@pytest.fixture
def admin_home(monkeypatch, make_vectors):
    """make(home, people, model, token, token_in_env=False): $EDGE_VERIFY_HOME at ``home`` with a gallery of
    ``people`` ({name: (seed, templates)}, enrolled in that order) and the admin token ``token`` set through
    `edge-verify admin set-token`; the token is also in $EDGE_VERIFY_ADMIN_TOKEN when ``token_in_env``."""
    def make(home, people: dict, model: str, token: str, token_in_env: bool = False):
        monkeypatch.setenv("EDGE_VERIFY_HOME", str(home))
        if token_in_env:
            monkeypatch.setenv("EDGE_VERIFY_ADMIN_TOKEN", token)
        else:
            monkeypatch.delenv("EDGE_VERIFY_ADMIN_TOKEN", raising=False)
        with open_gallery(create=True, actor="test") as gallery:
            for name, (seed, count) in people.items():
                gallery.add_person_templates(name, make_vectors(seed, count), model, "test")
        monkeypatch.setattr(sys, "stdin", io.StringIO(token + "\n"))
        assert main(["admin", "set-token"]) == 0
        return home

    return make

