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
    calibration         null, or {sha256, images, faces, method}
    backend             "onnxruntime" | "tensorrt"
    backend_version     e.g. "1.32.0" or "10.3.0"
    device              null for CPU engines; {gpu, compute_capability, dla_core} for TensorRT
    threshold           verification threshold (embedding engines), see edge.verify.api
    metric              "euclidean" for the dlib model
    accuracy_gate       null, or the gate's figures and limits
    built_at            ISO-8601 UTC
    build_seconds       float
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

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
