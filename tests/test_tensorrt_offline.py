"""The TensorRT path without a GPU: version branches, capability table, build
decisions, calibrator logic and engine plumbing against fakes of the real APIs.
What needs a real Jetson is in test_tensorrt_device.py and skips here."""
from __future__ import annotations

import importlib
import sys

import numpy as np
import pytest

import trt_fakes
from edge.engines import device as dev
from edge.engines import trt_compat
from edge.exc import BuildError, CalibrationError, EngineError, ManifestMismatch, PrecisionUnsupported
from edge_build.backends.tensorrt.plan import device_precision, int8_method, profile_shapes

ORIN = {"gpu": "Orin", "compute_capability": "8.7", "source": "pycuda"}
NANO = {"gpu": "NVIDIA Tegra X1", "compute_capability": "5.3", "source": "pycuda"}
TX2 = {"gpu": "TX2", "compute_capability": "6.2", "source": "pycuda"}
PASCAL = {"gpu": "GeForce GTX 1080", "compute_capability": "6.1", "source": "nvidia-smi"}


def test_modules_import_without_tensorrt_or_pycuda():
    for name in ("edge.engines.tensorrt", "edge_build.backends.tensorrt.builder",
                 "edge_build.backends.tensorrt.calibrator", "edge_build.backends.tensorrt.backend",
                 "edge_build.backends.tensorrt.plan"):
        importlib.import_module(name)
    if importlib.util.find_spec("tensorrt") is None:
        assert "tensorrt" not in sys.modules
        with pytest.raises(EngineError, match="python3-libnvinfer"):
            trt_compat.load_tensorrt()


@pytest.mark.parametrize("text, parsed", [("8.5.2.2", (8, 5, 2)), ("8.6.2", (8, 6, 2)), ("10.3.0", (10, 3, 0)), ("10.3", (10, 3, 0))])
def test_versions_parse(text, parsed):
    assert trt_compat.parse_version(text) == parsed


def test_versions_older_than_8_5_are_refused():
    with pytest.raises(EngineError, match="8.5 or newer"):
        trt_compat.supported("8.4.1")
    with pytest.raises(EngineError, match="cannot read"):
        trt_compat.parse_version("latest")


@pytest.mark.parametrize("version, api, flags", [("8.5.2.2", "v3", 1), ("8.6.2", "v3", 1), ("10.3.0", "v3", 0)])
def test_version_branches(version, api, flags):
    trt = trt_fakes.fake_tensorrt(version)
    assert trt_compat.execution_api(version) == api
    assert trt_compat.network_flags(trt, version) == flags


def test_workspace_uses_the_memory_pool_on_every_supported_version():
    for version in ("8.5.2", "10.3.0"):
        trt = trt_fakes.fake_tensorrt(version)
        config = trt_fakes.Config(v10=version.startswith("10"))
        assert trt_compat.set_workspace(trt, config, version, 1 << 30) == "set_memory_pool_limit"
        assert config.pool == ("workspace", 1 << 30)


def test_calibration_cache_headers_follow_the_library_version_number():
    assert trt_compat.calibration_cache_header("8.5.2.2") == "TRT-8502-EntropyCalibration2"
    assert trt_compat.calibration_cache_header("8.6.2") == "TRT-8602-EntropyCalibration2"
    assert trt_compat.calibration_cache_header("10.3.0") == "TRT-100300-EntropyCalibration2"
    assert trt_compat.calibrator_deprecated("10.3.0") and not trt_compat.calibrator_deprecated("8.6.2")
    assert trt_compat.same_version("8.5.2.2", "8.5.2") and not trt_compat.same_version("8.5.2", "8.5.3")


@pytest.mark.parametrize("cc, fp16, int8", [
    ("5.3", True, False), ("6.0", True, False), ("6.1", False, True), ("6.2", True, False),
    ("7.0", True, True), ("7.2", True, True), ("8.7", True, True), ("5.2", False, False), ((8, 6), True, True),
])
def test_fast_precision_table(cc, fp16, int8):
    assert (dev.fast_fp16(cc), dev.fast_int8(cc)) == (fp16, int8)


