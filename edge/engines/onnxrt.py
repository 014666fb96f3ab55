"""ONNX Runtime engines: the CPU path, the embedded default."""
from __future__ import annotations

import os

import numpy as np

from edge.engines.manifest import ManifestMismatch, check_runtime
from edge.exc import EngineError


def session_options(threads: int | None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    # The kiosk runs one frame at a time; spinning threads only steal the other core.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def cpu_session(path: str | os.PathLike, threads: int | None):
    """An ONNX Runtime session of ``path`` on the CPU provider, or EngineError saying why not."""
    import onnxruntime as ort

    try:
        return ort.InferenceSession(os.fspath(path), session_options(threads), providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own untyped errors
        raise EngineError(f"onnxruntime cannot load {path}: {error}") from error


class OnnxRuntimeEngine:
    """One ONNX model on the CPU. ``run`` takes the inputs in manifest order and
    returns the outputs in manifest order."""

    def __init__(self, path: str | os.PathLike, manifest: dict, threads: int | None = None):
        import onnxruntime as ort

        if manifest.get("backend") != "onnxruntime":
            raise ManifestMismatch(f"{path}: manifest backend is {manifest.get('backend')!r}, not onnxruntime")
        check_runtime(manifest, running_version=ort.__version__)
        self.session = cpu_session(path, threads)
        self.manifest = manifest
        self.input_names = [spec["name"] for spec in manifest["inputs"]]
        self.output_names = [spec["name"] for spec in manifest["outputs"]]
        actual = [item.name for item in self.session.get_inputs()]
        if actual != self.input_names:
            raise ManifestMismatch(f"{path}: manifest inputs {self.input_names} but the model has {actual}")

    def run(self, *inputs: np.ndarray) -> list[np.ndarray]:
        feeds = {name: np.ascontiguousarray(value, dtype=np.float32) for name, value in zip(self.input_names, inputs)}
        return self.session.run(self.output_names, feeds)

    def close(self) -> None:
        self.session = None
