"""GPU face alignment: the fused kernel in kernels/align_preprocess.cu, run through pycuda.

pycuda and a CUDA GPU exist only on the Jetson; nothing here is imported until
a CudaPreprocessor is built, and a missing piece raises EngineError saying what
to install. The kernel computes the maths of edge.vision.align.warp_reference
(see that module's docstring) and writes the engine's input buffer directly.
"""
from __future__ import annotations

import importlib.resources
import os
import shutil

import numpy as np

from edge.exc import EngineError

KERNEL_NAME = "align_preprocess"
# pointer frame, int width, height, pitch, bgr, pointer matrices, int n_faces,
# float mean x3, float inv_std x3, int size, pointer out
KERNEL_ARG_TYPES = "PiiiiPiffffffiP"
BLOCK = (32, 8, 1)  # 32 consecutive u per warp: coalesced writes to each output row


def kernel_source() -> str:
    """Text of kernels/align_preprocess.cu as shipped in the package."""
    return (
        importlib.resources.files("edge.vision").joinpath("kernels").joinpath("align_preprocess.cu").read_text(encoding="utf-8")
    )


def find_nvcc() -> str:
    """pycuda compiles with nvcc at run time; JetPack puts it outside PATH."""
    found = shutil.which("nvcc") or ("/usr/local/cuda/bin/nvcc" if os.access("/usr/local/cuda/bin/nvcc", os.X_OK) else None)
    if found is None:
        raise EngineError("nvcc not found: the GPU preprocessor compiles its kernel on the device; "
                          "install the CUDA toolkit or add /usr/local/cuda/bin to PATH")
    return found


def load_pycuda():
    """(pycuda.driver, pycuda.compiler, primary context), or EngineError."""
    try:
        import pycuda.compiler as compiler
        import pycuda.driver as cuda
    except ImportError as error:
        raise EngineError(f"pycuda is not installed ({error}); on a Jetson: pip install pycuda "
                          "(needs nvcc on PATH), or use the CPU preprocessing path") from error
    try:
        # The primary context is the one the CUDA runtime, hence TensorRT, uses:
        # engine buffers and this kernel must live in the same context.
        import pycuda.autoprimaryctx as primary
    except Exception as error:  # pycuda raises its own driver errors (no device, driver too old)
        raise EngineError(f"no usable CUDA GPU for pycuda: {error}") from error
    return cuda, compiler, primary.context


class CudaPreprocessor:
    """Crops, aligns and normalises faces on the GPU in one kernel launch per frame.

    ``mean`` and ``std`` are the model's input normalisation (from its manifest),
    per RGB channel. ``bgr`` says the frames' byte order (True for OpenCV frames).
    All work is queued on ``self.stream``; enqueue the engine on the same stream.
    """

    def __init__(self, size: int, mean, std, bgr: bool = True, arch: str | None = None):
        self.cuda, compiler, self.context = load_pycuda()
        self.size = int(size)
        self.mean = [np.float32(value) for value in np.asarray(mean, dtype=np.float64).reshape(3)]
        self.inv_std = [np.float32(1.0 / value) for value in np.asarray(std, dtype=np.float64).reshape(3)]
        self.bgr = np.int32(1 if bgr else 0)
        self.context.push()
        try:
            try:
                module = compiler.SourceModule(kernel_source(), nvcc=find_nvcc(), no_extern_c=True, arch=arch)
            except self.cuda.CompileError as error:
                raise EngineError(f"nvcc failed on {KERNEL_NAME}.cu: {error.stderr or error}") from error
            self.kernel = module.get_function(KERNEL_NAME)
            self.kernel.prepare(KERNEL_ARG_TYPES)
            self.stream = self.cuda.Stream()
        finally:
            self.cuda.Context.pop()
        self.module = module  # the kernel lives as long as its module
        self.buffers: dict[str, tuple[object, int]] = {}

    def buffer(self, name: str, nbytes: int):
        """A device allocation of at least nbytes, reused across frames."""
        held = self.buffers.get(name)
        if held is None or held[1] < nbytes:
            held = (self.cuda.mem_alloc(max(nbytes, 1)), nbytes)
            self.buffers[name] = held
        return held[0]

    def run(self, frame: np.ndarray, matrices: np.ndarray, out=None):
        """Preprocess the faces of one host frame.

        frame: uint8 (H, W, 3) in the byte order given at construction.
        matrices: (N, 2, 3), chip (u, v) -> frame (x, y), e.g. from align.chip_matrix.
        out: device pointer (int or DeviceAllocation) to N*3*size*size float32
        values, e.g. the TensorRT input buffer; the work is then only queued on
        self.stream and None is returned. Without out, the (N, 3, size, size)
        float32 result comes back on the host.
        """
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            got = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
            raise EngineError(f"frame must be a uint8 (H, W, 3) array, got {got}")
        frame = np.ascontiguousarray(frame)
        height, width = frame.shape[:2]
        self.context.push()
        try:
            frame_dev = self.buffer("frame", frame.nbytes)
            # From pageable memory the copy is staged before this returns, so the
            # caller may reuse the frame at once; page-locked frames copy truly async.
            self.cuda.memcpy_htod_async(frame_dev, frame, self.stream)
            return self.run_device(int(frame_dev), width, height, 3 * width, matrices, out)
        finally:
            self.cuda.Context.pop()

    def run_device(self, frame_ptr: int, width: int, height: int, pitch: int, matrices: np.ndarray, out=None):
        """Like run, for a frame already in device memory (rows ``pitch`` bytes apart)."""
        matrices = np.ascontiguousarray(np.asarray(matrices, dtype=np.float32).reshape(-1, 6))
        count = len(matrices)
        if count == 0:
            return None if out is not None else np.empty((0, 3, self.size, self.size), np.float32)
        if pitch < 3 * width:
            raise EngineError(f"frame pitch {pitch} is shorter than a row of {width} RGB pixels")
        self.context.push()
        try:
            matrices_dev = self.buffer("matrices", matrices.nbytes)
            self.cuda.memcpy_htod_async(matrices_dev, matrices, self.stream)
            target = out if out is not None else self.buffer("out", count * 3 * self.size * self.size * 4)
            grid = ((self.size + BLOCK[0] - 1) // BLOCK[0], (self.size + BLOCK[1] - 1) // BLOCK[1], count)
            self.kernel.prepared_async_call(
                grid, BLOCK, self.stream,
                int(frame_ptr), np.int32(width), np.int32(height), np.int32(pitch), self.bgr,
                int(matrices_dev), np.int32(count), *self.mean, *self.inv_std, np.int32(self.size), int(target),
            )
            if out is not None:
                return None
            result = np.empty((count, 3, self.size, self.size), dtype=np.float32)
            self.stream.synchronize()
            self.cuda.memcpy_dtoh(result, target)
            return result
        finally:
            self.cuda.Context.pop()
