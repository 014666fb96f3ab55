"""`edge-verify run ...` with the face pipeline replayed from a frame cache (benchmarks/door_frames.py).

Everything else is the product as it runs at the door: the command line, the
settings, the daemon loop, the gallery file and its 1:N threshold, the decision,
the door (on gpiozero's mock pins: set GPIOZERO_PIN_FACTORY=mock) and the event
log. Only ``edge.daemon.parts.load_pipeline`` is swapped for a pipeline that
answers each frame with what the real pipeline gave for it, which makes a run of
a few thousand frames take minutes instead of an hour.

    GPIOZERO_PIN_FACTORY=mock python benchmarks/door_run.py --frames F.npz [F2.npz ...] -- \\
        run --no-config --source file://clip.avi --until-end --events events.jsonl --gallery G --key K

Runs whichever `edge` is first on the path (PYTHONPATH=OLD_CHECKOUT for the code before a change).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import door_frames
from edge import cli
from edge.daemon import parts


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        raise SystemExit("usage: door_run.py --frames F.npz ... -- run [edge-verify run flags]")
    split = argv.index("--")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=Path, nargs="+", required=True, help="frame caches of the clip")
    args = parser.parse_args(argv[:split])
    cache = door_frames.FrameCache(args.frames)
    real_load = parts.load_pipeline

    def replayed(settings):
        return door_frames.ReplayPipeline(real_load(settings), cache)

    parts.load_pipeline = replayed
    return cli.main(argv[split + 1:])


if __name__ == "__main__":
    raise SystemExit(main())
