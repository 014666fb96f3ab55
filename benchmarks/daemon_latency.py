"""Frame latency and sustained frame rate of the door daemon on this CPU.

Runs the real daemon loop (edge.daemon.loop.Daemon: decode, detect, align,
embed, gallery search, K-of-N decision, door, event log) over a 640x480 MJPG
clip with one face in every frame, read through file:// as fast as the daemon
can take frames, with the relay on a gpiozero MockFactory pin. Once per
embedding engine precision: FP32, and INT8 when `edge-verify build` has made
one (the detector stays FP32: that is what the kiosk runs).

Per frame, from the daemon's own events:
  decode -> decision = read_ms (the file read and MJPG decode)
                     + latency_ms (decoded frame -> decision, door driven)
reported as p50 and p95 over all frames after a warm-up; sustained fps is
frames judged / wall time of the loop. With --repeat N each setting runs N
times and each frame counts with the median of its N latencies (the clip is the
same every run), which keeps a busy minute of a shared machine out of the p95;
every run's own p50 / p95 is printed too.

    python benchmarks/daemon_latency.py --liveness off auto --json daemon_latency.json

The daemon's own thread settings apply (edge.daemon.parts: engines on half the
cores, numpy's BLAS on one thread, OpenCV on the engines' count, and a helper
thread for part of each frame), so no environment variable is needed; --threads
overrides the engines' count as `[engine] threads` does.

Photos: the demo photos that ship with the package (edge/demo_data); three
people are enrolled, the clip shows one of them with a photo not enrolled.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

WARMUP_FRAMES = 10


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=300, help="frames in the clip (default 300)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads per engine (default: the daemon's, half the CPU cores)")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "int8"], choices=["fp32", "fp16", "int8"],
                        help="embedding engines to measure; ones not built are reported as missing (default fp32 int8)")
    parser.add_argument("--liveness", nargs="+", default=["auto"], choices=["auto", "off"],
                        help="[decision] liveness for each run: auto runs the liveness cues of $EDGE_VERIFY_HOME's "
                             "model when there is one, off measures without them (default auto)")
    parser.add_argument("--liveness-cues", help="with --liveness auto, only these cues (as `[liveness] cues`, e.g. "
                                                "texture,context); default: every cue of the liveness model")
    parser.add_argument("--frames-from", type=Path,
                        help="measure on a clip made of this folder's images instead (name order, 640x480), e.g. "
                             "../shared/datasets/replay_dev/real: real rooms cost more than the flat synthetic clip")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs per setting (default 1); with more, each frame's latency is the median of its "
                             "runs, so that a busy spell of a shared machine does not set the p95")
    parser.add_argument("--no-flip", dest="flip", action="store_false",
                        help="embed each face once, as `[engine] flip = false` does, instead of averaging it with "
                             "its mirror image (the default)")
    parser.add_argument("--search-every", type=int, nargs="+", default=[None], metavar="N",
                        help="`[engine] search_every` for each run: the whole frame is searched for faces every N "
                             "frames while the face of the frame before is followed (1: every frame; default: the "
                             "daemon's)")
    parser.add_argument("--json", type=Path, default=Path("daemon_latency.json"), help="write the figures here")
    return parser.parse_args(argv)


def write_clip(path: Path, frames: int) -> None:
    import cv2

    from edge.demo import FACE_SIDE, FRAME_SIZE, demo_photo

    photo = cv2.resize(cv2.imread(str(demo_photo("Colin_Powell", 3))), (FACE_SIDE, FACE_SIDE))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, FRAME_SIZE)
    rng = np.random.default_rng(0)
    for _ in range(frames):
        frame = np.full((FRAME_SIZE[1], FRAME_SIZE[0], 3), 96, np.uint8)
        dx, dy = rng.integers(-6, 7, size=2)
        left, top = (FRAME_SIZE[0] - FACE_SIDE) // 2 + dx, (FRAME_SIZE[1] - FACE_SIDE) // 2 + dy
        frame[top:top + FACE_SIDE, left:left + FACE_SIDE] = photo
        writer.write(frame)
    writer.release()


def write_scene_clip(path: Path, folder: Path) -> int:
    """An MJPG clip of ``folder``'s images in name order, each scaled to 640x480; returns the frame count."""
    import cv2

    from edge.demo import FRAME_SIZE

    images = sorted(item for item in folder.iterdir() if item.suffix.lower() in (".jpg", ".jpeg", ".png"))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 15.0, FRAME_SIZE)
    written = 0
    for item in images:
        image = cv2.imread(str(item))
        if image is None:
            continue
        writer.write(cv2.resize(image, FRAME_SIZE, interpolation=cv2.INTER_AREA))
        written += 1
    writer.release()
    if not written:
        raise SystemExit(f"{folder}: no readable .jpg or .png images")
    return written


