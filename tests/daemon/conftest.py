"""Fixtures for the daemon tests: real models (fetched once per session) and a real pipeline."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def daemon_models(model_sources):
    """The starter FP32 engines in the test models home, converted once if missing."""
    from edge import paths
    from edge.demo import models_present

    if not models_present():
        from edge_build.starter import convert_starter_models

        convert_starter_models(model_sources, log=lambda message: None)
    return paths.models_dir()


@pytest.fixture(scope="session")
def daemon_pipeline(daemon_models):
    from edge.pipeline import FacePipeline

    return FacePipeline.load()


@pytest.fixture
def mock_factory():
    from gpiozero.pins.mock import MockFactory

    factory = MockFactory()
    yield factory
    factory.close()
    factory.reset()


@pytest.fixture
def enrolled(tmp_path, daemon_pipeline):
    """(gallery, key) with Colin_Powell, Serena_Williams and Jennifer_Aniston enrolled from photos 1 and 2."""
    from daemonkit import make_gallery

    return make_gallery(tmp_path, daemon_pipeline)
