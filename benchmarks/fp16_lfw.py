"""Benchmark: LFW View 2 with the embedding network in FP16, before a Jetson exists.

    pip install onnxconverter-common        # the FP16 graph conversion; not a product dependency
    python benchmarks/fp16_lfw.py --lfw ../shared/datasets/lfw [--json fp16.json] [--limit N]

The FP32 embedding engine ($EDGE_VERIFY_HOME/models/engines/embedding.fp32.onnx) is
converted to an FP16 ONNX graph (every weight and activation float16; inputs and
outputs stay float32, as the TensorRT engine's do) and run on ONNX Runtime's CPU
provider. Where the CPU provider has no float16 kernel, ONNX Runtime casts to
float32 around the operator, so every tensor between operators is rounded to
float16 (as on the GPU) while the sums inside one operator are float32, as in
TensorRT's FP16 convolutions, which accumulate in float32.

Each LFW image is detected and aligned once by the product's pipeline; its chip
(and the mirror image) is embedded by both the FP32 and the FP16 engine, and both
sets of embeddings are scored by the same LFW protocol code as `edge-verify bench
lfw` (edge/bench/lfw.py): the difference is the precision's doing alone.
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
from onnxconverter_common import float16

from edge.bench import lfw, runner
from edge.engines import load_engine
from edge.engines.onnxrt import OnnxRuntimeEngine
from edge.exc import ImageError
from edge.models import registry
from edge.pipeline import FacePipeline, primary_face_index
from edge.vision.image import load_image


def fp16_engine(fp32_path: Path, out_path: Path, threads: int) -> OnnxRuntimeEngine:
    """An FP16 copy of the FP32 engine at ``out_path``, loaded with the FP32 engine's contract."""
    with warnings.catch_warnings():
        # it warns for every weight below float16's range that it rounds to 1e-7; there are hundreds
        warnings.simplefilter("ignore", UserWarning)
        model = float16.convert_float_to_float16(onnx.load(fp32_path), keep_io_types=True)
    onnx.save(model, out_path)
    manifest = {**load_engine(fp32_path).manifest, "precision": "fp16"}
    return OnnxRuntimeEngine(out_path, manifest, threads=threads)


def chips_of(pipeline: FacePipeline, path: Path) -> np.ndarray | None:
    """The primary face's aligned chip, as `bench lfw` finds it; None when no face or an unreadable file."""
    try:
        image = load_image(path)
    except ImageError:
        return None
    faces = pipeline.detect(image)
    if not faces:
        return None
    return pipeline.align(image, [faces[primary_face_index(faces, image.shape)]])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", type=Path, required=True, help="LFW folder with pairs.txt and images/")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--fp16-out", type=Path, default=Path("embedding.fp16.onnx"),
                        help="where to write the FP16 graph (default ./embedding.fp16.onnx)")
    parser.add_argument("--limit", type=int, help="score only the first N pairs of each fold half (a quick check)")
    args = parser.parse_args(argv)

    fp32_path = registry.require_engine(registry.EMBEDDING, "fp32", "onnxruntime")
    fp32 = FacePipeline.load(threads=args.threads)
    fp16 = FacePipeline(fp32.detector, fp16_engine(fp32_path, args.fp16_out, args.threads), flip=fp32.flip)
    pairs = lfw.read_pairs(args.lfw / "pairs.txt")
    if args.limit:
        pairs = lfw.fixed_subset(pairs, args.limit)
    names = lfw.unique_images(pairs)
    embeddings: dict[str, dict] = {"fp32": {}, "fp16": {}}
    worst = 0.0
    for name in runner.progress(names, len(names), "LFW fp32 + fp16"):
        chip = chips_of(fp32, args.lfw / "images" / name)
        for label, pipeline in (("fp32", fp32), ("fp16", fp16)):
            embeddings[label][name] = None if chip is None else pipeline.embed(chip)[0]
        if chip is not None:
            worst = max(worst, float(np.linalg.norm(embeddings["fp32"][name] - embeddings["fp16"][name])))
    results = {}
    for label, found in embeddings.items():
        scored = lfw.score(pairs, lfw.pair_distances(pairs, found), fp32.threshold)
        results[label] = {key: scored[key] for key in ("accuracy_mean", "accuracy_std", "accuracy_at_threshold", "auc",
                                                       "tar_at_far_1e-3", "pairs")}
    results["images"] = len(names)
    results["no_face"] = sum(value is None for value in embeddings["fp32"].values())
    results["max_embedding_distance_fp32_fp16"] = worst
    for label in ("fp32", "fp16"):
        row = results[label]
        print(f"{label}: 10-fold {row['accuracy_mean'] * 100:.2f} % ± {row['accuracy_std'] * 100:.2f}, at threshold "
              f"{row['accuracy_at_threshold'] * 100:.2f} %, AUC {row['auc']:.5f}, TAR@FAR1e-3 {row['tar_at_far_1e-3'] * 100:.2f} %")
    print(f"largest FP32-FP16 embedding distance: {worst:.4f} (threshold {fp32.threshold})")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
