"""Stage: the engine's sidecar manifest (schema in edge/engines/manifest.py).

Everything the runtime needs to refuse a wrong engine and to feed a right one:
what it was built from (source hash), what it takes and gives (from the
contract), how it was built (precision asked and got, calibration set, backend
version, GPU), and how accurate it was found to be (the gate's figures).
"""
from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path

from edge.engines.manifest import SCHEMA, file_sha256, read_manifest, write_manifest
from edge.exc import BuildError
from edge_build import contracts
from edge_build.stagelog import stage


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def manifest_for(engine_path: str | os.PathLike, *, name: str, contract: dict, source_sha256: str, precision: str,
                 requested_precision: str, backend: str, backend_version: str, fallback: str | None = None,
                 calibration: dict | None = None, device: dict | None = None, accuracy_gate: dict | None = None,
                 build_seconds: float = 0.0, quantization: dict | None = None, stages: list | None = None,
                 extra: dict | None = None) -> dict:
    if backend == "tensorrt" and not device:
        raise BuildError("a TensorRT manifest must name the GPU it was built on")
    if precision == "int8" and calibration is None:
        raise BuildError("an INT8 manifest must record its calibration set")
    manifest = {
        "schema": SCHEMA,
        "name": name,
        "model": contracts.require(contract, "model"),
        "source_sha256": source_sha256,
        "engine_sha256": file_sha256(engine_path),
        "inputs": [contracts.input_spec(contract)],
        "outputs": contracts.output_specs(contract),
        "preprocess": contracts.preprocess(contract),
        "precision": precision,
        "requested_precision": requested_precision,
        "fallback": fallback,
        "calibration": calibration,
        "quantization": quantization,
        "backend": backend,
        "backend_version": backend_version,
        "device": device,
        "threshold": contract.get("threshold"),
        "metric": contract.get("metric"),
        "accuracy_gate": accuracy_gate,
        "built_at": utc_now(),
        "build_seconds": round(float(build_seconds), 3),
        "stages": stages or [],
    }
    # The rest of the contract (threshold provenance, the impostor-distance tail the
    # gallery reads, ...) is copied to the top level, never over a schema field.
    notes = contracts.model_notes(contract)
    clashing = {key: notes.pop(key) for key in list(notes) if key in manifest}
    manifest.update(notes)
    if clashing:
        manifest["contract_notes"] = clashing
    manifest.update(extra or {})
    return manifest


@stage("manifest")
def write_engine_manifest(engine_path: str | os.PathLike, **fields) -> Path:
    """Write ``engine_path``.json (fields as manifest_for) and read it back to prove it loads."""
    path = write_manifest(engine_path, manifest_for(engine_path, **fields))
    read_manifest(engine_path)
    return Path(path)
