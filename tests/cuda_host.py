"""The CUDA kernels of edge/vision/kernels/align_preprocess.cu, run on the CPU.

The .cu file is compiled as host C++ with a shim that defines the CUDA built-ins
and loops over the grid a launch asks for, one "thread" at a time. Installed into
the pycuda stand-in of trt_fakes (``install_kernels``), it makes
``module_from_buffer(...).get_function(...).prepared_async_call(grid, block, ...)``
execute the real kernel code on fake device memory (host memory whose addresses
are the device pointers). That checks the host-side plumbing (pyramid levels,
pointer offsets, pitches, grids, output slots) and the kernels' indexing and
arithmetic without a GPU; not GPU float rounding (FMA), timing or the driver.
"""
from __future__ import annotations

import ctypes
import shutil
import subprocess
import types
from pathlib import Path

import numpy as np

from edge.vision.cuda_preprocess import kernel_source

SHIM = r"""
#include <math.h>
#include <stddef.h>
struct HostDim3 { unsigned int x, y, z; };
static HostDim3 blockIdx, threadIdx, blockDim;
#define __global__
#include "align_preprocess.cu"

#define GRID_LOOP(gx, gy, gz, bx, by, body) \
    blockDim.x = bx; blockDim.y = by; blockDim.z = 1; \
    for (blockIdx.z = 0; blockIdx.z < (unsigned)(gz); ++blockIdx.z) \
    for (blockIdx.y = 0; blockIdx.y < (unsigned)(gy); ++blockIdx.y) \
    for (blockIdx.x = 0; blockIdx.x < (unsigned)(gx); ++blockIdx.x) \
    for (threadIdx.y = 0; threadIdx.y < (unsigned)(by); ++threadIdx.y) \
    for (threadIdx.x = 0; threadIdx.x < (unsigned)(bx); ++threadIdx.x) { body; }

extern "C" void launch_align(int gx, int gy, int gz, int bx, int by,
                             const unsigned char *frame, int width, int height, int pitch, int bgr,
                             const float *matrices, int n_faces, float mr, float mg, float mb,
                             float ir, float ig, float ib, int size, float *out)
{
    GRID_LOOP(gx, gy, gz, bx, by,
              align_preprocess(frame, width, height, pitch, bgr, matrices, n_faces, mr, mg, mb, ir, ig, ib, size, out))
}

extern "C" void launch_pyramid(int gx, int gy, int gz, int bx, int by,
                               const unsigned char *src, int src_pitch, unsigned char *dst,
                               int out_width, int out_height, int dst_pitch)
{
    GRID_LOOP(gx, gy, gz, bx, by, pyramid_down(src, src_pitch, dst, out_width, out_height, dst_pitch))
}
"""

_GRID = [ctypes.c_int] * 5
ARGTYPES = {
    "align_preprocess": _GRID + [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                 ctypes.c_void_p, ctypes.c_int] + [ctypes.c_float] * 6 + [ctypes.c_int, ctypes.c_void_p],
    "pyramid_down": _GRID + [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int],
}
LAUNCHERS = {"align_preprocess": "launch_align", "pyramid_down": "launch_pyramid"}


def compiler() -> str | None:
    return shutil.which("g++") or shutil.which("c++")


def build_library(folder: Path) -> ctypes.CDLL:
    """The kernels as a host shared library (needs a C++ compiler)."""
    (folder / "align_preprocess.cu").write_text(kernel_source())
    (folder / "shim.cpp").write_text(SHIM)
    library = folder / "kernels_host.so"
    done = subprocess.run([compiler(), "-O2", "-shared", "-fPIC", "-I", str(folder), str(folder / "shim.cpp"),
                           "-o", str(library)], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    lib = ctypes.CDLL(str(library))
    for name, launcher in LAUNCHERS.items():
        getattr(lib, launcher).argtypes = ARGTYPES[name]
        getattr(lib, launcher).restype = None
    return lib


class HostFunction:
    def __init__(self, lib, name: str, launches: list):
        self.name = name
        self.launcher = getattr(lib, LAUNCHERS[name])
        self.launches = launches
        self.arg_types = None

    def prepare(self, arg_types):
        self.arg_types = arg_types

    def prepared_async_call(self, grid, block, stream, *args):
        assert self.arg_types is not None, "prepare() first, as pycuda requires"
        assert len(args) == len(self.arg_types), (self.name, len(args), self.arg_types)
        self.launches.append((self.name, tuple(grid), tuple(block), stream))
        grid = tuple(grid) + (1,) * (3 - len(grid))
        self.launcher(*grid, block[0], block[1], *[int(a) if self.arg_types[i] == "P" else a.item()
                                                   for i, a in enumerate(args)])


def install_kernels(modules: dict, lib) -> dict:
    """Give trt_fakes' pycuda stand-in what CudaPreprocessor uses: module_from_buffer,
    Context, Error and a primary context. Returns the modules with ``driver.launches``."""
    driver = modules["pycuda.driver"]
    driver.launches = []
    driver.loaded_images = []

    class Error(Exception):
        pass

    def module_from_buffer(image):
        driver.loaded_images.append(bytes(image))
        return types.SimpleNamespace(get_function=lambda name: HostFunction(lib, name, driver.launches))

    driver.Error = Error
    driver.module_from_buffer = module_from_buffer
    driver.Context = types.SimpleNamespace(pop=lambda: None)
    primary = modules["pycuda.autoprimaryctx"]
    primary.context = types.SimpleNamespace(push=lambda: None)
    modules["pycuda"].autoprimaryctx = primary
    return modules


def random_image(seed: int, shape) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
