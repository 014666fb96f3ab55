"""Every frame of the door clips through the face pipeline once, cached to disk; replayed for the daemon.

The face pipeline (detect, choose the main face, align, embed) is by far the
costliest step and does not depend on the gallery or on the decision rule, so
the door measurement (benchmarks/door_measure.py) runs it once per frame here
and then runs the daemon, `edge-verify run`, many times (three gallery sizes,
before and after) with a pipeline that serves the cached results
(:class:`ReplayPipeline`). The frames are read exactly as the daemon reads them
(edge.sources, file://, then to RGB) and keyed by a hash of the RGB frame, so a
replay can only ever return what the real pipeline gave for that very frame.

Per frame the cache keeps every detected face (box, score, landmarks), which
one is the main face (at the daemon's min_face_px), the main face's embedding,
and its aligned chip as 8-bit grey (what the chip quality measures read; the
replayed chip is that grey in every channel, normalised like the real one).

    python benchmarks/door_frames.py --clips /tmp/door/clips --out /tmp/door/frames [--only staff strangers-0]
"""
from __future__ import annotations

import argparse
import atexit
import hashlib
import sys
import time
from pathlib import Path

import numpy as np

from edge.enroll.quality import chip_pixels
from edge.pipeline import FacePipeline, MainFace, Scene
from edge.sources import FrameStatus, open_source
from edge.vision.detector import Face
from edge.vision.image import to_rgb

MIN_FACE_PX = 80  # the daemon's default [decision] min_face_px


def digest(rgb: np.ndarray) -> bytes:
    return hashlib.sha1(np.ascontiguousarray(rgb).tobytes()).digest()


def fill(pipeline, clip: Path, out: Path, min_face_px: float = MIN_FACE_PX) -> None:
    """Run the pipeline on every frame of ``clip`` and write ``out`` (.npz)."""
    keys, face_rows, face_frame, main, embeddings, chips = [], [], [], [], [], []
    dim = int(pipeline.manifest["outputs"][0]["shape"][-1])
    started = time.perf_counter()
    with open_source(f"file://{clip}", reconnect=False) as source:
        while True:
            frame = source.read()
            if frame.status is FrameStatus.END:
                if source.failure:
                    raise SystemExit(f"{clip}: {source.failure}")
                break
            if frame.status is not FrameStatus.OK:
                raise SystemExit(f"{clip}: frame {frame.index}: {frame.detail}")
            rgb = to_rgb(frame.image)
            scene = pipeline.look(rgb, min_face_px)
            number = len(keys)
            keys.append(digest(rgb))
            chosen = -1
            for position, face in enumerate(scene.faces):
                face_rows.append([*face.box, face.score, *np.asarray(face.landmarks, np.float32).reshape(-1)])
                face_frame.append(number)
                if scene.main is not None and face is scene.main.face:
                    chosen = position
            main.append(chosen)
            if scene.main is None:
                embeddings.append(np.zeros(dim, np.float32))
                chips.append(np.zeros((pipeline.size, pipeline.size), np.uint8))
            else:
                embeddings.append(pipeline.embed(scene.main.chip)[0])
                grey = chip_pixels(scene.main.chip[0], pipeline.mean, pipeline.std)
                chips.append(np.clip(np.rint(grey), 0, 255).astype(np.uint8))
            if len(keys) % 500 == 0:
                print(f"{clip.name}: {len(keys)} frames ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    np.savez(out, keys=np.array(keys, dtype="S20"), faces=np.array(face_rows, np.float32).reshape(-1, 15),
             face_frame=np.array(face_frame, np.int64), main=np.array(main, np.int64),
             embeddings=np.stack(embeddings).astype(np.float32), chips=np.stack(chips),
             min_face_px=np.float32(min_face_px))
    print(f"{clip.name}: {len(keys)} frames in {time.perf_counter() - started:.0f} s -> {out}", file=sys.stderr)


class FrameCache:
    """The cached pipeline results of one or more clips, by frame hash and in clip order."""

    def __init__(self, files):
        self.rows: dict = {}
        self.order: list = []
        self.min_face_px = None
        for path in files:
            with np.load(path) as stored:
                data = {name: stored[name] for name in stored.files}  # an NpzFile re-reads an array per access
            self.min_face_px = float(data["min_face_px"])
            faces_of: dict = {}
            for row, number in zip(data["faces"], data["face_frame"]):
                faces_of.setdefault(int(number), []).append(row)
            for number, key in enumerate(data["keys"]):
                row = (faces_of.get(number, []), int(data["main"][number]), data["embeddings"][number],
                       data["chips"][number])
                self.rows[bytes(key)] = row
                self.order.append(row)

    def __len__(self) -> int:
        return len(self.rows)


def as_face(row) -> Face:
    return Face(tuple(float(v) for v in row[:4]), float(row[4]), np.asarray(row[5:15], np.float32).reshape(5, 2))


