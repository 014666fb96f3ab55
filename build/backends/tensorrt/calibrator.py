"""TensorRT's implicit INT8 calibration: IInt8EntropyCalibrator2 fed through pycuda.

TensorRT pulls batches with ``get_batch(names)``, expecting one device pointer
per input, or None when the data is done. It swallows any exception raised in
there and treats it as the end of the data (TensorRT 8.5's binding prints
"Exception caught in get_batch()"), so a bug would end calibration silently
with ranges from a handful of batches. The calibrator therefore stores the
error and ``raise_if_failed()`` re-raises it after the build.

The cache (TensorRT's text format, header ``TRT-<version>-EntropyCalibration2``)
is reused only by the same TensorRT release: its key holds the TensorRT
version, the ONNX file's sha256 and the calibration set's sha256, because a
cache from other weights or other faces gives wrong ranges without failing.

``EntropyCalibrator`` subclasses ``trt.IInt8EntropyCalibrator2`` and is created
on first use, so this module imports without TensorRT; the logic lives in
CalibratorLogic, which tests drive with fakes.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Iterable

import numpy as np

from edge.engines.trt_compat import calibration_cache_header, load_tensorrt
from edge.exc import CalibrationError
from edge_calibration.sets import empty_set_message


def cache_path(folder: str | os.PathLike, trt_version: str, onnx_sha256: str, set_sha256: str) -> Path:
    return Path(folder) / f"calibration-trt{trt_version}-{onnx_sha256[:16]}-{set_sha256[:16]}.cache"


class CalibratorLogic:
    """Everything the calibrator does except being a TensorRT object."""

    def __init__(self, batches: Iterable[np.ndarray], batch_shape: tuple, cache_file: str | os.PathLike | None,
                 trt_version: str, cuda):
        self.iterator = iter(batches)
        self.batch_shape = tuple(int(v) for v in batch_shape)
        self.cache_file = Path(cache_file) if cache_file else None
        self.header = calibration_cache_header(trt_version)
        self.cuda = cuda
        self.device = cuda.mem_alloc(int(np.prod(self.batch_shape)) * 4)
        self.batches = 0
        self.used_cache = False
        self.error: BaseException | None = None

    def get_batch_size(self) -> int:
        return self.batch_shape[0]

    def get_batch(self, names, *_):
        if self.error is not None:
            return None
        try:
            batch = next(self.iterator, None)
            if batch is None:
                return None
            batch = np.ascontiguousarray(batch, dtype=np.float32)
            if batch.shape != self.batch_shape:
                # TensorRT calibrates at the calibration profile's OPT shape only.
                raise CalibrationError(f"calibration batch has shape {batch.shape}; the calibration profile needs {self.batch_shape}")
            self.cuda.memcpy_htod(self.device, batch)
        except BaseException as error:  # noqa: BLE001 - TensorRT would swallow it; keep it for raise_if_failed
            self.error = error
            return None
        self.batches += 1
        return [int(self.device)] * len(names)

    def read_calibration_cache(self):
        if self.cache_file is None or not self.cache_file.exists():
            return None
        data = self.cache_file.read_bytes()
        if not data.startswith(self.header.encode()):
            return None  # another TensorRT release or algorithm: calibrate again
        self.used_cache = True
        return data

    def write_calibration_cache(self, cache) -> None:
        if self.cache_file is None:
            return
        self.cache_file.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.cache_file.with_name(self.cache_file.name + ".tmp")
        temporary.write_bytes(bytes(cache))
        os.replace(temporary, self.cache_file)

    def raise_if_failed(self) -> None:
        if self.error is not None:
            raise self.error
        if self.batches == 0 and not self.used_cache:
            raise CalibrationError(empty_set_message(detail="TensorRT's calibrator received no batch"))

    def free(self) -> None:
        if self.device is not None:
            self.device.free()
            self.device = None


@functools.lru_cache(maxsize=None)
def calibrator_class(trt):
    """The IInt8EntropyCalibrator2 subclass for this TensorRT module."""

    class EntropyCalibrator(CalibratorLogic, trt.IInt8EntropyCalibrator2):
        def __init__(self, batches, batch_shape, cache_file, trt_version, cuda):
            # The base must be initialised explicitly (Polygraphy notes a segfault otherwise).
            trt.IInt8EntropyCalibrator2.__init__(self)
            CalibratorLogic.__init__(self, batches, batch_shape, cache_file, trt_version, cuda)

    return EntropyCalibrator


def __getattr__(name: str):
    # The subclass needs TensorRT's base class, so it is made on first use: this
    # module must import on machines without TensorRT (tests, the CPU build).
    if name == "EntropyCalibrator":
        return calibrator_class(load_tensorrt())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
