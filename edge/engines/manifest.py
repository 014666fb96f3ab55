"""Sidecar manifests: the contract an engine file was built for.

Every engine file ``X`` has a JSON sidecar ``X.json``. The runtime reads it before
loading the engine and refuses to run when anything does not match (the engine
file's hash, the backend version, the GPU, the input contract), because a
mismatched engine gives wrong embeddings without failing, and wrong embeddings at
a door mean either lockouts or strangers let in.

Fields (schema 1):
    schema              1
    name                role of the engine: "embedding", "detector-pnet", ...
    model               architecture id: "dlib_resnet_v1", "mtcnn_pnet", ...
    source_sha256       sha256 of the checkpoint the engine was built from
    engine_sha256       sha256 of the engine file itself
    inputs              [{name, shape, dtype, layout}] (-1 = dynamic axis)
    outputs             [{name, shape, dtype}]
    preprocess          {size: [w, h], colour: "RGB", mean: [3], std: [3], ...}
    precision           "fp32" | "fp16" | "int8"
    requested_precision what the user asked for (differs only with --allow-fallback)
    fallback            null, or a sentence saying what was downgraded and why
    calibration         null, or {sha256, images, faces, faces_used, batch_size, dropped, method}
    quantization        null, or the INT8 recipe {format, activations, weights, per_channel, ...}
    backend             "onnxruntime" | "tensorrt"
    backend_version     e.g. "1.32.0" or "10.3.0"
    device              null for CPU engines; {gpu, compute_capability, source, dla_core,
                        gpu_fallback} for TensorRT (source: which probe named the GPU)
    threshold           verification threshold (embedding engines), see edge.verify.api
    metric              "euclidean" for the dlib model
    accuracy_gate       null, {skipped, reason}, or the gate's figures and limits
    built_at            ISO-8601 UTC
    build_seconds       float
    stages              [{name, seconds, size_bytes, output}] as the build logged them
    (other keys)        the rest of the model's contract, copied as is (e.g. impostor_tail,
                        threshold_source); contract_notes holds any that clash with a field above
    tensorrt            TensorRT engines only: flags, workspace, optimisation profiles, INT8 path

check_runtime(manifest) applies the version policy documented below.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from edge.engines.cpu import cpu_kind, int8_cpu_problem
from edge.engines.device import capability_text, describe_device
from edge.engines.trt_compat import load_tensorrt, same_version
from edge.exc import EngineError, ManifestMismatch

SCHEMA = 1
REQUIRED = ("schema", "name", "model", "engine_sha256", "inputs", "outputs", "precision", "backend", "backend_version")


def sidecar_path(engine_path: str | os.PathLike) -> Path:
    return Path(f"{os.fspath(engine_path)}.json")


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(engine_path: str | os.PathLike, manifest: dict) -> Path:
    """Write the sidecar atomically (a crash mid-write must not leave half a manifest)."""
    target = sidecar_path(engine_path)
    temporary = target.with_name(target.name + ".tmp")
    temporary.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    os.replace(temporary, target)
    return target


def read_manifest(engine_path: str | os.PathLike) -> dict:
    path = sidecar_path(engine_path)
    if not Path(engine_path).exists():
        raise EngineError(f"engine file {engine_path} does not exist (run `edge-verify models fetch` or `edge-verify build`)")
    if not path.exists():
        raise ManifestMismatch(f"engine {engine_path} has no manifest {path.name}; rebuild it with `edge-verify build`")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ManifestMismatch(f"manifest {path} is unreadable ({error}); rebuild the engine") from error
    missing = [key for key in REQUIRED if key not in manifest]
    if missing:
        raise ManifestMismatch(f"manifest {path} lacks {', '.join(missing)}; rebuild the engine")
    if manifest["schema"] != SCHEMA:
        raise ManifestMismatch(f"manifest {path} has schema {manifest['schema']}, this runtime reads {SCHEMA}")
    return manifest


def check_file_hash(engine_path: str | os.PathLike, manifest: dict) -> None:
    actual = file_sha256(engine_path)
    if actual != manifest["engine_sha256"]:
        raise ManifestMismatch(
            f"engine {engine_path} does not match its manifest (sha256 {actual[:12]}… != {manifest['engine_sha256'][:12]}…): "
            "the file was replaced or corrupted; rebuild it with `edge-verify build`"
        )


def check_input_contract(manifest: dict, expected: dict) -> None:
    """Refuse an engine whose input contract is not the one the caller will feed it.

    ``expected`` holds any of: name, size, colour, mean, std. The contract is read
    from the manifest, never guessed from tensor shapes.
    """
    preprocess = manifest.get("preprocess") or {}
    actual = {"name": manifest["name"], **preprocess}
    for key, value in expected.items():
        if key not in actual:
            raise ManifestMismatch(f"engine {manifest['name']} manifest does not state its {key}")
        have = actual[key]
        if isinstance(value, (list, tuple)):
            same = len(have) == len(value) and all(abs(float(a) - float(b)) < 1e-6 for a, b in zip(have, value))
        else:
            same = have == value
        if not same:
            raise ManifestMismatch(f"engine {manifest['name']} expects {key}={have}, this pipeline feeds {key}={value}")


# ------------------------------------------------------------ runtime checks
#
# ONNX Runtime policy. An ONNX file itself is portable (its opsets are versioned),
# but two things are not: an older runtime may lack an operator version or a
# QDQ kernel the build relied on, and an INT8 engine's accuracy gate was measured
# with the build's kernels. So:
#   * a different major version is a mismatch (ONNX Runtime's compatibility
#     promise is within a major);
#   * an older minor than the build's is a mismatch (it may not know the opsets
#     or the quantized kernels the build used);
#   * a newer minor of the same major is accepted: ONNX Runtime keeps running
#     models made for earlier releases. The gate's figures were still measured on
#     the build's version, which the manifest keeps for anyone re-checking.
# TensorRT policy: engines are not portable across TensorRT releases or GPUs, so
# the version must be equal to major.minor.patch, and the GPU's compute
# capability (and its name, when both were read the same way) must be equal.


def running_backend_version(backend: str) -> str:
    if backend == "onnxruntime":
        import onnxruntime

        return onnxruntime.__version__
    if backend == "tensorrt":
        return load_tensorrt().__version__
    raise EngineError(f"unknown backend {backend!r}")


def version_pair(text: str) -> tuple[int, int]:
    parts = str(text).split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        raise ManifestMismatch(f"cannot read version {text!r}") from None


def check_onnxruntime_version(built: str, running: str) -> None:
    have, want = version_pair(running), version_pair(built)
    if have[0] != want[0] or have < want:
        raise ManifestMismatch(
            f"engine was built with onnxruntime {built}, this device runs {running}: "
            f"use onnxruntime {want[0]}.{want[1]} or a newer {want[0]}.x, or rebuild the engine here"
        )


def check_tensorrt_version(built: str, running: str) -> None:
    if not same_version(built, running):
        raise ManifestMismatch(
            f"engine was built with TensorRT {built}, this device runs TensorRT {running}: "
            "TensorRT engines only load on the exact release that built them; rebuild with `edge-verify build --backend tensorrt`"
        )


def check_gpu(built: dict | None, running: dict | None) -> None:
    """The engine's GPU (from the manifest) against this device's (describe_device())."""
    if not built:
        raise ManifestMismatch("TensorRT engine manifest does not name the GPU it was built for; rebuild the engine")
    if not running:
        raise ManifestMismatch(f"engine was built for GPU {built.get('gpu')} but this machine has no CUDA GPU")
    if capability_text(built["compute_capability"]) != capability_text(running["compute_capability"]):
        raise ManifestMismatch(
            f"engine was built for {built.get('gpu')} (compute {built['compute_capability']}), this device is "
            f"{running.get('gpu')} (compute {running['compute_capability']}); rebuild the engine on this device"
        )
    same_source = built.get("source") and built.get("source") == running.get("source")
    if same_source and built.get("gpu") != running.get("gpu"):
        raise ManifestMismatch(
            f"engine was built on GPU {built.get('gpu')!r}, this device is {running.get('gpu')!r}; rebuild the engine on this device"
        )


def check_runtime(manifest: dict, running_version: str | None = None, device: dict | None | str = "detect",
                  cpu: str | None = None) -> None:
    """Refuse an engine this runtime or this device cannot run as it was built.

    ``running_version``, ``device`` and ``cpu`` (edge.engines.cpu.cpu_kind) default to
    what this machine has; tests pass fakes. Raises ManifestMismatch with what differs
    and what to do.
    """
    backend = manifest["backend"]
    if running_version is None:
        running_version = running_backend_version(backend)
    if backend == "onnxruntime":
        check_onnxruntime_version(manifest["backend_version"], running_version)
        problem = int8_cpu_problem(manifest.get("quantization"), cpu or cpu_kind())
        if problem:
            raise ManifestMismatch(problem)
        return
    if backend == "tensorrt":
        check_tensorrt_version(manifest["backend_version"], running_version)
        if device == "detect":
            device = describe_device()
        check_gpu(manifest.get("device"), device)
        return
    raise ManifestMismatch(f"manifest names unknown backend {backend!r}")