def measure(precision: str, threads, clip: Path, folder: Path, liveness: str = "auto", cues=None,
            flip: bool = True, search_every=None) -> dict:
    from gpiozero.pins.mock import MockFactory

    from edge.daemon import config, parts
    from edge.daemon.loop import Daemon
    from edge.demo import enroll
    from edge.pipeline import FacePipeline

    pipeline = FacePipeline.load(precision=precision, threads=threads or parts.default_engine_threads(), flip=flip)
    enroll(pipeline, folder, log=lambda line: None)
    settings = config.resolve({
        "source.uri": f"file://{clip}", "door.pin": "BOARD11", "door.pulse_s": 1.0,
        "gallery.path": str(folder / "gallery.sqlite"), "gallery.key": str(folder / "gallery.key"),
        "events.file": str(folder / "events.jsonl"), "events.stdout": False, "decision.liveness": liveness,
        "engine.flip": flip,
        **({"engine.search_every": search_every} if search_every is not None else {}),
        **({"liveness.cues": cues} if cues and liveness != "off" else {}),
    }, {}, origin="the benchmark")
    factory = MockFactory()
    daemon = Daemon(settings, until_end=True, pin_factory=factory, pipeline=pipeline)
    daemon.run()
    wall = time.monotonic() - daemon.stats.started
    factory.close()
    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    judged = [event for event in events if event["frame"] >= WARMUP_FRAMES]
    total = np.array([event["read_ms"] + event["latency_ms"] for event in judged])
    followed = [bool(event.get("followed")) for event in judged]
    decode = np.array([event["read_ms"] for event in judged])
    after = np.array([event["latency_ms"] for event in judged])
    return {
        "total_ms": total.tolist(),
        "precision": precision,
        "flip": flip,
        "liveness": ", ".join(daemon.liveness.cues) if daemon.liveness is not None else "off",
        "search_every": settings["engine.search_every"],
        "followed": followed,
        "followed_frames": sum(followed),
        **split_by_search(total, followed),
        "frames": daemon.stats.frames,
        "frames_with_face": len(events),
        "unlocks": daemon.stats.unlocks,
        "matched": sum(1 for event in events if event["person"] == "Colin_Powell"),
        "latency_ms_p50": round(float(np.percentile(total, 50)), 2),
        "latency_ms_p95": round(float(np.percentile(total, 95)), 2),
        "decode_ms_p50": round(float(np.percentile(decode, 50)), 2),
        "decided_after_decode_ms_p50": round(float(np.percentile(after, 50)), 2),
        "sustained_fps": round(daemon.stats.frames / wall, 2),
    }


def split_by_search(total: np.ndarray, followed: list) -> dict:
    """p50 / p95 of the frames whose face was followed and of those whose whole frame was searched."""
    out = {}
    for name, rows in (("followed", np.asarray(followed, bool)), ("searched", ~np.asarray(followed, bool))):
        if rows.any():
            out[f"{name}_ms_p50"] = round(float(np.percentile(total[rows], 50)), 2)
            out[f"{name}_ms_p95"] = round(float(np.percentile(total[rows], 95)), 2)
    return out


