"""Stand-ins for `tensorrt` and `pycuda.driver` with exactly the calls each
TensorRT generation has (shared/notes/tensorrt-pycuda-on-jetson.md, section 2).

They prove the plumbing (which API is called on which version, batching,
buffer staging, profile shapes), never TensorRT's numerics. The fake engine
computes, per sample, [sum, max] of its input so results can be checked.
"""
from __future__ import annotations

import ctypes
import types
from enum import Enum

import numpy as np


class TensorIOMode(Enum):
    INPUT = 1
    OUTPUT = 2


class Flag(Enum):
    FP16 = 1
    INT8 = 2
    GPU_FALLBACK = 3


# -------------------------------------------------------------------- pycuda

class Device:
    """A device allocation: host memory whose address is the "device pointer", so code that
    does pointer arithmetic (offsets into an engine's input buffer) works on it too."""

    registry: dict[int, "Device"] = {}

    def __init__(self, nbytes: int):
        self.buffer = np.zeros(nbytes, dtype=np.uint8)
        self.freed = False
        Device.registry[int(self)] = self

    def __int__(self) -> int:
        return self.buffer.ctypes.data

    __index__ = __int__

    def free(self) -> None:
        self.freed = True


def device_bytes(pointer, nbytes: int) -> np.ndarray:
    """The nbytes at a fake device pointer (a Device or an int inside one), as a writable uint8 view."""
    return np.ctypeslib.as_array((ctypes.c_uint8 * nbytes).from_address(int(pointer)))


def fake_pycuda():
    driver = types.ModuleType("pycuda.driver")
    driver.copies = []

    def htod(device, host, stream=None):
        data = np.ascontiguousarray(host).view(np.uint8).reshape(-1)
        device_bytes(device, data.size)[:] = data
        driver.copies.append("htod")

    def dtoh(host, device, stream=None):
        flat = host.reshape(-1).view(np.uint8)
        flat[:] = device_bytes(device, flat.size)
        driver.copies.append("dtoh")

    driver.mem_alloc = Device
    driver.pagelocked_empty = lambda shape, dtype: np.empty(shape, dtype=dtype)
    driver.memcpy_htod_async = htod
    driver.memcpy_htod = htod
    driver.memcpy_dtoh_async = dtoh
    driver.memcpy_dtoh = dtoh
    driver.Stream = lambda: types.SimpleNamespace(handle=1234, synchronize=lambda: None)
    package = types.ModuleType("pycuda")
    package.driver = driver
    return {"pycuda": package, "pycuda.driver": driver, "pycuda.autoprimaryctx": types.ModuleType("pycuda.autoprimaryctx")}


# ------------------------------------------------------------------ tensorrt

class Engine:
    def __init__(self, version: str, max_batch: int = 4, min_batch: int = 1, side: int = 8):
        self.v10 = version.startswith("10.")
        self.names = ["image", "stats"]
        self.max_batch = max_batch
        self.min_batch = min_batch
        self.side = side  # input (-1, 3, side, side)
        self.num_io_tensors = 2
        if not self.v10:
            self.num_bindings = 2

    def get_tensor_name(self, i):
        return self.names[i]

    def get_tensor_mode(self, name):
        return TensorIOMode.INPUT if name == "image" else TensorIOMode.OUTPUT

    def get_tensor_shape(self, name):
        return (-1, 3, self.side, self.side) if name == "image" else (-1, 2)

    def get_tensor_profile_shape(self, name, profile):
        shape = (3, self.side, self.side)
        return (self.min_batch, *shape), (self.min_batch, *shape), (self.max_batch, *shape)

    def get_tensor_dtype(self, name):
        return "float32"

    def get_binding_index(self, name):
        if self.v10:
            raise AttributeError("get_binding_index is gone in TensorRT 10")
        return self.names.index(name)

    def create_execution_context(self):
        return Context(self)