def test_device_descriptions():
    assert dev.parse_nvidia_smi("NVIDIA GeForce RTX 3090, 8.6\n")["compute_capability"] == "8.6"
    assert dev.parse_nvidia_smi("Tesla K80, [N/A]\n") is None
    assert dev.jetson_from_model("NVIDIA Jetson AGX Orin Developer Kit")["compute_capability"] == "8.7"
    assert dev.jetson_from_model("NVIDIA Jetson Orin Nano Developer Kit")["compute_capability"] == "8.7"
    assert dev.jetson_from_model("NVIDIA Jetson Nano Developer Kit")["compute_capability"] == "5.3"
    assert dev.jetson_from_model("NVIDIA Jetson Xavier NX Developer Kit")["compute_capability"] == "7.2"
    assert dev.jetson_from_model("Raspberry Pi 4 Model B") is None


def test_int8_on_a_nano_is_refused_unless_fallback_is_allowed():
    with pytest.raises(PrecisionUnsupported, match="int8 is not fast on NVIDIA Tegra X1 .compute capability 5.3.*--allow-fallback"):
        device_precision("int8", NANO, allow_fallback=False)
    plan = device_precision("int8", NANO, allow_fallback=True)
    assert (plan.precision, plan.requested) == ("fp16", "int8") and "no fast int8" in plan.fallback
    assert device_precision("fp16", PASCAL, allow_fallback=True).precision == "fp32"
    assert device_precision("int8", TX2, allow_fallback=True).precision == "fp16"
    assert device_precision("int8", ORIN, allow_fallback=False).fallback is None


def test_the_builder_answer_wins_over_the_table():
    with pytest.raises(PrecisionUnsupported):
        device_precision("int8", ORIN, allow_fallback=False, builder_fast={"int8": False, "fp16": True})


def test_int8_method_choice():
    assert int8_method("8.5.2", None) == "explicit"
    assert int8_method("10.3.0", None, "calibrator") == "calibrator"
    assert int8_method("8.5.2", 0) == "calibrator"  # the DLA takes no Q/DQ on 8.x
    with pytest.raises(BuildError, match="DLA does not take"):
        int8_method("8.6.2", 1, "explicit")


def test_profile_shapes():
    assert profile_shapes([-1, 3, 150, 150]) == ((1, 3, 150, 150), (4, 3, 150, 150), (32, 3, 150, 150))
    assert profile_shapes([-1, 3, -1, -1]) == ((1, 3, 12, 12), (1, 3, 240, 240), (4, 3, 1024, 1024))
    assert profile_shapes([-1, 3, 24, 24], fixed_batch=8) == ((8, 3, 24, 24),) * 3
    with pytest.raises(BuildError):
        profile_shapes([-1, 3, 24, 24], batch=(4, 2, 8))


# ----------------------------------------------------------- builder config

def network(version, inputs=(("chip", [-1, 3, 150, 150]),), layers=()):
    from edge_build.backends.tensorrt.builder import Network

    trt = trt_fakes.fake_tensorrt(version)
    builder = trt_fakes.Builder(version)
    return Network(trt, version, None, builder, trt_fakes.NetworkDefinition(inputs, layers), None)


@pytest.mark.parametrize("version", ["8.5.2.2", "10.3.0"])
def test_build_config_int8_sets_both_flags_and_the_profile(version):
    from edge_build.backends.tensorrt.builder import build_config

    net = network(version)
    config, facts = build_config(net.builder, "int8", 512, net=net)
    assert config.flags == [trt_fakes.Flag.FP16, trt_fakes.Flag.INT8]
    assert config.pool == ("workspace", 512 << 20)
    assert config.profiles[0].shapes["chip"] == ((1, 3, 150, 150), (4, 3, 150, 150), (32, 3, 150, 150))
    assert facts["flags"] == ["FP16", "INT8"]


def test_build_config_for_the_dla_fixes_the_batch_and_states_the_gpu_fallback():
    from edge_build.backends.tensorrt.builder import build_config

    net = network("8.5.2")
    config, facts = build_config(net.builder, "fp16", 256, dla_core=1, net=net, batch=(1, 8, 32))
    assert config.default_device_type == "dla" and config.DLA_core == 1
    assert trt_fakes.Flag.GPU_FALLBACK in config.flags and "GPU_FALLBACK" in facts["flags"]
    assert config.profiles[0].shapes["chip"] == ((8, 3, 150, 150),) * 3
    with pytest.raises(BuildError, match="has 2 DLA cores"):
        build_config(net.builder, "fp16", 256, dla_core=2, net=net)
    with pytest.raises(BuildError, match="FP16 or INT8 only"):
        build_config(net.builder, "fp32", 256, dla_core=0, net=net)