def over_runs(runs: list) -> dict:
    """One run's figures as they are; several runs: each frame's latency is the median of its runs
    (frame i of every run is the same picture), the other figures are the runs' medians, and every
    run's p50 / p95 is kept."""
    if len(runs) == 1:
        return runs[0]
    count = min(len(run["total_ms"]) for run in runs)
    per_frame = np.median(np.array([run["total_ms"][:count] for run in runs]), axis=0)
    merged = {key: value for key, value in runs[0].items()
              if not isinstance(value, (int, float)) or key in ("frames", "search_every")}
    for key in ("frames_with_face", "followed_frames", "unlocks", "matched", "decode_ms_p50",
                "decided_after_decode_ms_p50", "sustained_fps"):
        merged[key] = float(np.median([run[key] for run in runs]))
    merged.update({
        "total_ms": per_frame.tolist(), "runs": len(runs),
        "latency_ms_p50": round(float(np.percentile(per_frame, 50)), 2),
        "latency_ms_p95": round(float(np.percentile(per_frame, 95)), 2),
        **split_by_search(per_frame, runs[0]["followed"][:count]),
        "each_run_p50_p95": [[run["latency_ms_p50"], run["latency_ms_p95"]] for run in runs],
    })
    return merged


def machine() -> dict:
    import onnxruntime

    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    return {"cpu": model, "cpus": os.cpu_count(), "onnxruntime": onnxruntime.__version__,
            "python": platform.python_version(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}


def main(argv=None) -> int:
    from edge.models import registry

    args = parse_args(argv)
    results, missing = [], []
    with tempfile.TemporaryDirectory(prefix="daemon-latency-") as scratch:
        scratch = Path(scratch)
        clip = scratch / "one_face_640x480.avi"
        if args.frames_from is not None:
            write_scene_clip(clip, args.frames_from)
        else:
            write_clip(clip, args.frames)
        for precision in args.precisions:
            if not registry.engine_path(registry.EMBEDDING, precision, "onnxruntime").exists():
                missing.append(precision)
                continue
            for run, (liveness, every) in enumerate((l, e) for l in args.liveness for e in args.search_every):
                runs = []
                for repeat in range(max(args.repeat, 1)):
                    folder = scratch / f"{precision}-{liveness}-{run}-{repeat}"
                    folder.mkdir()
                    runs.append(measure(precision, args.threads, clip, folder, liveness, args.liveness_cues,
                                        args.flip, every))
                results.append(over_runs(runs))
    report = {"machine": machine(), "threads": args.threads, "flip": args.flip, "frame_size": [640, 480],
              "warmup_frames": WARMUP_FRAMES,
              "clip": str(args.frames_from) if args.frames_from else "synthetic: one demo photo on a flat background",
              "results": results, "not_built": missing}
    print(f"{'engine':<8} {'liveness':<24} {'search':>6} {'p50 ms':>8} {'p95 ms':>8} {'fps':>7} {'decode p50':>11} "
          f"{'faces':>6} {'followed':>9} {'matched':>8}")
    for row in results:
        print(f"{row['precision']:<8} {row['liveness']:<24} {row['search_every']:>6} {row['latency_ms_p50']:>8.1f} "
              f"{row['latency_ms_p95']:>8.1f} {row['sustained_fps']:>7.1f} {row['decode_ms_p50']:>11.1f} "
              f"{row['frames_with_face']:>6} {row['followed_frames']:>9.0f} {row['matched']:>8}")
    for precision in missing:
        print(f"{precision:<8} not built (edge-verify build --model embedding --precision {precision})")
    print(f"machine: {report['machine']['cpu']}, {report['machine']['cpus']} CPUs, threads={args.threads}"
          + ("" if args.flip else ", no mirror image (--no-flip)"))
    for row in results:
        if "followed_ms_p50" in row:
            print(f"{row['precision']} {row['liveness']} search every {row['search_every']}: p50 / p95 of the frames "
                  f"followed {row['followed_ms_p50']:.1f} / {row['followed_ms_p95']:.1f}"
                  + (f", searched {row['searched_ms_p50']:.1f} / {row['searched_ms_p95']:.1f}"
                     if "searched_ms_p50" in row else ""))
        if "each_run_p50_p95" in row:
            print(f"{row['precision']} {row['liveness']} search every {row['search_every']}: p50 / p95 of each run "
                  + ", ".join(f"{p50:.1f} / {p95:.1f}" for p50, p95 in row["each_run_p50_p95"]))
        row.pop("total_ms", None)
        row.pop("followed", None)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
