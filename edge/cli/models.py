"""`edge-verify models fetch|list`: the starter models."""
from __future__ import annotations

import argparse
import json
import sys

from edge import paths
from edge.engines.device import torch_install_hint
from edge.exc import ModelError

HELP = """\
Starter models, from registry packages:
  embedding  dlib's ResNet face model (CC0), package face_recognition_models 0.3.0
  detector   MTCNN with 5 landmarks (MIT), package facenet-pytorch 2.6.0 (weights only; never installed)

`fetch` downloads the packages (kept in the cache, so it runs once), checks each weight
file's sha256, converts the weights into our PyTorch modules and exports FP32 ONNX engines
with their manifests. It is idempotent. Converting needs the build extra
(pip install 'edge-verify[build]'). Models live in $EDGE_VERIFY_HOME/models
(default ~/.local/share/edge-verify/models).
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser("models", help="fetch and list the starter models", description=HELP,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    fetch = actions.add_parser("fetch", help="download, convert and export the starter models", description=HELP)
    fetch.add_argument("--force", action="store_true", help="convert and export again even if up to date")
    fetch.set_defaults(func=run_fetch)
    listing = actions.add_parser("list", help="show the models and engines on this device")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=run_list)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def run_fetch(args) -> int:
    from edge.models.sources import fetch_sources

    sources = fetch_sources(progress=lambda message: print(message, file=sys.stderr))
    try:
        from edge_build.starter import convert_starter_models
    except ImportError as error:
        raise ModelError(f"converting the weights needs PyTorch ({error.name} is missing): {torch_install_hint()}") from error
    summary = convert_starter_models(sources, force=args.force, log=lambda message: print(message, file=sys.stderr))
    print(f"models ready in {paths.models_dir()}")
    for name, path in summary["engines"].items():
        print(f"  {name:<15} {path}")
    return 0


def run_list(args) -> int:
    from edge.engines.manifest import read_manifest

    engines = sorted(paths.engines_dir().glob("*.onnx")) + sorted(paths.engines_dir().glob("*.engine"))
    rows = []
    for engine in engines:
        try:
            manifest = read_manifest(engine)
            rows.append({"engine": str(engine), "name": manifest["name"], "precision": manifest["precision"],
                         "backend": manifest["backend"], "threshold": manifest.get("threshold")})
        except ModelError as error:
            rows.append({"engine": str(engine), "error": str(error)})
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print(f"no engines in {paths.engines_dir()}; run `edge-verify models fetch`")
    else:
        for row in rows:
            detail = row.get("error") or f"{row['name']} {row['precision']} {row['backend']}"
            print(f"{row['engine']}: {detail}")
    return 0
