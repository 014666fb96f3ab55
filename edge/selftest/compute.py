"""Compute checks: every engine on the device loads and its manifest matches this
device and runtime; the embedding engine is fast enough; on a GPU, the CUDA
preprocessing kernels (precompiled next to the engines: no compiler involved) give
what the CPU aligner gives, dlib's pyramid for a large face included.

Every engine file the models registry names that exists is checked, not only
the ones the daemon uses: an engine left over from another device or JetPack
release is what a later config change would pick up.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

from edge.daemon.parts import liveness_status
from edge.engines import load_engine
from edge.exc import EngineError
from edge.models import registry
from edge.selftest.runner import Result
from edge.vision import align, cuda_preprocess
from edge.vision.aligner import CpuAligner

ROLES = (registry.EMBEDDING, *registry.DETECTOR_NETS)
LATENCY_RUNS = 5
KERNEL_TOLERANCE = 1e-3  # the same limit the kernel's own tests hold it to


def required_engines(settings) -> list[tuple[Path, str, str]]:
    """(path, precision, backend) of the engines the daemon loads: its embedding engine and the
    FP32 ONNX Runtime detector nets (precision and backend None for a configured engine file)."""
    daemon = settings.daemon
    engines = [(settings.embedding_engine(), None, None)] if daemon["engine.path"] else \
        [(settings.embedding_engine(), daemon["engine.precision"], daemon["engine.backend"])]
    return engines + [(registry.engine_path(name, "fp32", "onnxruntime"), "fp32", "onnxruntime")
                      for name in registry.DETECTOR_NETS]


def other_engines(skip) -> list[Path]:
    """Every other engine file the registry names that exists on this device."""
    return [path for role in ROLES for backend in registry.BACKENDS for precision in registry.PRECISIONS
            if (path := registry.engine_path(role, precision, backend)).exists() and path not in skip]


def describe_manifest(engine) -> str:
    manifest = engine.manifest
    text = (f"{manifest['backend']} {manifest['backend_version']} engine, {manifest['precision']}, "
            f"sha256 {manifest['engine_sha256'][:12]}… matches")
    device = manifest.get("device")
    if device:
        text += f", built for {device.get('gpu')} (compute {device.get('compute_capability')})"
    return text


class ComputeProbe:
    def __init__(self, context):
        self.settings = context.settings
        self.loaded: dict[Path, object] = {}

    def load_required(self, path: Path, role: str, precision: str | None, backend: str | None) -> Result:
        if precision is not None and not path.exists():
            registry.require_engine(role, precision, backend)  # raises, saying which command makes it
        result = self.load(path)
        result.detail = f"{result.detail} (used by the daemon)"
        return result

    def load(self, path: Path) -> Result:
        # A ManifestMismatch or EngineError becomes a FAIL carrying its message (what differs, what to do).
        engine = load_engine(path, threads=self.settings.daemon["engine.threads"])
        self.loaded[path] = engine
        return Result.passed(describe_manifest(engine))

    def latency(self, path: Path) -> Result:
        engine = self.loaded[path]
        chip = contract_input(engine.manifest)
        engine.run(chip)  # the first run allocates and tunes; not what a face costs
        times = []
        for _ in range(LATENCY_RUNS):
            started = time.perf_counter()
            engine.run(chip)
            times.append((time.perf_counter() - started) * 1e3)
        median = statistics.median(times)
        budget = self.settings.latency_budget_ms
        text = f"{median:.1f} ms per face chip (median of {LATENCY_RUNS}, {path.name}), budget {budget:g} ms"
        if median > budget:
            return Result.failed(f"{text}: too slow. See system.temperature and system.throttling, and `top` for "
                                 "another busy process; on a Jetson select the full power mode (sudo nvpmodel -m 0; "
                                 "sudo jetson_clocks); or build a faster engine (edge-verify build --precision fp16)")
        return Result.passed(text)


def contract_input(manifest: dict) -> np.ndarray:
    """One input of the shape and type the manifest states, batch 1 where the batch is dynamic."""
    spec = manifest["inputs"][0]
    shape = [1 if size == -1 else int(size) for size in spec["shape"]]
    if any(size <= 0 for size in shape):
        raise EngineError(f"manifest of {manifest['name']} states input shape {spec['shape']}; "
                          "cannot make a test input")
    return np.random.default_rng(0).normal(size=shape).astype(spec.get("dtype", "float32"))


def gpu_check(device) -> Result:
    if device is None:
        return Result.skipped("no CUDA GPU on this machine (CPU-only): the GPU checks do not apply")
    return Result.passed(f"{device['gpu']}, compute capability {device['compute_capability']} "
                         f"(from {device['source']})")


def synthetic_frame(height: int = 480, width: int = 640) -> np.ndarray:
    """A BGR frame with smooth shading and sharp edges, so both interpolation and edges are compared."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    frame = np.empty((height, width, 3), dtype=np.float64)
    frame[..., 0] = 128 + 100 * np.sin(x / 23.0) * np.cos(y / 31.0)
    frame[..., 1] = (x * 255.0 / width + 60 * ((x // 40 + y // 40) % 2)) % 256
    frame[..., 2] = 255.0 * y / height
    return np.clip(frame, 0, 255).astype(np.uint8)


def sample_matrices(size: int, padding: float) -> np.ndarray:
    """Chip matrices of four faces: upright, tilted, small and partly outside the frame, and
    one large enough for dlib's anti-alias pyramid (a face close to the camera)."""
    base = align.template_points(align.MTCNN_TEMPLATE, 1.0, 0.0)  # unit square face
    matrices = []
    for centre, side, angle in (((320, 240), 160, 0.0), ((200, 180), 110, 0.35), ((600, 60), 70, -0.2),
                                ((330, 250), 280, 0.1)):
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        points = (base - 0.5) * side @ rotation.T + np.asarray(centre, dtype=np.float64)
        matrices.append(align.chip_matrix(points, align.MTCNN_TEMPLATE, size, padding))
    return np.stack(matrices)


def cpu_chip(rgb: np.ndarray, matrix: np.ndarray, size: int, mean, std) -> np.ndarray:
    """The CPU aligner's chip for one matrix: dlib's pyramid, then the reference sampling."""
    source, level_matrix = align.pyramid_source(rgb, matrix, size)
    if source.shape[0] < 2 or source.shape[1] < 2:
        return np.array(CpuAligner(size, 0.25, mean, std).black())
    return align.warp_reference(source, level_matrix, size, mean, std)


def cuda_preprocess_check(device, manifest: dict | None, backend: str, kernel_image=None) -> Result:
    if device is None:
        return Result.skipped("no CUDA GPU on this machine (CPU-only): the GPU checks do not apply")
    if manifest is None:
        return Result.skipped("no embedding engine manifest to take the preprocessing from (see compute.engine.*)")
    pre = manifest["preprocess"]
    size, padding = int(pre["size"][0]), float(pre["chip_padding"])
    try:
        # The kernels are precompiled at build time: nothing here needs nvcc.
        preprocessor = cuda_preprocess.CudaPreprocessor(size, pre["mean"], pre["std"], bgr=True, kernel_image=kernel_image,
                                        capability=device.get("compute_capability"))
    except EngineError as error:
        if backend == "tensorrt":  # the configured GPU path needs it
            raise
        return Result.skipped(f"the GPU kernel cannot run here ({error}); the {backend} engine does not need it")
    frame = synthetic_frame()
    matrices = sample_matrices(size, padding)
    got = preprocessor.run(frame, matrices)
    rgb = np.ascontiguousarray(frame[..., ::-1])
    expected = np.stack([cpu_chip(rgb, matrix, size, pre["mean"], pre["std"]) for matrix in matrices])
    worst = float(np.abs(got - expected).max())
    text = (f"GPU kernel vs CPU reference: max difference {worst:.1e} over {len(matrices)} faces "
            f"(limit {KERNEL_TOLERANCE:g})")
    if not worst <= KERNEL_TOLERANCE:
        return Result.failed(f"{text}: the GPU gives wrong face chips; reinstall pycuda against this JetPack's CUDA "
                             "and rerun; until then run the CPU preprocessing path")
    return Result.passed(text)


def liveness_check(daemon_settings) -> Result:
    """Which liveness cues the daemon will run, with the figures they were validated with."""
    status = liveness_status(daemon_settings)
    if status["enabled"]:
        return Result.passed(f"cues {', '.join(status['cues'])} (window {status['window']} frames): "
                             + " | ".join(status["lines"]))
    if status["mode"] == "off" or status.get("daemon_starts"):
        # the daemon runs like this (it was configured so): not a fault of this kiosk, but said loudly
        return Result.skipped(f"WARNING {status['warning']}")
    return Result.failed(f"{status['warning']}; the daemon refuses to start ([decision] liveness = "
                         f"\"{status['mode']}\" or cues listed in [liveness] cues)")


def run(context, step) -> None:
    settings = context.settings
    probe = ComputeProbe(context)
    required = required_engines(settings)
    for path, precision, backend in required:
        role = path.name.split(".")[0]
        step(f"engine.{path.name}", lambda path=path, role=role, precision=precision, backend=backend:
             probe.load_required(path, role, precision, backend))
    for path in other_engines({path for path, _, _ in required}):
        step(f"engine.{path.name}", lambda path=path: probe.load(path))
    daemon_engine = required[0][0]
    if daemon_engine in probe.loaded:
        step("latency", lambda: probe.latency(daemon_engine))
    else:
        step.skip("latency", f"the embedding engine did not load (see compute.engine.{daemon_engine.name})")
    device = context.gpu()
    step("gpu", lambda: gpu_check(device))
    manifest = probe.loaded[daemon_engine].manifest if daemon_engine in probe.loaded else None
    backend = manifest["backend"] if manifest else settings.daemon["engine.backend"]
    step("cuda_preprocess", lambda: cuda_preprocess_check(device, manifest, backend, daemon_engine.parent / cuda_preprocess.KERNEL_IMAGE))
    step("liveness", lambda: liveness_check(settings.daemon))
