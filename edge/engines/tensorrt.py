"""TensorRT engines on Jetson: deserialise, bind pycuda buffers, run.

Checks come first: the manifest's TensorRT version and GPU must be this
device's before a byte of the plan is handed to TensorRT, because a plan from
another release or GPU either fails with an assertion deep in the library or,
worse, loads. Importing this module needs neither TensorRT nor pycuda; they are
imported when an engine is opened.

One execution context, one CUDA stream, buffers sized for the largest batch of
the engine's optimisation profile (pagelocked host memory, so the copies can be
asynchronous). Every release launches the same way, ``set_tensor_address`` and
``execute_async_v3`` (both exist from 8.5; see edge.engines.trt_compat).

The input buffers are on the device and the stream is ``self.stream``: the CUDA
aligner (edge.vision.cuda_aligner) writes face chips straight into
``device_input()`` on that stream and then calls ``run_device(count)``, so the
chips never travel back through the host before inference.

CUDA contexts are current per thread: open and run an engine on the same
thread (the pycuda primary context is made current on the opening thread).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.engines.manifest import check_runtime
from edge.engines.trt_compat import execution_api, load_pycuda, load_tensorrt, shared_logger
from edge.exc import EngineError, ManifestMismatch


@dataclass
class Binding:
    name: str
    is_input: bool
    dtype: np.dtype
    max_shape: tuple
    min_batch: int = 1
    declared: tuple = ()  # the engine's own shape, -1 for dynamic axes

    def accepts(self, shape: tuple) -> bool:
        return len(shape) == len(self.declared) and all(
            size == want if want != -1 else size <= limit for size, want, limit in zip(shape, self.declared, self.max_shape))
    host: object = None  # pagelocked numpy array of max_shape
    device: object = None  # pycuda DeviceAllocation


class TensorRTEngine:
    """A serialised TensorRT engine. ``run`` takes the inputs in manifest order and
    returns the outputs in manifest order, like OnnxRuntimeEngine."""

    def __init__(self, path: str | os.PathLike, manifest: dict, device: dict | None | str = "detect"):
        if manifest.get("backend") != "tensorrt":
            raise ManifestMismatch(f"{path}: manifest backend is {manifest.get('backend')!r}, not tensorrt")
        self.trt = trt = load_tensorrt()
        check_runtime(manifest, running_version=trt.__version__, device=device)
        self.manifest = manifest
        self.path = Path(path)
        self.api = execution_api(trt.__version__)
        self.cuda = load_pycuda()
        # The runtime must outlive the engine it deserialised.
        self.runtime, self.engine = deserialise(trt, Path(path), manifest)
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise EngineError(f"{path}: TensorRT could not create an execution context (out of GPU memory?)")
        self.stream = self.cuda.Stream()
        self.input_names = [spec["name"] for spec in manifest["inputs"]]
        self.output_names = [spec["name"] for spec in manifest["outputs"]]
        self.bindings = {name: self.describe(name) for name in self.input_names + self.output_names}
        self.check_io()
        self.size_outputs()
        for binding in self.bindings.values():
            binding.host = self.cuda.pagelocked_empty(binding.max_shape, binding.dtype)
            binding.device = self.cuda.mem_alloc(binding.host.nbytes)

    # ------------------------------------------------------------ set-up

    def describe(self, name: str) -> Binding:
        trt, engine = self.trt, self.engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        if name not in names:
            raise ManifestMismatch(f"manifest names tensor {name!r}, the engine has {names}")
        is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
        declared = shape = tuple(engine.get_tensor_shape(name))
        min_batch = shape[0] if shape[0] > 0 else 1
        if is_input and -1 in shape:
            low, _, high = engine.get_tensor_profile_shape(name, 0)  # allocate for the profile's max
            shape, min_batch = tuple(high), int(low[0])
        return Binding(name, is_input, np.dtype(trt.nptype(engine.get_tensor_dtype(name))), shape, min_batch, declared)

    def size_outputs(self) -> None:
        """Output buffers for the largest inputs: set every input to its profile
        maximum and read the output shapes TensorRT derives from them."""
        for name in self.input_names:
            if not self.context.set_input_shape(name, self.bindings[name].max_shape):
                raise EngineError(f"TensorRT refused the profile's largest shape for {name}")
        for name in self.output_names:
            self.bindings[name].max_shape = self.output_shape(name)

    def check_io(self) -> None:
        for name in self.input_names:
            if not self.bindings[name].is_input:
                raise ManifestMismatch(f"manifest lists {name!r} as an input; in the engine it is an output")
        for name in self.output_names:
            if self.bindings[name].is_input:
                raise ManifestMismatch(f"manifest lists {name!r} as an output; in the engine it is an input")
        inputs = [b for b in self.bindings.values() if b.is_input]
        self.max_batch = min(b.max_shape[0] for b in inputs)
        # A DLA engine has one fixed batch (min = max): shorter batches are padded.
        self.min_batch = max(b.min_batch for b in inputs)

    def output_shape(self, name: str) -> tuple:
        # Only known once every input shape is set for this batch.
        shape = tuple(self.context.get_tensor_shape(name))
        if -1 in shape:
            raise EngineError(f"TensorRT left output {name} with an unresolved shape {shape}")
        return shape

    # ------------------------------------------------------------ inference

    def run(self, *inputs: np.ndarray) -> list[np.ndarray]:
        if len(inputs) != len(self.input_names):
            raise EngineError(f"engine takes {len(self.input_names)} inputs ({', '.join(self.input_names)}), got {len(inputs)}")
        total = len(inputs[0])
        if total == 0:
            raise EngineError("engine input is empty (batch of 0)")
        results: list[list[np.ndarray]] = [[] for _ in self.output_names]
        for start in range(0, total, self.max_batch):
            chunk = [np.asarray(x)[start:start + self.max_batch] for x in inputs]
            count = len(chunk[0])
            if count < self.min_batch:
                chunk = [np.concatenate([c, np.zeros((self.min_batch - count, *c.shape[1:]), c.dtype)]) for c in chunk]
            for index, out in enumerate(self.run_batch(chunk)):
                results[index].append(out[:count])
        return [np.concatenate(parts) for parts in results]

    def run_batch(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        for name, value in zip(self.input_names, inputs):
            binding = self.bindings[name]
            value = np.ascontiguousarray(value, dtype=binding.dtype)
            self.set_input_shape(name, value.shape)
            staging = binding.host.reshape(-1)[: value.size].reshape(value.shape)
            staging[...] = value
            self.cuda.memcpy_htod_async(binding.device, staging, self.stream)
        return self.launch_and_fetch()

    def device_input(self) -> Binding:
        """The one input's binding: ``device`` is the buffer to write (max_shape floats of
        ``dtype``), ``self.stream`` the stream to write it on."""
        if len(self.input_names) != 1:
            raise EngineError(f"engine has inputs {self.input_names}; writing chips needs exactly one")
        return self.bindings[self.input_names[0]]

    def run_device(self, count: int) -> list[np.ndarray]:
        """Run on the first ``count`` samples already in the device input buffer.

        Whoever wrote them queued the writes on ``self.stream`` (or made the stream
        wait for them), so inference starts only after the data is complete."""
        binding = self.device_input()
        if not self.min_batch <= count <= self.max_batch:
            raise EngineError(f"batch of {count} is outside the engine's profile ({self.min_batch}..{self.max_batch})")
        self.set_input_shape(binding.name, (count, *binding.max_shape[1:]))
        return self.launch_and_fetch()

    def set_input_shape(self, name: str, shape: tuple) -> None:
        binding = self.bindings[name]
        if not binding.accepts(shape):
            raise EngineError(f"input {name} has shape {shape}; the engine takes {binding.declared} "
                              f"(-1 = any size up to {binding.max_shape})")
        if not self.context.set_input_shape(name, shape):
            raise EngineError(f"TensorRT refused input shape {shape} for {name}")

    def launch_and_fetch(self) -> list[np.ndarray]:
        self.launch()
        outputs = []
        for name in self.output_names:
            binding = self.bindings[name]
            shape = self.output_shape(name)
            staging = binding.host.reshape(-1)[: int(np.prod(shape))].reshape(shape)
            self.cuda.memcpy_dtoh_async(staging, binding.device, self.stream)
            outputs.append(staging)
        self.stream.synchronize()
        return [np.array(out, dtype=np.float32, copy=True) for out in outputs]

    def launch(self) -> None:
        for binding in self.bindings.values():
            self.context.set_tensor_address(binding.name, int(binding.device))
        if not self.context.execute_async_v3(self.stream.handle):
            raise EngineError("TensorRT failed to enqueue inference (see the TensorRT log above)")

    def close(self) -> None:
        for binding in getattr(self, "bindings", {}).values():
            if binding.device is not None:
                binding.device.free()
                binding.device = None
        self.context = None
        self.engine = None
        self.runtime = None


def deserialise(trt, path: Path, manifest: dict):
    runtime = trt.Runtime(shared_logger(trt))
    dla_core = (manifest.get("device") or {}).get("dla_core")
    if dla_core is not None:
        runtime.DLA_core = int(dla_core)
    engine = runtime.deserialize_cuda_engine(path.read_bytes())
    if engine is None:
        raise EngineError(f"TensorRT could not deserialise {path} (see its log above); rebuild it with `edge-verify build --backend tensorrt`")
    return runtime, engine
