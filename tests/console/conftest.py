"""Fixtures for the console tests: real models and galleries (tests/conftest.py, tests/daemon/daemonkit.py)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "daemon"))


@pytest.fixture
def gallery_files(tmp_path, pipeline):
    """(gallery, key): Colin_Powell, Serena_Williams and Jennifer_Aniston enrolled from photos 1 and 2."""
    from daemonkit import make_gallery

    return make_gallery(tmp_path, pipeline)
