"""Benchmark: INT8 calibration choices for the embedding, judged on held-out faces only.

    python benchmarks/int8_choices.py --calibration ~/lfw-cal --gate-faces ~/lfw-held \
        [--methods percentile minmax entropy] [--reduce-range auto yes no] [--json choices.json]

The calibration chips are made once by the product's pipeline (as `edge-verify
build` makes them) and every recipe is quantized from the same exported FP32
graph, then compared with the PyTorch reference on the held-out gate faces: mean
and minimum cosine, mean and largest L2 distance (the build gate's figures). No
LFW pair is used, so a choice made here does not tune the reported accuracy.

``--reduce-range``: ``auto`` is what the build picks for this CPU (7-bit weights
on x86 without VNNI, 8-bit with); ``no``/``yes`` force 8-bit / 7-bit weights.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edge.engines.manifest import running_backend_version
from edge.engines.onnxrt import OnnxRuntimeEngine
from edge_build import contracts
from edge_build.gate import compare, engine_embed, torch_embed
from edge_build.onnx_export import export_onnx
from edge_build.quantize import quantize_int8, recipe_for
from edge_build.targets import load_parts
from edge_calibration.samples import pipeline_faces_from_folder
from edge_calibration.sets import calibration_set


def chips_of(folder: Path, limit: int | None = None) -> list[np.ndarray]:
    """Calibration batches (16 chips, the build's default) or, with ``limit``, held-out chips."""
    if limit is None:
        return list(calibration_set(folder, pipeline_faces_from_folder(), progress=True))
    chips = np.concatenate(list(pipeline_faces_from_folder()(folder)))
    return [chips[:limit]]


def recipes(methods: list[str], ranges: list[str]):
    for method in methods:
        automatic = recipe_for("onnxruntime", method)
        for choice in ranges:
            if choice == "auto":
                yield "auto", automatic
            else:
                yield choice, dataclasses.replace(automatic, reduce_range=choice == "yes")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calibration", type=Path, required=True)
    parser.add_argument("--gate-faces", type=Path, required=True)
    parser.add_argument("--methods", nargs="+", default=["percentile", "minmax", "entropy"])
    parser.add_argument("--reduce-range", nargs="+", default=["auto"], choices=["auto", "yes", "no"])
    parser.add_argument("--gate-count", type=int, default=300)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    part = next(p for p in load_parts("embedding") if p.name == "embedding")
    reference = torch_embed(part.module)
    batches = chips_of(args.calibration)
    held = chips_of(args.gate_faces, args.gate_count)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        fp32 = export_onnx(part.module, part.contract, Path(scratch) / "embedding.fp32.onnx")
        manifest = {"backend": "onnxruntime", "backend_version": running_backend_version("onnxruntime"),
                    "inputs": [contracts.input_spec(part.contract)], "outputs": contracts.output_specs(part.contract)}
        for label, recipe in recipes(args.methods, args.reduce_range):
            out = Path(scratch) / f"{recipe.method}-{label}.onnx"
            started = time.perf_counter()
            quantize_int8(fp32, out, iter(batches), recipe=recipe)
            engine = OnnxRuntimeEngine(out, manifest, threads=1)
            figures = compare(reference, engine_embed(engine), held)
            rows.append({"method": recipe.method, "reduce_range": recipe.reduce_range, "cpu": recipe.cpu,
                         "seconds": round(time.perf_counter() - started, 1), **figures})
            print(f"{recipe.method:>10} reduce_range={recipe.reduce_range!s:5}  mean cosine {figures['mean_cosine']:.5f} "
                  f"(min {figures['min_cosine']:.5f})  mean L2 {figures['mean_l2']:.4f} (max {figures['max_l2']:.4f})",
                  file=sys.stderr)
    print(json.dumps(rows, indent=2))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