class Context:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.shapes = {}
        self.addresses = {}
        self.calls = []
        # Named-tensor launch from 8.5 on; 10.x removed the bindings-list one.
        self.execute_async_v3 = self._v3
        self.set_tensor_address = self._address
        if not engine.v10:
            self.execute_async_v2 = self._v2

    def set_input_shape(self, name, shape):
        if not self.engine.min_batch <= shape[0] <= self.engine.max_batch:
            return False
        self.shapes[name] = tuple(shape)
        return True

    def get_tensor_shape(self, name):
        return (self.shapes["image"][0], 2) if name == "stats" else self.shapes[name]

    def _address(self, name, pointer):
        self.addresses[name] = pointer

    def _v3(self, stream):
        self.calls.append("v3")
        return self._compute(self.addresses["image"], self.addresses["stats"])

    def _v2(self, bindings, stream):
        self.calls.append("v2")
        return self._compute(bindings[0], bindings[1])

    def _compute(self, source, target):
        shape = self.shapes["image"]
        count = int(np.prod(shape))
        x = Device.registry[source].buffer[: count * 4].view(np.float32).reshape(shape)
        out = np.stack([x.reshape(len(x), -1).sum(1), x.reshape(len(x), -1).max(1)], axis=1).astype(np.float32)
        Device.registry[target].buffer[: out.nbytes] = out.view(np.uint8).reshape(-1)
        return True


def fake_tensorrt(version: str, engine: Engine | None = None):
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.deserialised = []
    trt.TensorIOMode = TensorIOMode
    trt.loggers = []  # every trt.Logger made: TensorRT wants one per process
    trt.plugin_inits = []

    class Logger:
        WARNING = 2

        def __init__(self, level=None):
            trt.loggers.append(self)

    trt.Logger = Logger
    trt.init_libnvinfer_plugins = lambda logger, namespace: trt.plugin_inits.append(logger) or True
    trt.nptype = lambda dtype: np.float32

    class Runtime:
        def __init__(self, logger):
            self.DLA_core = None

        def deserialize_cuda_engine(self, data):
            trt.deserialised.append(bytes(data))
            return engine if data.startswith(b"plan") else None

    trt.Runtime = Runtime
    trt.BuilderFlag = Flag
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="workspace")
    trt.DeviceType = types.SimpleNamespace(DLA="dla", GPU="gpu")
    trt.LayerType = types.SimpleNamespace(QUANTIZE="q", DEQUANTIZE="dq", CONVOLUTION="conv")
    trt.NetworkDefinitionCreationFlag = types.SimpleNamespace(EXPLICIT_BATCH=0)
    return trt


# ----------------------------------------------------------- builder objects

class Profile:
    def __init__(self):
        self.shapes = {}

    def set_shape(self, name, low, opt, high):
        self.shapes[name] = (tuple(low), tuple(opt), tuple(high))


class Config:
    def __init__(self, v10: bool):
        self.flags = []
        self.pool = None
        self.profiles = []
        self.calibration_profile = None
        self.int8_calibrator = None
        self.default_device_type = "gpu"
        self.DLA_core = -1
        if not v10:
            self.max_workspace_size = 0

    def set_memory_pool_limit(self, kind, size):
        self.pool = (kind, size)

    def set_flag(self, flag):
        self.flags.append(flag)

    def add_optimization_profile(self, profile):
        self.profiles.append(profile)

    def set_calibration_profile(self, profile):
        self.calibration_profile = profile


class Builder:
    def __init__(self, version: str, dla_cores: int = 2):
        self.v10 = version.startswith("10.")
        self.num_DLA_cores = dla_cores

    def create_builder_config(self):
        return Config(self.v10)

    def create_optimization_profile(self):
        return Profile()


class NetworkDefinition:
    def __init__(self, inputs, layer_types=()):
        self._inputs = [types.SimpleNamespace(name=n, shape=s) for n, s in inputs]
        self._layers = [types.SimpleNamespace(type=t) for t in layer_types]
        self.num_inputs = len(self._inputs)
        self.num_layers = len(self._layers)

    def get_input(self, i):
        return self._inputs[i]

    def get_layer(self, i):
        return self._layers[i]
