"""`edge-verify liveness` on photos and clips, judged as the daemon judges.

A photo is one frame: the frame cues (texture, context, colour) at their
thresholds on that frame alone; the motion cue needs several frames and does
not apply. A clip (``file://clip.avi``, a video path, ``dir://frames``) is read
frame by frame; the main face of each frame joins its track (edge.liveness.judge.Tracks)
and gets that track's verdict, exactly the daemon's rule. A track ``live`` on
any frame is one the door could have opened for.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from edge.liveness.judge import Liveness, LiveVerdict, Tracks
from edge.pipeline import SEARCH_EVERY, Follower
from edge.sources import FILE_RECONNECT, FrameStatus, open_source
from edge.sources.still import IMAGE_SUFFIXES
from edge.vision.image import to_rgb


def is_photo(argument: str) -> bool:
    """A path to a still image (not a URI, not a video)."""
    return "://" not in argument and Path(argument).suffix.lower() in IMAGE_SUFFIXES


def single_frame(liveness: Liveness) -> Liveness:
    """The same cues for one photo: a window of one frame, no motion, no active check."""
    return replace(liveness, window=1, motion=None, active=False)


def verdict_dict(verdict: LiveVerdict) -> dict:
    scores = {name: (round(value, 6) if isinstance(value, float) else value) for name, value in verdict.scores.items()}
    return {"live": verdict.live, "refused_by": verdict.refused_by, "reason": verdict.reason, "scores": scores}


def judge_alone(liveness: Liveness, image: np.ndarray, main) -> LiveVerdict:
    """The frame cues' verdict on one RGB frame and its MainFace, the frame judged on its own."""
    return single_frame(liveness).new_track().add(image, main)


def judge_photo(pipeline, liveness: Liveness, image: np.ndarray) -> dict:
    """{face, live, refused_by, reason, scores} for the main face of one RGB photo."""
    main = pipeline.main_face(image)
    if main is None:
        return {"face": False, "live": False, "refused_by": None, "reason": "no face", "scores": {}}
    return {"face": True, **verdict_dict(judge_alone(liveness, image, main))}


def judge_clip(pipeline, liveness: Liveness, uri: str, min_face_px: float = 0.0,
               search_every: int = SEARCH_EVERY) -> dict:
    """{frames, faces, tracks: [{track, first_frame, last_frame, frames, live, live_frames, refused_by, last}]};
    each frame's face found as the daemon finds it (edge.pipeline.Follower)."""
    tracks = Tracks(liveness)
    follower = Follower(pipeline, min_face_px, search_every)
    summary, frames, faces = {}, 0, 0
    with open_source(uri, reconnect=FILE_RECONNECT) as source:
        for frame in source.frames():
            if frame.status is not FrameStatus.OK:
                tracks.forget()
                follower.forget()
                continue
            frames += 1
            image = to_rgb(frame.image, source=f"{uri} frame {frame.index}")
            main = follower.look(image).main
            follower.search_if_due()  # as the daemon does, once the frame is judged (the same faces)
            if main is None:
                tracks.forget()
                continue
            faces += 1
            verdict = tracks.observe(image, main)
            entry = summary.setdefault(tracks.number, {"track": tracks.number, "first_frame": frame.index,
                                                       "frames": 0, "live_frames": 0, "refused_by": {}})
            entry["last_frame"] = frame.index
            entry["frames"] += 1
            entry["live_frames"] += int(verdict.live)
            if verdict.refused_by is not None:
                entry["refused_by"][verdict.refused_by] = entry["refused_by"].get(verdict.refused_by, 0) + 1
            entry["last"] = verdict_dict(verdict)
    for entry in summary.values():
        entry["live"] = entry["live_frames"] > 0
    return {"frames": frames, "faces": faces, "tracks": list(summary.values())}
