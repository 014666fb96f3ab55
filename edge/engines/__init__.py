"""Engine loading behind one interface, whatever the backend.

``load_engine(path)`` reads the sidecar manifest, checks it against this
device, and returns an object with ``run(*inputs) -> list[np.ndarray]`` and
``manifest``. TensorRT and pycuda (Jetson only) are imported when a TensorRT
engine is opened, never at import.
"""
from __future__ import annotations

import os

from edge.engines.manifest import check_file_hash, read_manifest
from edge.engines.onnxrt import OnnxRuntimeEngine
from edge.engines.tensorrt import TensorRTEngine  # TensorRT itself is imported when an engine opens
from edge.exc import EngineError


def load_engine(path: str | os.PathLike, threads: int | None = None, verify_hash: bool = True):
    manifest = read_manifest(path)
    if verify_hash:
        check_file_hash(path, manifest)
    backend = manifest["backend"]
    if backend == "onnxruntime":
        return OnnxRuntimeEngine(path, manifest, threads=threads)
    if backend == "tensorrt":
        return TensorRTEngine(path, manifest)
    raise EngineError(f"{path}: unknown backend {backend!r} in its manifest")
