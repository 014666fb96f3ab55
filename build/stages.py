"""The build step as small stages that log their time and output size.

In the spirit of Polygraphy's loaders, each stage is one plain callable with one
job (export, quantize, build a TensorRT network, serialise, write the manifest,
run the accuracy gate) and they compose by passing each other's results:

    with BuildLog(echo=print) as log:
        onnx = export_onnx(module, contract, "m.onnx")
        int8 = quantize_int8(onnx, "m.int8.onnx", chips)
    log.records  # [StageRecord("export", 2.1 s, 22.4 MB, "m.onnx"), ...]

The machinery (``@stage``, ``BuildLog``) is in edge_build.stagelog; each stage
lives in its own module and is gathered here. Importing this module loads torch
and onnx (hard dependencies of the build package) but not TensorRT or pycuda,
which the TensorRT stages import only when they run.
"""
from __future__ import annotations

from edge_build.backends.onnxruntime.backend import build_onnxruntime_engine
from edge_build.backends.tensorrt.builder import build_config, build_engine, build_network, save_engine
from edge_build.gate import accuracy_gate
from edge_build.manifests import write_engine_manifest
from edge_build.onnx_export import export_onnx
from edge_build.quantize import quantize_int8
from edge_build.stagelog import BuildLog, StageRecord, human_size, stage

__all__ = [
    "BuildLog", "StageRecord", "stage", "human_size",
    "export_onnx", "quantize_int8", "build_onnxruntime_engine",
    "build_network", "build_config", "build_engine", "save_engine",
    "write_engine_manifest", "accuracy_gate",
]
