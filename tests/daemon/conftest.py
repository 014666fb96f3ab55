"""Fixtures for the daemon tests. Real models and the real pipeline come from tests/conftest.py
(``models_ready``, ``pipeline``: fetched and converted once per session)."""
from __future__ import annotations

import pytest


@pytest.fixture
def enrolled(tmp_path, pipeline):
    """(gallery, key) with Colin_Powell, Serena_Williams and Jennifer_Aniston enrolled from photos 1 and 2."""
    from daemonkit import make_gallery

    return make_gallery(tmp_path, pipeline)