class ReplayPipeline:
    """A FacePipeline that answers from a FrameCache.

    A frame is found by its hash. The decoder sometimes gives a frame that differs from
    the one the cache was made from (41 of the 10,608 frames of the staff clip, the same
    41 in every replay: the process that made the cache decoded them differently, under
    heavy load); such a frame is answered by its position in the clip instead, and counted
    (``mismatched``, printed at exit). A run whose frames were not all cached is an error.
    """

    def __init__(self, real: FacePipeline, cache: FrameCache):
        self.real = real
        self.cache = cache
        self.manifest = real.manifest
        self.threshold = real.threshold
        self.flip, self.size, self.padding = real.flip, real.size, real.padding
        self.mean, self.std = real.mean, real.std
        self.normalize = real.normalize
        self._chips: dict = {}
        self.looked = 0
        self.mismatched = 0
        atexit.register(self._say_mismatches)

    def look(self, image: np.ndarray, min_face_px: float = 0.0) -> Scene:
        if self.cache.min_face_px is not None and float(min_face_px) != self.cache.min_face_px:
            raise RuntimeError(f"the frame cache was made at min_face_px {self.cache.min_face_px}, asked {min_face_px}")
        key = digest(image)
        position = self.looked
        self.looked += 1
        if key in self.cache.rows:
            rows, chosen, embedding, grey = self.cache.rows[key]
        elif position < len(self.cache.order):
            self.mismatched += 1
            rows, chosen, embedding, grey = self.cache.order[position]
        else:
            raise RuntimeError("a frame that is not in the cache: make the cache from these clips first")
        faces = [as_face(row) for row in rows]
        if chosen < 0:
            return Scene(faces, None, {"detect": 0.0, "align": 0.0})
        chip = ((grey.astype(np.float32)[None] - np.asarray(self.mean, np.float32).reshape(3, 1, 1))
                / np.asarray(self.std, np.float32).reshape(3, 1, 1))[None]
        self._chips = {id(chip): (chip, embedding)}  # one frame at a time
        return Scene(faces, MainFace(faces[chosen], chip), {"detect": 0.0, "align": 0.0})

    def follow(self, image: np.ndarray, face, min_face_px: float = 0.0):
        """None: the cache holds each frame's whole-frame search, so a replayed daemon searches every frame
        (edge.pipeline.Follower then looks each frame up once, in order). The door figures made from it are
        those of `[engine] search_every = 1`."""
        return None

    def _say_mismatches(self) -> None:
        if self.mismatched:
            print(f"replay: {self.mismatched} of {self.looked} frames answered by position (decoded differently)",
                  file=sys.stderr)

    def main_face(self, image: np.ndarray, min_face_px: float = 0.0):
        return self.look(image, min_face_px).main

    def share_thread(self, helper) -> list:
        return []  # a replayed answer costs nothing to share

    def embed(self, chips: np.ndarray, share: bool = False) -> np.ndarray:
        found = self._chips.pop(id(chips), None)
        if found is None or found[0] is not chips:
            raise RuntimeError("embed() was given a chip this replay did not make")
        return found[1][None].copy()


def records(path: Path, pipeline) -> list:
    """The cached frames of one clip in clip order: [(faces, MainFace or None, embedding or None)]."""
    with np.load(path) as stored:
        data = {name: stored[name] for name in stored.files}  # an NpzFile re-reads an array per access
    faces_of: dict = {}
    for row, number in zip(data["faces"], data["face_frame"]):
        faces_of.setdefault(int(number), []).append(as_face(row))
    mean = np.asarray(pipeline.mean, np.float32).reshape(3, 1, 1)
    std = np.asarray(pipeline.std, np.float32).reshape(3, 1, 1)
    out = []
    for number in range(len(data["keys"])):
        faces = faces_of.get(number, [])
        chosen = int(data["main"][number])
        if chosen < 0:
            out.append((faces, None, None))
            continue
        chip = ((data["chips"][number].astype(np.float32)[None] - mean) / std)[None]
        out.append((faces, MainFace(faces[chosen], chip), data["embeddings"][number]))
    return out


def decisions(frames: list, pipeline, tracker=None):
    """What the daemon (edge.daemon.loop) decides on, frame by frame, for cached ``frames``:
    yields (position, track id, frames combined, combined probe, the frame's own embedding)
    for every frame with a usable main face, using the daemon's tracker, weights and combining."""
    # imported here: benchmarks/door_run.py imports this module under older code too, which has no tracking
    from edge.daemon.parts import make_tracker
    from edge.daemon.tracking import frame_weight, usable

    tracker = tracker or make_tracker(pipeline.manifest)
    for position, (faces, main, embedding) in enumerate(frames):
        assigned = tracker.update(faces)
        if main is None or not usable(embedding):
            continue
        weight = frame_weight(main, pipeline.mean, pipeline.std, pipeline.padding)
        track = tracker.add(assigned[id(main.face)], None, main, embedding, weight)
        yield position, track.id, track.frames, track.probe(tracker.unit), embedding


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=Path, required=True, help="folder of .avi clips (door_clips.py)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the .npz caches")
    parser.add_argument("--only", nargs="*", help="clip names (without .avi) to do; default all missing")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    pipeline = FacePipeline.load(threads=args.threads)
    clips = sorted(args.clips.glob("*.avi"))
    if args.only:
        clips = [clip for clip in clips if clip.stem in args.only]
    for clip in clips:
        target = args.out / f"{clip.stem}.npz"
        if target.exists():
            continue
        fill(pipeline, clip, target)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
