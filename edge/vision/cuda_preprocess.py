"""GPU face alignment: the kernels in kernels/align_preprocess.cu, run through pycuda.

The kernels are compiled ahead of time, on the device that builds the TensorRT
engines (``edge-verify build --backend tensorrt``; edge_build.backends.tensorrt.kernels), into
a fatbin for sm_72 and sm_87 stored next to the engines with a JSON sidecar. Here
that fatbin is loaded with pycuda's ``module_from_buffer``: no nvcc at run time.

pycuda and a CUDA GPU exist only on the Jetson; nothing here imports pycuda until
a CudaPreprocessor is built, and a missing piece raises EngineError saying what
to do. The kernels compute the maths of edge.vision.align (see that module's
docstring), dlib's anti-alias pyramid included, and can write a TensorRT engine's
input buffer directly on the engine's stream.
"""
from __future__ import annotations

import hashlib
import importlib.resources
import json
import os
import shutil
from pathlib import Path

import numpy as np

from edge import paths
from edge.exc import EngineError
from edge.vision.align import pyramid_plan

KERNEL_NAME = "align_preprocess"
PYRAMID_KERNEL = "pyramid_down"
KERNEL_IMAGE = "align_preprocess.fatbin"  # next to the engines; its sidecar is KERNEL_IMAGE + ".json"
# pointer frame, int width, height, pitch, bgr, pointer matrices, int n_faces,
# float mean x3, float inv_std x3, int size, pointer out
KERNEL_ARG_TYPES = "PiiiiPiffffffiP"
# pointer src, int src_pitch, pointer dst, int out_width, out_height, dst_pitch
PYRAMID_ARG_TYPES = "PiPiii"
BLOCK = (32, 8, 1)  # 32 consecutive u per warp: coalesced writes to each output row
PYRAMID_BLOCK = (16, 16, 1)


def kernel_source() -> str:
    """Text of kernels/align_preprocess.cu as shipped in the package."""
    return (
        importlib.resources.files("edge.vision").joinpath("kernels").joinpath("align_preprocess.cu").read_text(encoding="utf-8")
    )


def kernel_source_sha256() -> str:
    return hashlib.sha256(kernel_source().encode("utf-8")).hexdigest()


def default_kernel_image() -> Path:
    return paths.engines_dir() / KERNEL_IMAGE


def find_nvcc() -> str:
    """The CUDA compiler, for the build step (JetPack puts it outside PATH)."""
    found = shutil.which("nvcc") or ("/usr/local/cuda/bin/nvcc" if os.access("/usr/local/cuda/bin/nvcc", os.X_OK) else None)
    if found is None:
        raise EngineError("nvcc not found: the build step compiles the CUDA kernels on the device; "
                          "install JetPack's CUDA toolkit or add /usr/local/cuda/bin to PATH")
    return found


