"""TensorRT version differences, as plain functions of the version string.

JetPack 5.1 ships TensorRT 8.5, JetPack 6.0 ships 8.6, JetPack 6.1/6.2 ship 10.3.
Their Python APIs differ in ways that break code (shared/notes/
tensorrt-pycuda-on-jetson.md, section 2). Every branch on the version lives
here, so it can be tested with fake version strings on a machine that has no
TensorRT, and the builder and runtime never probe attributes at random.

``import tensorrt`` happens only in ``load_tensorrt()``.
"""
from __future__ import annotations

import re

from edge.exc import EngineError

OLDEST = (8, 5)  # the named-tensor API (num_io_tensors, set_input_shape) starts here
INSTALL_HINT = (
    "TensorRT comes with JetPack: `sudo apt install python3-libnvinfer` and create the venv with "
    "--system-site-packages (never `pip install tensorrt` on a Jetson)"
)


def parse_version(text: str) -> tuple[int, int, int]:
    """(major, minor, patch) of "8.5.2.2", "10.3.0", "8.6.2" (build numbers are dropped)."""
    match = re.match(r"^\s*(\d+)\.(\d+)(?:\.(\d+))?", str(text))
    if not match:
        raise EngineError(f"cannot read TensorRT version {text!r}")
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


def supported(version: str) -> tuple[int, int, int]:
    """The parsed version, or EngineError for releases older than 8.5."""
    parsed = parse_version(version)
    if parsed[:2] < OLDEST:
        raise EngineError(
            f"TensorRT {version} is too old: edge-verify needs 8.5 or newer (JetPack 5.1+); "
            "JetPack 4 boards (Nano, TX2) can use the ONNX Runtime CPU engines"
        )
    return parsed


def is_v10(version: str) -> bool:
    return supported(version)[0] >= 10


def network_flags(trt, version: str) -> int:
    """Flags for builder.create_network.

    8.x's ONNX parser accepts only explicit-batch networks; 10.x made explicit batch
    the only mode and deprecated the flag (it is ignored), so pass nothing there.
    """
    if is_v10(version):
        return 0
    return 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)


def set_workspace(trt, config, version: str, workspace_bytes: int) -> str:
    """Limit the builder's scratch memory; returns which API did it.

    ``set_memory_pool_limit`` exists from 8.4 and ``max_workspace_size`` is gone in
    10.x, so every supported version takes the memory-pool call; the attribute is
    kept as the branch for a binding that lacks it (it would be 8.3 or older).
    """
    supported(version)
    if hasattr(config, "set_memory_pool_limit"):
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
        return "set_memory_pool_limit"
    config.max_workspace_size = int(workspace_bytes)
    return "max_workspace_size"


def execution_api(version: str) -> str:
    """How to launch inference: "v3" (set_tensor_address + execute_async_v3) on every
    supported release. Both calls exist from 8.5 (TensorRT's pyCore.cpp at 8.5.3,
    8.6.1 and 10.3), and the bindings-list execute_async_v2 is gone in 10.x, so one
    path serves all three and there is no second one to go stale."""
    supported(version)
    return "v3"


def calibrator_deprecated(version: str) -> bool:
    """IInt8EntropyCalibrator2 is deprecated from 10.1 in favour of explicit (Q/DQ) quantization."""
    return supported(version)[:2] >= (10, 1)


def version_integer(version: str) -> int:
    """The library's own version number, as it appears in calibration cache headers:
    8.x = major*1000 + minor*100 + patch (8.5.2 -> 8502); 10.x = major*10000 + minor*100 + patch."""
    major, minor, patch = supported(version)
    if major >= 10:
        return major * 10000 + minor * 100 + patch
    return major * 1000 + minor * 100 + patch


def calibration_cache_header(version: str, algorithm: str = "EntropyCalibration2") -> str:
    return f"TRT-{version_integer(version)}-{algorithm}"


def same_version(built: str, running: str) -> bool:
    """Engines are not portable across TensorRT releases: major.minor.patch must be equal."""
    return parse_version(built) == parse_version(running)


_LOGGER: tuple | None = None  # (tensorrt module, its Logger): one per process


def shared_logger(trt):
    """The process's one ``trt.Logger``, with TensorRT's plugins registered once.

    TensorRT keeps the logger the first builder or runtime was given and warns when
    another one arrives later, so the builder, the calibrator and every engine share
    this one (created on first use: ``import tensorrt`` happens only on the device).
    """
    global _LOGGER
    if _LOGGER is None or _LOGGER[0] is not trt:
        logger = trt.Logger(trt.Logger.WARNING)
        trt.init_libnvinfer_plugins(logger, "")
        _LOGGER = (trt, logger)
    return _LOGGER[1]


def load_tensorrt():
    """``import tensorrt`` with an install hint instead of a bare ImportError."""
    try:
        import tensorrt as trt
    except ImportError as error:
        raise EngineError(f"TensorRT is not installed ({error}). {INSTALL_HINT}") from error
    supported(trt.__version__)
    return trt


def load_pycuda():
    """pycuda's driver module with its primary context current on this thread.

    ``pycuda.autoprimaryctx`` shares the CUDA runtime's primary context, which is
    the one TensorRT uses; ``pycuda.autoinit`` would create a second context.
    """
    try:
        import pycuda.autoprimaryctx  # noqa: F401  (makes the primary context current)
        import pycuda.driver as cuda
    except ImportError as error:
        raise EngineError(
            f"pycuda is not installed ({error}); build it on the device: "
            "export PATH=/usr/local/cuda/bin:$PATH && pip install pycuda"
        ) from error
    return cuda
