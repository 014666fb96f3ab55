"""Where each engine file lives, by model name, precision and backend; which face detector runs.

One naming rule for every tool (fetch, build, the pipeline, selftest), so a
kiosk maker can see at a glance which engines a device holds.

``DETECTORS`` names every face detector the pipeline can run (each class says
which engines it is built from, edge.vision.detector.Detector); ``DETECTOR`` is
the one the pipeline, calibration and the selftest load. A second detector is
its own module, its build recipe, and one line in ``DETECTORS``.
"""
from __future__ import annotations

from pathlib import Path

from edge import paths
from edge.exc import ConfigError, EngineError
from edge.vision.mtcnn import MtcnnDetector

EMBEDDING = "embedding"
DETECTORS = {"mtcnn": MtcnnDetector}
DETECTOR = "mtcnn"
DETECTOR_NETS = DETECTORS[DETECTOR].nets
ATTRIBUTES = "attributes"
BACKENDS = ("onnxruntime", "tensorrt")
PRECISIONS = ("fp32", "fp16", "int8")
SUFFIX = {"onnxruntime": ".onnx", "tensorrt": ".engine"}


def engine_path(name: str, precision: str = "fp32", backend: str = "onnxruntime", models_dir: Path | None = None) -> Path:
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    folder = Path(models_dir) / "engines" if models_dir else paths.engines_dir()
    return folder / f"{name}.{precision}{SUFFIX[backend]}"


def require_engine(name: str, precision: str, backend: str, models_dir: Path | None = None) -> Path:
    """The engine's path, or an error that says which command makes it."""
    path = engine_path(name, precision, backend, models_dir)
    if not path.exists():
        if precision == "fp32" and backend == "onnxruntime":
            hint = "run `edge-verify models fetch`"
        else:
            hint = f"run `edge-verify build --model {name.split('-')[0]} --precision {precision} --backend {backend}`"
        raise EngineError(f"no {precision} {backend} engine for {name} at {path}; {hint}")
    return path


def detector_class(name: str = DETECTOR):
    """The Detector class registered as ``name``, or ConfigError naming the known ones."""
    try:
        return DETECTORS[name]
    except KeyError:
        raise ConfigError(f"unknown face detector {name!r}; known: {', '.join(DETECTORS)}") from None