def test_build_config_with_a_calibrator_sets_a_one_shape_calibration_profile():
    from edge_build.backends.tensorrt.builder import build_config

    net = network("8.6.2")
    config, _ = build_config(net.builder, "int8", 256, calibrator=object(), net=net, calibration_batch=16)
    assert config.int8_calibrator is not None
    assert config.calibration_profile.shapes["chip"] == ((16, 3, 150, 150),) * 3
    qdq = network("8.6.2", layers=("conv", "q", "dq"))
    with pytest.raises(BuildError, match="takes no calibrator"):
        build_config(qdq.builder, "int8", 256, calibrator=object(), net=qdq)


# ------------------------------------------------------------- calibrator

def calibrator(batches, tmp_path, version="8.5.2.2"):
    from edge_build.backends.tensorrt.calibrator import CalibratorLogic

    cuda = trt_fakes.fake_pycuda()["pycuda.driver"]
    return CalibratorLogic(batches, (4, 3, 8, 8), tmp_path / "c.cache", version, cuda)


def test_calibrator_feeds_batches_then_ends(tmp_path):
    batches = [np.full((4, 3, 8, 8), i, np.float32) for i in range(3)]
    logic = calibrator(batches, tmp_path)
    pointers = [logic.get_batch(["chip"]) for _ in range(3)]
    assert all(p == [int(logic.device)] for p in pointers)
    assert np.all(logic.device.buffer[: 4 * 3 * 8 * 8 * 4].view(np.float32) == 2)
    assert logic.get_batch(["chip"]) is None and logic.batches == 3
    logic.raise_if_failed()


def test_calibrator_keeps_errors_tensorrt_would_swallow(tmp_path):
    logic = calibrator([np.zeros((3, 3, 8, 8), np.float32)], tmp_path)
    assert logic.get_batch(["chip"]) is None
    with pytest.raises(CalibrationError, match="needs \\(4, 3, 8, 8\\)"):
        logic.raise_if_failed()
    empty = calibrator([], tmp_path)
    assert empty.get_batch(["chip"]) is None
    with pytest.raises(CalibrationError, match="Likely causes"):
        empty.raise_if_failed()


def test_calibration_cache_is_reused_only_by_the_same_release(tmp_path):
    first = calibrator([], tmp_path)
    first.write_calibration_cache(memoryview(b"TRT-8502-EntropyCalibration2\nchip: 3c010a14\n"))
    again = calibrator([], tmp_path)
    assert again.read_calibration_cache().startswith(b"TRT-8502")
    again.raise_if_failed()  # ranges from the cache: no batches needed
    assert calibrator([], tmp_path, version="10.3.0").read_calibration_cache() is None


# ----------------------------------------------------------------- runtime

@pytest.fixture
def fake_stack(monkeypatch):
    def install(version, min_batch=1):
        engine = trt_fakes.Engine(version, max_batch=4, min_batch=min_batch)
        trt = trt_fakes.fake_tensorrt(version, engine)
        monkeypatch.setitem(sys.modules, "tensorrt", trt)
        for name, module in trt_fakes.fake_pycuda().items():
            monkeypatch.setitem(sys.modules, name, module)
        return trt, engine

    return install


def manifest(version):
    return {"backend": "tensorrt", "backend_version": version, "device": dict(ORIN, dla_core=None), "name": "stats",
            "inputs": [{"name": "image", "shape": [-1, 3, 8, 8]}], "outputs": [{"name": "stats", "shape": [-1, 2]}]}


@pytest.mark.parametrize("version, api", [("8.5.2.2", "v3"), ("8.6.2", "v3"), ("10.3.0", "v3")])
def test_engine_runs_batches_larger_than_its_profile(tmp_path, fake_stack, version, api):
    from edge.engines.tensorrt import TensorRTEngine

    trt, _ = fake_stack(version)
    plan = tmp_path / "m.engine"
    plan.write_bytes(b"plan")
    engine = TensorRTEngine(plan, manifest(version), device=dict(ORIN))
    x = np.random.default_rng(0).normal(size=(6, 3, 8, 8)).astype(np.float32)
    stats = engine.run(x)[0]
    assert stats.shape == (6, 2)
    assert np.allclose(stats[:, 0], x.reshape(6, -1).sum(1), atol=1e-4)
    assert np.allclose(stats[:, 1], x.reshape(6, -1).max(1))
    assert engine.context.calls == [api, api]  # 4 + 2
    engine.close()


