"""Stages: ONNX -> TensorRT network -> builder config -> serialised engine -> file.

Written against the TensorRT Python API of JetPack 5.1 (8.5), 6.0 (8.6) and
6.1/6.2 (10.3); every version branch is a function of edge.engines.trt_compat.
``build_serialized_network`` is the one build call all three have
(``build_engine`` is gone in 10.x). Runs only where TensorRT and a GPU exist;
on Jetson that means on the device that will run the engine, because plans do
not move between TensorRT releases or GPUs. TensorRT itself is imported by
``load_tensorrt()`` when a stage runs, so this module imports anywhere.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from edge.engines.trt_compat import load_tensorrt, network_flags, set_workspace, shared_logger
from edge.exc import BuildError
from edge_build.backends.tensorrt.plan import DEFAULT_BATCH, DEFAULT_SPATIAL, profile_shapes
from edge_build.stagelog import stage


@dataclass
class Network:
    """A parsed network and the objects that must stay alive with it."""

    trt: object
    version: str
    logger: object
    builder: object
    network: object
    parser: object

    def inputs(self) -> list[tuple[str, list[int]]]:
        return [(self.network.get_input(i).name, list(self.network.get_input(i).shape)) for i in range(self.network.num_inputs)]

    def has_qdq(self) -> bool:
        """True for an explicitly quantized network (Q/DQ layers), as Polygraphy tests it."""
        kinds = {self.trt.LayerType.QUANTIZE, self.trt.LayerType.DEQUANTIZE}
        return any(self.network.get_layer(i).type in kinds for i in range(self.network.num_layers))


@stage("tensorrt parse")
def build_network(onnx_path: str | os.PathLike, trt=None) -> Network:
    trt = trt or load_tensorrt()
    version = trt.__version__
    logger = shared_logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt, version))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise BuildError(f"TensorRT {version} cannot parse {onnx_path}: " + " | ".join(errors or ["no detail"]))
    return Network(trt, version, logger, builder, network, parser)


def build_config(builder, precision: str, workspace_mb: int, calibrator=None, dla_core: int | None = None, *,
                 net: Network, batch: tuple[int, int, int] = DEFAULT_BATCH, spatial: tuple[int, int, int] = DEFAULT_SPATIAL,
                 gpu_fallback: bool = True, calibration_batch: int | None = None, fp16_ok: bool = True):
    """A builder config: precision flags, workspace limit, optimisation profile, DLA.

    Returns (config, facts) where facts records what was set, for the manifest.
    """
    trt = net.trt
    config = builder.create_builder_config()
    facts = {"workspace_mb": int(workspace_mb), "flags": [], "profiles": {}}
    facts["workspace_api"] = set_workspace(trt, config, net.version, int(workspace_mb) << 20)
    if precision == "fp16" or (precision == "int8" and fp16_ok):
        # With INT8, layers that have no INT8 kernel then run FP16 instead of FP32.
        config.set_flag(trt.BuilderFlag.FP16)
        facts["flags"].append("FP16")
    if precision == "int8":
        # Needed for Q/DQ networks on 8.x as well as for calibration.
        config.set_flag(trt.BuilderFlag.INT8)
        facts["flags"].append("INT8")
    fixed = batch[1] if dla_core is not None else None
    profile = builder.create_optimization_profile()
    for name, shape in net.inputs():
        low, opt, high = profile_shapes(shape, batch, spatial, fixed_batch=fixed)
        profile.set_shape(name, low, opt, high)
        facts["profiles"][name] = {"min": list(low), "opt": list(opt), "max": list(high)}
    config.add_optimization_profile(profile)
    if calibrator is not None:
        if net.has_qdq():
            raise BuildError("a Q/DQ (explicitly quantized) network takes no calibrator")
        config.int8_calibrator = calibrator
        calibration = builder.create_optimization_profile()
        for name, shape in net.inputs():
            _, opt, _ = profile_shapes(shape, batch, spatial, fixed_batch=calibration_batch or batch[1])
            calibration.set_shape(name, opt, opt, opt)  # TensorRT calibrates at one shape
        config.set_calibration_profile(calibration)
    if dla_core is not None:
        configure_dla(trt, builder, config, precision, dla_core, gpu_fallback)
        facts["flags"].append("GPU_FALLBACK" if gpu_fallback else "DLA_ONLY")
    return config, facts


def configure_dla(trt, builder, config, precision: str, dla_core: int, gpu_fallback: bool) -> None:
    cores = int(getattr(builder, "num_DLA_cores", 0))
    if dla_core < 0 or dla_core >= cores:
        raise BuildError(f"--dla-core {dla_core}: this device has {cores} DLA cores (AGX Orin and Orin NX have 2, Orin Nano none)")
    if precision not in ("fp16", "int8"):
        raise BuildError("the DLA runs FP16 or INT8 only; pass --precision fp16 or int8 with --dla-core")
    config.default_device_type = trt.DeviceType.DLA
    config.DLA_core = int(dla_core)
    if gpu_fallback:
        # Layers the DLA cannot run go to the GPU; without the flag the build fails on them.
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)


@stage("tensorrt build", slow=True)
def build_engine(net: Network, config) -> bytes:
    serialized = net.builder.build_serialized_network(net.network, config)
    if serialized is None:
        raise BuildError(f"TensorRT {net.version} failed to build the engine (its log above says why)")
    return bytes(serialized)


@stage("save")
def save_engine(serialized: bytes, path: str | os.PathLike) -> Path:
    """Write the plan atomically: a half-written engine must never look like a good one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(serialized)
    os.replace(temporary, path)
    return path