def read_kernel_image(path: str | os.PathLike, capability: str | None = None) -> bytes:
    """The fatbin's bytes, after checking its sidecar: built from this kernel source and,
    when ``capability`` ("8.7") is given, for this GPU. EngineError says how to rebuild."""
    path = Path(path)
    rebuild = "run `edge-verify build --backend tensorrt` on this device (it compiles the kernels with nvcc)"
    try:
        image = path.read_bytes()
        sidecar = json.loads(Path(f"{path}.json").read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise EngineError(f"no precompiled CUDA kernel at {error.filename}: {rebuild}") from None
    except (OSError, ValueError) as error:
        raise EngineError(f"cannot read the CUDA kernel {path}: {error}; {rebuild}") from None
    if sidecar.get("kernel_source_sha256") != kernel_source_sha256():
        raise EngineError(f"{path} was compiled from another version of {KERNEL_NAME}.cu than this "
                          f"edge-verify ships: {rebuild}")
    if capability is not None:
        arch = "sm_" + capability.replace(".", "")
        if arch not in sidecar.get("archs", []):
            raise EngineError(f"{path} holds code for {', '.join(sidecar.get('archs', [])) or 'no GPU'}, "
                              f"not this GPU ({arch}): {rebuild}")
    return image


def load_pycuda():
    """(pycuda.driver, the primary context), or EngineError."""
    try:
        import pycuda.driver as cuda  # heavy optional dependency: exists only on the Jetson
    except ImportError as error:
        raise EngineError(f"pycuda is not installed ({error}); on a Jetson: pip install pycuda "
                          "(needs nvcc on PATH), or use the CPU preprocessing path") from error
    try:
        # The primary context is the one the CUDA runtime, hence TensorRT, uses:
        # engine buffers and these kernels must live in the same context.
        import pycuda.autoprimaryctx as primary  # heavy optional dependency, as above
    except Exception as error:  # pycuda raises its own driver errors (no device, driver too old)
        raise EngineError(f"no usable CUDA GPU for pycuda: {error}") from error
    return cuda, primary.context


class CudaPreprocessor:
    """Crops, aligns and normalises faces on the GPU.

    ``mean`` and ``std`` are the model's input normalisation (from its manifest),
    per RGB channel. ``bgr`` says the frames' byte order (True for OpenCV frames).
    All work is queued on ``self.stream`` (``stream``, e.g. a TensorRT engine's, or a
    new one). ``kernel_image`` is the precompiled fatbin (default: next to the
    engines in $EDGE_VERIFY_HOME).
    """

    def __init__(self, size: int, mean, std, bgr: bool = True, kernel_image: str | os.PathLike | None = None,
                 stream=None, capability: str | None = None):
        self.cuda, self.context = load_pycuda()
        self.size = int(size)
        self.mean = [np.float32(value) for value in np.asarray(mean, dtype=np.float64).reshape(3)]
        self.inv_std = [np.float32(1.0 / value) for value in np.asarray(std, dtype=np.float64).reshape(3)]
        self.bgr = np.int32(1 if bgr else 0)
        image = read_kernel_image(kernel_image or default_kernel_image(), capability)
        self.context.push()
        try:
            try:
                self.module = self.cuda.module_from_buffer(image)
            except self.cuda.Error as error:
                raise EngineError(f"the GPU driver refused the precompiled kernel ({error}); rebuild it with "
                                  "`edge-verify build --backend tensorrt` on this device") from error
            self.kernel = self.module.get_function(KERNEL_NAME)
            self.kernel.prepare(KERNEL_ARG_TYPES)
            self.pyramid = self.module.get_function(PYRAMID_KERNEL)
            self.pyramid.prepare(PYRAMID_ARG_TYPES)
            self.stream = stream if stream is not None else self.cuda.Stream()
        finally:
            self.cuda.Context.pop()
        self.buffers: dict[str, tuple[object, int]] = {}
        self.host: dict[str, np.ndarray] = {}

    # -- memory -------------------------------------------------------------------
    def buffer(self, name: str, nbytes: int):
        """A device allocation of at least nbytes, reused across frames."""
        held = self.buffers.get(name)
        if held is None or held[1] < nbytes:
            held = (self.cuda.mem_alloc(max(nbytes, 1)), max(nbytes, 1))
            self.buffers[name] = held
        return held[0]

    def staging(self, name: str, shape: tuple, dtype) -> np.ndarray:
        """A page-locked host array of this shape, reused across frames: asynchronous copies
        need page-locked memory (from pageable memory the driver copies synchronously)."""
        dtype = np.dtype(dtype)
        count = int(np.prod(shape))
        held = self.host.get(name)
        if held is None or held.size < count or held.dtype != dtype:
            held = self.cuda.pagelocked_empty(max(count, 1), dtype)
            self.host[name] = held
        return held[:count].reshape(shape)

    # -- work ---------------------------------------------------------------------
    def run(self, frame: np.ndarray, matrices: np.ndarray, out=None, keep: int | None = None):
        """Preprocess the faces of one host frame.

        frame: uint8 (H, W, 3) in the byte order given at construction.
        matrices: (N, 2, 3), chip (u, v) -> frame (x, y), e.g. from align.chip_matrix.
        out: device pointer (int or DeviceAllocation) to N*3*size*size float32 values,
        e.g. the TensorRT input buffer; the work is queued on self.stream and, unless
        ``keep`` asks for the first ``keep`` chips back on the host, None is returned.
        Without out, the (N, 3, size, size) float32 result comes back on the host.
        """
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            got = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
            raise EngineError(f"frame must be a uint8 (H, W, 3) array, got {got}")
        height, width = frame.shape[:2]
        self.context.push()
        try:
            staged = self.staging("frame", frame.shape, np.uint8)
            staged[...] = frame
            frame_dev = self.buffer("frame", staged.nbytes)
            self.cuda.memcpy_htod_async(frame_dev, staged, self.stream)
            return self.run_device(int(frame_dev), width, height, 3 * width, matrices, out, keep)
        finally:
            self.cuda.Context.pop()

    def run_device(self, frame_ptr: int, width: int, height: int, pitch: int, matrices: np.ndarray, out=None,
                   keep: int | None = None):
        """Like run, for a frame already in device memory (rows ``pitch`` bytes apart)."""
        matrices = np.asarray(matrices, dtype=np.float64).reshape(-1, 2, 3)
        count = len(matrices)
        if count == 0:
            return None if out is not None and keep is None else np.empty((0, 3, self.size, self.size), np.float32)
        if pitch < 3 * width:
            raise EngineError(f"frame pitch {pitch} is shorter than a row of {width} RGB pixels")
        chip_bytes = 3 * self.size * self.size * 4
        self.context.push()
        try:
            plans = [pyramid_plan((height, width), matrix, self.size) for matrix in matrices]
            sampling = self.staging("matrices", (count, 6), np.float32)
            sampling[...] = np.stack([plan.matrix.reshape(6) for plan in plans])
            matrices_dev = self.buffer("matrices", sampling.nbytes)
            self.cuda.memcpy_htod_async(matrices_dev, sampling, self.stream)
            target = int(out) if out is not None else int(self.buffer("out", count * chip_bytes))
            start = 0
            while start < count:  # faces without a pyramid share one launch; each pyramid face has its own
                if plans[start].levels:
                    source = self.pyramid_levels(frame_ptr, pitch, plans[start])
                    self.launch(*source, int(matrices_dev) + 24 * start, 1, target + chip_bytes * start)
                    start += 1
                    continue
                end = start
                while end < count and not plans[end].levels:
                    end += 1
                self.launch(frame_ptr, width, height, pitch, int(matrices_dev) + 24 * start, end - start,
                            target + chip_bytes * start)
                start = end
            wanted = count if out is None else keep
            if wanted is None:
                return None
            result = self.staging("result", (wanted, 3, self.size, self.size), np.float32)
            self.cuda.memcpy_dtoh_async(result, target, self.stream)
            self.stream.synchronize()
            return np.array(result, copy=True)  # the staging buffer is reused by the next frame
        finally:
            self.cuda.Context.pop()

    def launch(self, frame_ptr: int, width: int, height: int, pitch: int, matrices_ptr: int, faces: int,
               out_ptr: int) -> None:
        grid = ((self.size + BLOCK[0] - 1) // BLOCK[0], (self.size + BLOCK[1] - 1) // BLOCK[1], faces)
        self.kernel.prepared_async_call(
            grid, BLOCK, self.stream,
            int(frame_ptr), np.int32(width), np.int32(height), np.int32(pitch), self.bgr,
            int(matrices_ptr), np.int32(faces), *self.mean, *self.inv_std, np.int32(self.size), int(out_ptr),
        )

    def pyramid_levels(self, frame_ptr: int, pitch: int, plan) -> tuple[int, int, int, int]:
        """Crop (pointer arithmetic, no copy) and shrink per ``plan``; returns the last
        level as (pointer, width, height, pitch) for the align kernel."""
        left, top, _right, _bottom = plan.box
        shapes = plan.level_shapes()
        pointer, level_pitch = int(frame_ptr) + top * pitch + 3 * left, pitch
        for level, (height, width) in enumerate(shapes[1:], start=1):
            if height <= 0 or width <= 0:
                return pointer, 0, 0, level_pitch  # dlib gives up: nothing to sample, a black chip
            target = self.buffer(f"level{level}", height * width * 3)
            grid = ((width + PYRAMID_BLOCK[0] - 1) // PYRAMID_BLOCK[0], (height + PYRAMID_BLOCK[1] - 1) // PYRAMID_BLOCK[1], 1)
            self.pyramid.prepared_async_call(
                grid, PYRAMID_BLOCK, self.stream,
                pointer, np.int32(level_pitch), int(target), np.int32(width), np.int32(height), np.int32(3 * width),
            )
            pointer, level_pitch = int(target), 3 * width
        height, width = shapes[-1]
        return pointer, width, height, level_pitch