def test_engine_checks_the_manifest_before_deserialising(tmp_path, fake_stack):
    from edge.engines.tensorrt import TensorRTEngine

    trt, _ = fake_stack("8.6.2")
    plan = tmp_path / "m.engine"
    plan.write_bytes(b"plan")
    with pytest.raises(ManifestMismatch, match="TensorRT 8.5.2.2"):
        TensorRTEngine(plan, manifest("8.5.2.2"), device=dict(ORIN))
    with pytest.raises(ManifestMismatch, match="compute 7.2"):
        TensorRTEngine(plan, manifest("8.6.2"), device={"gpu": "Xavier", "compute_capability": "7.2", "source": "pycuda"})
    assert trt.deserialised == []
    plan.write_bytes(b"garbage")
    with pytest.raises(EngineError, match="could not deserialise"):
        TensorRTEngine(plan, manifest("8.6.2"), device=dict(ORIN))


def test_a_fixed_batch_engine_pads_short_batches(tmp_path, fake_stack):
    from edge.engines.tensorrt import TensorRTEngine

    fake_stack("10.3.0", min_batch=4)  # a DLA engine: min = opt = max
    plan = tmp_path / "m.engine"
    plan.write_bytes(b"plan")
    engine = TensorRTEngine(plan, manifest("10.3.0"), device=dict(ORIN))
    x = np.arange(5 * 3 * 8 * 8, dtype=np.float32).reshape(5, 3, 8, 8)
    stats = engine.run(x)[0]
    assert stats.shape == (5, 2)
    assert np.allclose(stats[:, 1], x.reshape(5, -1).max(1))
    assert engine.context.calls == ["v3", "v3"]


def test_engine_refuses_inputs_outside_its_profile(tmp_path, fake_stack):
    from edge.engines.tensorrt import TensorRTEngine

    fake_stack("8.6.2")
    plan = tmp_path / "m.engine"
    plan.write_bytes(b"plan")
    engine = TensorRTEngine(plan, manifest("8.6.2"), device=dict(ORIN))
    with pytest.raises(EngineError, match="takes \\(-1, 3, 8, 8\\)"):
        engine.run(np.zeros((2, 3, 9, 8), np.float32))
    with pytest.raises(EngineError, match="empty"):
        engine.run(np.zeros((0, 3, 8, 8), np.float32))


def test_one_logger_for_every_engine_and_build_in_the_process(tmp_path, fake_stack):
    """TensorRT keeps the first logger it is given and warns about any other one."""
    from edge.engines.tensorrt import TensorRTEngine

    trt, _ = fake_stack("8.6.2")
    plan = tmp_path / "m.engine"
    plan.write_bytes(b"plan")
    first = TensorRTEngine(plan, manifest("8.6.2"), device=dict(ORIN))
    second = TensorRTEngine(plan, manifest("8.6.2"), device=dict(ORIN))
    assert len(trt.loggers) == 1 and len(trt.plugin_inits) == 1
    assert trt_compat.shared_logger(trt) is trt.loggers[0]
    first.close()
    second.close()


def test_chips_written_on_the_device_run_without_a_host_copy(tmp_path, fake_stack):
    """run_device: the CUDA aligner has filled the input buffer on the engine's stream."""
    from edge.engines.tensorrt import TensorRTEngine

    fake_stack("10.3.0")
    plan = tmp_path / "m.engine"
    plan.write_bytes(b"plan")
    engine = TensorRTEngine(plan, manifest("10.3.0"), device=dict(ORIN))
    binding = engine.device_input()
    x = np.random.default_rng(1).normal(size=(3, 3, 8, 8)).astype(np.float32)
    binding.device.buffer[: x.nbytes] = x.view(np.uint8).reshape(-1)  # what the kernel would have written
    copies_before = list(engine.cuda.copies)
    stats = engine.run_device(3)[0]
    assert np.allclose(stats[:, 0], x.reshape(3, -1).sum(1), atol=1e-4)
    assert engine.cuda.copies[len(copies_before):] == ["dtoh"]  # outputs only: no input upload
    assert engine.context.calls == ["v3"]
    with pytest.raises(EngineError, match="outside the engine's profile"):
        engine.run_device(5)
    engine.close()
