"""`edge-verify build`: engines from the PyTorch models, with an accuracy gate."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge.engines.device import torch_install_hint
from edge.exc import ConfigError, ModelError

HELP = """\
Build inference engines from the PyTorch models: export to ONNX (opset 17, dynamic batch),
convert to the precision and backend asked for, check accuracy against PyTorch, and install
the engine with a manifest (JSON sidecar) the runtime checks before loading it.

  precision  fp32   exact; the default
             int8   fastest on a CPU (about 3x here) and on Jetson Xavier/Orin; needs --calibration,
                    a folder of face photos (300+ faces; see calibration/README.md)
             fp16   TensorRT only (ONNX Runtime's CPU provider has no fast FP16)
  backend    onnxruntime  the CPU path; runs anywhere
             tensorrt     Jetson GPU (JetPack 5.1/6.x); build on the device that will run it

Accuracy gate: held-out faces go through the new engine and through PyTorch; the build fails
when the mean cosine similarity is below --gate-cosine, or (with an LFW scorer) the LFW accuracy
drops more than --gate-lfw-drop points. Held-out faces come from --gate-faces DIR, or are 10%
of the --calibration folder that calibration then never sees.

A precision the device cannot run fast (fp16 on ONNX Runtime, int8 on a GPU without fast INT8
such as the Jetson Nano) is refused unless --allow-fallback, which builds the best precision
available and records the downgrade in the manifest.

Examples:
  edge-verify build --model embedding --precision int8 --calibration ~/faces
  edge-verify build --model all --precision fp16 --backend tensorrt --gate-faces ~/held-out
  edge-verify build --model embedding --precision int8 --backend tensorrt --dla-core 0 --calibration ~/faces
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser("build", help="build fp32/fp16/int8 engines (ONNX Runtime or TensorRT)", description=HELP,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=("embedding", "detector", "attributes", "all"), default="embedding",
                        help="which model to build (all = embedding + detector, + attributes once trained)")
    parser.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp32", help="engine precision (default fp32)")
    parser.add_argument("--backend", choices=("onnxruntime", "tensorrt"), default="onnxruntime", help="default onnxruntime")
    parser.add_argument("--checkpoint", type=Path, help="PyTorch checkpoint to build from (default: the model's in the models folder)")
    calibration = parser.add_argument_group("INT8 calibration")
    calibration.add_argument("--calibration", type=Path, metavar="DIR", help="folder of face photos (jpg/jpeg/png/bmp, recursive)")
    calibration.add_argument("--calibration-method", choices=("minmax", "entropy", "percentile"), default="percentile",
                             help="how activation ranges are chosen (default percentile: clipping the rare extreme "
                                  "activations kept the dlib embedding closest to FP32 here, see calibration/README.md)")
    calibration.add_argument("--int8-method", choices=("explicit", "calibrator"),
                             help="TensorRT INT8: Q/DQ ONNX (default) or IInt8EntropyCalibrator2 (default with --dla-core)")
    calibration.add_argument("--batch", type=int, default=16, help="calibration batch size (default 16)")
    calibration.add_argument("--min-faces", type=int, default=300, help="warn below this many calibration faces (default 300)")
    gate = parser.add_argument_group("accuracy gate")
    gate.add_argument("--gate-faces", type=Path, metavar="DIR", help="held-out face photos, never in the calibration set")
    gate.add_argument("--gate-cosine", type=float, default=0.99, help="minimum mean cosine to PyTorch (default 0.99)")
    gate.add_argument("--gate-lfw-drop", type=float, default=0.3, help="maximum LFW accuracy drop in points (default 0.3)")
    gate.add_argument("--lfw", type=Path, metavar="DIR",
                      help="LFW folder (images/, pairs.txt): adds the LFW accuracy-drop check on a fixed subset of pairs")
    gate.add_argument("--skip-gate", action="store_true", help="build without the gate (recorded in the manifest)")
    device = parser.add_argument_group("device")
    device.add_argument("--allow-fallback", action="store_true", help="build the best supported precision instead of failing")
    device.add_argument("--workspace", type=int, default=1024, metavar="MB", help="TensorRT builder workspace (default 1024 MB)")
    device.add_argument("--dla-core", type=int, metavar="N", help="build for DLA core N (AGX Orin, Orin NX); fixed batch")
    device.add_argument("--no-gpu-fallback", dest="gpu_fallback", action="store_false",
                        help="with --dla-core: fail instead of running DLA-unsupported layers on the GPU")
    parser.add_argument("--out", type=Path, metavar="DIR", help="engines folder (default $EDGE_VERIFY_HOME/models/engines)")
    parser.set_defaults(func=run_build)


def options_from(args):
    from edge_build.gate import GateLimits
    from edge_build.recipe import BuildOptions

    if args.batch < 1:
        raise ConfigError("--batch must be at least 1")
    if args.dla_core is not None and args.backend != "tensorrt":
        raise ConfigError("--dla-core needs --backend tensorrt")
    return BuildOptions(
        precision=args.precision, backend=args.backend, calibration=args.calibration, gate_faces=args.gate_faces,
        skip_gate=args.skip_gate, allow_fallback=args.allow_fallback, workspace_mb=args.workspace, dla_core=args.dla_core,
        gpu_fallback=args.gpu_fallback, out_dir=args.out, limits=GateLimits(args.gate_cosine, args.gate_lfw_drop),
        method=args.calibration_method, int8_method=args.int8_method, batch_size=args.batch, min_faces=args.min_faces,
        progress=sys.stderr.isatty(),
    )


def run_build(args) -> int:
    try:
        from edge_build.recipe import Injected, build_part
        from edge_build.targets import load_parts, models_for
    except ImportError as error:
        raise ModelError(f"building engines needs PyTorch ({error.name} is missing): {torch_install_hint()}") from error
    options = options_from(args)
    if options.backend == "onnxruntime":
        from edge_build.onnxruntime_build import resolve_precision

        resolve_precision(options.precision, options.allow_fallback)  # refuse before any heavy work
    models, notes = models_for(args.model)
    for note in notes:
        print(note, file=sys.stderr)
    if args.checkpoint and len(models) > 1:
        raise ConfigError("--checkpoint names one model's weights; use it with --model embedding|detector|attributes")
    injected = Injected(lfw_scorer=lfw_scorer(args.lfw) if args.lfw else None)
    results = []
    for model in models:
        for part in load_parts(model, args.checkpoint):
            results.append(build_part(part, options, injected, echo=lambda line: print(line, file=sys.stderr)))
    for result in results:
        gate = result["accuracy_gate"] or {}
        figure = f"mean cosine {gate['mean_cosine']:.4f}" if "mean_cosine" in gate else "gate skipped"
        note = f"  [{result['fallback']}]" if result["fallback"] else ""
        print(f"{result['engine']}: {result['precision']}, {figure}{note}")
    return 0


def lfw_scorer(lfw: Path):
    """The gate's LFW check on a fixed subset of View 2 pairs (edge.bench.lfw)."""
    from edge.bench.lfw import lfw_subset_scorer

    return lfw_subset_scorer(lfw)
