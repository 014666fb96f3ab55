"""What `edge-verify build`, `train siamese|attributes|liveness` and `models fetch` do.

Their command lines (options and --help) are defined in edge/cli/, so that a
kiosk without the build extra still lists them; the handlers here are
registered as entry points of the group ``edge_verify.build`` (pyproject.toml)
and loaded by edge.extras only when one of these commands runs. Each takes the
parsed arguments and returns an exit code; errors are EdgeVerifyErrors, which
the command line prints as one line.
"""
from __future__ import annotations

import sys
from pathlib import Path

from edge import paths
from edge.bench.lfw import lfw_subset_scorer
from edge.exc import ConfigError, DatasetError
from edge.liveness import motion
from edge_build.backends.onnxruntime.backend import resolve_precision
from edge_build.gate import GateLimits
from edge_build.recipe import BuildOptions, Injected, build_part
from edge_build.starter import fetch_and_convert
from edge_build.targets import load_parts, models_for
from edge_build.training import attributes, liveness, siamese


def to_stderr(line: str) -> None:
    print(line, file=sys.stderr)


# -- edge-verify build --------------------------------------------------------------------------

def build_options(args) -> BuildOptions:
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
    options = build_options(args)
    if options.backend == "onnxruntime":
        resolve_precision(options.precision, options.allow_fallback)  # refuse before any heavy work
    models, notes = models_for(args.model)
    for note in notes:
        to_stderr(note)
    if args.checkpoint and len(models) > 1:
        raise ConfigError("--checkpoint names one model's weights; use it with --model embedding|detector|attributes")
    # The gate's LFW check runs on a fixed subset of View 2 pairs (edge.bench.lfw).
    injected = Injected(lfw_scorer=lfw_subset_scorer(args.lfw) if args.lfw else None)
    results = []
    for model in models:
        for part in load_parts(model, args.checkpoint):
            results.append(build_part(part, options, injected, echo=to_stderr))
    for result in results:
        gate = result["accuracy_gate"] or {}
        figure = f"mean cosine {gate['mean_cosine']:.4f}" if "mean_cosine" in gate else "gate skipped"
        note = f"  [{result['fallback']}]" if result["fallback"] else ""
        print(f"{result['engine']}: {result['precision']}, {figure}{note}")
    return 0


# -- edge-verify train --------------------------------------------------------------------------

def check_data(folder: Path) -> None:
    if not folder.is_dir():
        raise DatasetError(f"--data {folder}: no such folder")


def run_siamese(args) -> int:
    check_data(args.data)
    if args.net_input is not None and args.arch != "mobilefacenet":
        raise ConfigError(f"--net-input applies to mobilefacenet only, not {args.arch}")
    if args.width is not None and args.arch == "dlib-finetune":
        raise ConfigError("--width does not apply to dlib-finetune (the imported network has a fixed size)")
    out = args.out or paths.home() / "training" / f"siamese-{args.arch}-{args.loss}"
    config = siamese.TrainConfig(arch=args.arch, loss=args.loss, epochs=args.epochs, batch=args.batch, lr=args.lr,
                                 seed=args.seed, threads=args.threads, device=args.device, width=args.width,
                                 net_input=args.net_input or 64, progress=not args.quiet)
    result = siamese.train_folder(args.data, out, config, cache_dir=args.cache, resume=args.resume)
    print(f"build it with: edge-verify build --model embedding --checkpoint {result['model']}")
    return 0


def run_attributes(args) -> int:
    check_data(args.data)
    if args.labels is not None and not args.labels.is_file():
        raise DatasetError(f"--labels {args.labels}: no such file")
    config = attributes.AttributeConfig(data=args.data, labels=args.labels, out=args.out, backbone=args.backbone,
                                        epochs=args.epochs, batch=args.batch, seed=args.seed, resume=args.resume,
                                        threads=args.threads, folds=args.folds, progress=not args.quiet)
    return attributes.run(config)


def run_liveness(args) -> int:
    for folder, _ in args.data:
        check_data(folder)
    if not 1 <= args.window <= 100:
        raise ConfigError("--window must be 1 to 100 frames")
    config = liveness.LivenessConfig(data=args.data, out=args.out, target_bpcer=args.target_bpcer,
                                     augment=args.augment, window=args.window, synthetic_clips=args.synthetic_clips,
                                     seed=args.seed, cache=args.cache, progress=not args.quiet,
                                     motion=motion.WAITS[args.motion_wait], cnn=args.cnn, cnn_epochs=args.cnn_epochs,
                                     cnn_augment=args.cnn_augment, cnn_folds=args.cnn_folds,
                                     cnn_members=args.cnn_members)
    return liveness.run(config, echo=to_stderr)


# -- edge-verify models fetch -------------------------------------------------------------------

def run_fetch(args) -> int:
    summary = fetch_and_convert(log=to_stderr, force=args.force)
    print(f"models ready in {paths.models_dir()}")
    for name, path in summary["engines"].items():
        print(f"  {name:<15} {path}")
    return 0
