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

With ``--search-every N`` (the daemon's ``[engine] search_every``) the cache also
keeps what the daemon's edge.pipeline.Follower gets when it follows the face of
the frame before instead of searching: the clip is run through a real Follower,
in order, and each frame on which it tried to follow keeps the box it followed
from and the face found again (or that it was lost), with that face's embedding
and chip. A replayed daemon with the same ``search_every`` then follows exactly
as the real one would; with ``--search-every 1`` it searches every frame from the
same cache.

    python benchmarks/door_frames.py --clips /tmp/door/clips --out /tmp/door/frames [--only staff strangers-0] \
        [--search-every 15]
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
from edge.pipeline import FacePipeline, Follower, MainFace, Scene
from edge.sources import FrameStatus, open_source
from edge.vision.detector import Face
from edge.vision.image import to_rgb

MIN_FACE_PX = 80  # the daemon's default [decision] min_face_px


def digest(rgb: np.ndarray) -> bytes:
    return hashlib.sha1(np.ascontiguousarray(rgb).tobytes()).digest()


class _Recorder:
    """The pipeline as a Follower sees it while the cache is filled: a whole-frame search answers with the
    frame's search (made once, for the cache's main rows), and each attempt to follow is made for real and
    kept (the box followed from, and the scene found or None)."""

    def __init__(self, pipeline):
        self.pipeline = pipeline
        self.searched = None
        self.attempt = None

    def look(self, image, min_face_px: float = 0.0):
        return self.searched

    def follow(self, image, face, min_face_px: float = 0.0):
        scene = self.pipeline.follow(image, face, min_face_px)
        self.attempt = (tuple(face.box), scene)
        return scene


def _main_rows(pipeline, scene, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(embedding, 8-bit grey chip) of a scene's main face; zeros without one."""
    if scene is None or scene.main is None:
        return np.zeros(dim, np.float32), np.zeros((pipeline.size, pipeline.size), np.uint8)
    grey = chip_pixels(scene.main.chip[0], pipeline.mean, pipeline.std)
    return pipeline.embed(scene.main.chip)[0], np.clip(np.rint(grey), 0, 255).astype(np.uint8)


def face_row(face) -> list:
    return [*face.box, face.score, *np.asarray(face.landmarks, np.float32).reshape(-1)]


def fill(pipeline, clip: Path, out: Path, min_face_px: float = MIN_FACE_PX, search_every: int | None = None) -> None:
    """Run the pipeline on every frame of ``clip`` and write ``out`` (.npz); with ``search_every`` (2 or more)
    also what the daemon's Follower gets on the frames it follows (module docstring)."""
    keys, face_rows, face_frame, main, embeddings, chips = [], [], [], [], [], []
    dim = int(pipeline.manifest["outputs"][0]["shape"][-1])
    following = search_every is not None and search_every > 1
    recorder = _Recorder(pipeline)
    follower = Follower(recorder, min_face_px, search_every) if following else None
    follow_from, follow_found, follow_face, follow_embedding, follow_chip = [], [], [], [], []
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
                face_rows.append(face_row(face))
                face_frame.append(number)
                if scene.main is not None and face is scene.main.face:
                    chosen = position
            main.append(chosen)
            embedding, grey = _main_rows(pipeline, scene, dim)
            embeddings.append(embedding)
            chips.append(grey)
            if following:  # the daemon's order: follow (or search), judge, then the search that is due
                recorder.searched, recorder.attempt = scene, None
                follower.look(rgb)
                follower.search_if_due()
                tried = recorder.attempt
                found = None if tried is None else tried[1]
                follow_from.append(tried[0] if tried is not None else (np.nan,) * 4)
                follow_found.append(-1 if tried is None else int(found is not None))
                follow_face.append(face_row(found.main.face) if found is not None else [np.nan] * 15)
                embedding, grey = _main_rows(pipeline, found, dim)
                follow_embedding.append(embedding)
                follow_chip.append(grey)
            if len(keys) % 500 == 0:
                print(f"{clip.name}: {len(keys)} frames ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    np.savez(out, keys=np.array(keys, dtype="S20"), faces=np.array(face_rows, np.float32).reshape(-1, 15),
             face_frame=np.array(face_frame, np.int64), main=np.array(main, np.int64),
             embeddings=np.stack(embeddings).astype(np.float32), chips=np.stack(chips),
             min_face_px=np.float32(min_face_px),
             **({"search_every": np.int64(search_every), "follow_from": np.array(follow_from, np.float32),
                 "follow_found": np.array(follow_found, np.int64),
                 "follow_face": np.array(follow_face, np.float32).reshape(-1, 15),
                 "follow_embedding": np.stack(follow_embedding).astype(np.float32),
                 "follow_chip": np.stack(follow_chip)} if following else {}))
    print(f"{clip.name}: {len(keys)} frames in {time.perf_counter() - started:.0f} s -> {out}", file=sys.stderr)


class FrameCache:
    """The cached pipeline results of one or more clips, by frame hash and in clip order. Each row:
    (face rows, main face's position or -1, embedding, grey chip, following) where following is None
    without --search-every, else (box followed from or None when the Follower searched, face row of
    the face found again or None when it was lost, its embedding, its grey chip)."""

    def __init__(self, files):
        self.rows: dict = {}
        self.order: list = []
        self.min_face_px = None
        self.search_every = None  # the Follower's, when the cache holds its following
        for path in files:
            with np.load(path) as stored:
                data = {name: stored[name] for name in stored.files}  # an NpzFile re-reads an array per access
            self.min_face_px = float(data["min_face_px"])
            self.search_every = int(data["search_every"]) if "search_every" in data else None
            faces_of: dict = {}
            for row, number in zip(data["faces"], data["face_frame"]):
                faces_of.setdefault(int(number), []).append(row)
            for number, key in enumerate(data["keys"]):
                row = (faces_of.get(number, []), int(data["main"][number]), data["embeddings"][number],
                       data["chips"][number], _following(data, number))
                self.rows[bytes(key)] = row
                self.order.append((bytes(key), row))

    def __len__(self) -> int:
        return len(self.rows)


def _following(data: dict, number: int):
    """Frame ``number``'s following (FrameCache), or None when the cache was made without it."""
    if "follow_found" not in data:
        return None
    found = int(data["follow_found"][number])
    if found < 0:
        return (None, None, None, None)
    return (tuple(float(v) for v in data["follow_from"][number]), data["follow_face"][number] if found else None,
            data["follow_embedding"][number], data["follow_chip"][number])


def replayed_chip(grey: np.ndarray, mean, std) -> np.ndarray:
    """The (1, 3, S, S) chip replayed from a cached 8-bit grey chip: that grey in every channel, normalised
    like the real chip."""
    return ((grey.astype(np.float32)[None] - np.asarray(mean, np.float32).reshape(3, 1, 1))
            / np.asarray(std, np.float32).reshape(3, 1, 1))[None]


def as_face(row) -> Face:
    return Face(tuple(float(v) for v in row[:4]), float(row[4]), np.asarray(row[5:15], np.float32).reshape(5, 2))


class ReplayPipeline:
    """A FacePipeline that answers from a FrameCache.

    A frame is found by its position in the clip, checked by its hash (a cache without following also
    finds a frame by its hash alone). The decoder sometimes gives a frame that differs from
    the one the cache was made from (41 of the 10,608 frames of the staff clip, the same
    41 in every replay: the process that made the cache decoded them differently, under
    heavy load); such a frame is answered by its position in the clip all the same, and counted
    (``mismatched``, printed at exit). A run whose frames were not all cached is an error.
    The daemon's Follower asks for each frame one to three times (follow; the search before an
    unlock; the scheduled search), always with the same image: a new image is the next frame.

    ``follow`` answers with the cache's following when it has one (made with the daemon's
    ``search_every``); without it, None, so a replayed daemon searches every frame. A replay
    that asks to follow where the cache's Follower searched, or from another box, has gone
    another way than the cache's Follower: after the daemon's search before an unlock found
    another main face (Follower.confirm), which depends on the gallery, so no cache can hold
    it. That frame is then followed and embedded for real, as the daemon would, and counted
    (``followed_for_real``, printed at exit: a cache made with another ``search_every`` shows
    as most frames followed for real).
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
        self.looked = 0  # frames asked for
        self.mismatched = 0
        self.followed = 0
        self.followed_for_real = 0
        self._image = None
        self._row = None
        atexit.register(self._say_mismatches)

    def _frame(self, image: np.ndarray, min_face_px: float):
        """The cache's row of this frame (the same as the last call's for the same image)."""
        if self.cache.min_face_px is not None and float(min_face_px) != self.cache.min_face_px:
            raise RuntimeError(f"the frame cache was made at min_face_px {self.cache.min_face_px}, asked {min_face_px}")
        if image is self._image:
            return self._row
        key = digest(image)
        position = self.looked
        self.looked += 1
        if position < len(self.cache.order) and self.cache.order[position][0] == key:
            row = self.cache.order[position][1]
        elif key in self.cache.rows and self.cache.search_every is None:
            # A frame's search depends on the frame alone; what the Follower gets depends on the frames
            # before too, so a cache with following is read in clip order only (a still scene repeats frames).
            row = self.cache.rows[key]
        elif position < len(self.cache.order):
            self.mismatched += 1
            row = self.cache.order[position][1]
        else:
            raise RuntimeError("a frame that is not in the cache: make the cache from these clips first")
        self._image, self._row = image, row
        return row

    def _scene(self, faces: list, chosen: int, embedding, grey, followed: bool = False) -> Scene:
        if chosen < 0:
            return Scene(faces, None, {"detect": 0.0, "align": 0.0})
        chip = replayed_chip(grey, self.mean, self.std)
        self._chips = {id(chip): (chip, embedding)}  # one frame at a time
        return Scene(faces, MainFace(faces[chosen], chip), {"detect": 0.0, "align": 0.0}, followed=followed)

    def look(self, image: np.ndarray, min_face_px: float = 0.0) -> Scene:
        rows, chosen, embedding, grey, _ = self._frame(image, min_face_px)
        return self._scene([as_face(row) for row in rows], chosen, embedding, grey)

    def follow(self, image: np.ndarray, face, min_face_px: float = 0.0):
        """The face found again as the cache's Follower found it, or None (lost; or a cache without following:
        then the replayed daemon searches every frame, `[engine] search_every = 1`)."""
        following = self._frame(image, min_face_px)[4]
        if following is None:
            return None
        start, found, embedding, grey = following
        if start is None or not np.allclose(start, face.box, atol=1e-3):
            return self._follow_for_real(image, face, min_face_px)
        if found is None:
            return None
        self.followed += 1
        return self._scene([as_face(found)], 0, embedding, grey, followed=True)

    def _follow_for_real(self, image: np.ndarray, face, min_face_px: float):
        """What the real pipeline finds following ``face`` in ``image``, its chip embedded for real (embed)."""
        self.followed_for_real += 1
        scene = self.real.follow(image, face, min_face_px)
        self._chips = {} if scene is None else {id(scene.main.chip): (scene.main.chip, None)}
        return scene

    def _say_mismatches(self) -> None:
        if self.mismatched:
            print(f"replay: {self.mismatched} of {self.looked} frames answered by position (decoded differently)",
                  file=sys.stderr)
        if self.followed_for_real:
            print(f"replay: {self.followed_for_real} of {self.looked} frames followed for real (the cache's "
                  f"Follower went another way)", file=sys.stderr)

    def main_face(self, image: np.ndarray, min_face_px: float = 0.0):
        return self.look(image, min_face_px).main

    def share_thread(self, helper) -> list:
        return []  # a replayed answer costs nothing to share

    def embed(self, chips: np.ndarray, share: bool = False) -> np.ndarray:
        found = self._chips.pop(id(chips), None)
        if found is None or found[0] is not chips:
            raise RuntimeError("embed() was given a chip this replay did not make")
        if found[1] is None:  # followed for real (_follow_for_real)
            return self.real.embed(chips)
        return found[1][None].copy()


def records(path: Path, pipeline) -> list:
    """The cached frames of one clip in clip order: [(faces, MainFace or None, embedding or None)]."""
    with np.load(path) as stored:
        data = {name: stored[name] for name in stored.files}  # an NpzFile re-reads an array per access
    faces_of: dict = {}
    for row, number in zip(data["faces"], data["face_frame"]):
        faces_of.setdefault(int(number), []).append(as_face(row))
    out = []
    for number in range(len(data["keys"])):
        faces = faces_of.get(number, [])
        chosen = int(data["main"][number])
        if chosen < 0:
            out.append((faces, None, None))
            continue
        chip = replayed_chip(data["chips"][number], pipeline.mean, pipeline.std)
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
    parser.add_argument("--search-every", type=int, default=None, metavar="N",
                        help="also keep what the daemon's Follower gets with `[engine] search_every = N` (2 or more; "
                             "the daemon's default is 15), so that a replay can follow faces as the daemon does")
    args = parser.parse_args(argv)
    if args.search_every is not None and args.search_every < 2:
        parser.error("--search-every: 2 or more (without it the cache replays a daemon that searches every frame)")
    args.out.mkdir(parents=True, exist_ok=True)
    pipeline = FacePipeline.load(threads=args.threads)
    clips = sorted(args.clips.glob("*.avi"))
    if args.only:
        clips = [clip for clip in clips if clip.stem in args.only]
    for clip in clips:
        target = args.out / f"{clip.stem}.npz"
        if target.exists():
            continue
        fill(pipeline, clip, target, search_every=args.search_every)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
