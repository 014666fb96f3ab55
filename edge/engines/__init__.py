"""Engine loading behind one interface, whatever the backend.

``load_engine(path)`` reads the sidecar manifest, checks it against this
device, and returns an object with ``run(*inputs) -> list[np.ndarray]`` and
``manifest``. Backends are imported lazily: TensorRT and pycuda exist only on
Jetson.
"""
from __future__ import annotations

import os

from edge.engines.manifest import check_file_hash, read_manifest
from edge.exc import EngineError


def load_engine(path: str | os.PathLike, threads: int | None = None, verify_hash: bool = True):
    manifest = read_manifest(path)
    if verify_hash:
        check_file_hash(path, manifest)
    backend = manifest["backend"]
    if backend == "onnxruntime":
        from edge.engines.onnxrt import OnnxRuntimeEngine

        return OnnxRuntimeEngine(path, manifest, threads=threads)
    if backend == "tensorrt":
        from edge.engines.tensorrt import TensorRTEngine

        return TensorRTEngine(path, manifest)
    raise EngineError(f"{path}: unknown backend {backend!r} in its manifest")
