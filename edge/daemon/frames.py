"""One camera frame → the primary face's embedding, or why there is none.

Only the primary face is embedded (the person at the kiosk: large and central,
see edge.pipeline.choose_main_face), chosen among the faces whose box is at least
``min_face_px`` on its shorter side: a face too far away is not judged at all.
A frame that is not a picture (wrong shape or type) is reported, not raised:
the daemon must keep running, with the door locked, whatever a camera sends.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

import numpy as np

from edge.exc import ImageError
from edge.pipeline import MainFace
from edge.vision.detector import Face
from edge.vision.image import to_rgb


@dataclass(frozen=True)
class Sighting:
    """``main`` (with its chip) is set only when a face big enough to judge was found, and ``embedding``
    once it is embedded (:func:`embedded`);
    ``faces`` holds every face detected (the tracker follows them all)."""

    reason: str  # "face", "no face", "face too small", "unusable frame"
    face: Optional[Face] = None
    embedding: Optional[np.ndarray] = None
    detail: str = ""
    chip: Optional[np.ndarray] = None  # the aligned (1, 3, S, S) chip: the liveness check reads the same face
    faces: tuple = ()  # every face found, the followed one alone on a followed frame (tracker; live view)
    rgb: Optional[np.ndarray] = None  # the frame in RGB: the liveness cues read the face's surroundings too
    main: Optional[MainFace] = None
    followed: bool = False  # found again near the last main face's box, the rest of the frame not searched

    @property
    def face_px(self) -> Optional[float]:
        return None if self.face is None else float(min(self.face.width, self.face.height))


def look(follower, bgr: np.ndarray, index: int = -1, search: bool = False) -> Sighting:
    """Detect (or follow: edge.pipeline.Follower; ``search`` searches the whole frame whatever its
    schedule), pick the primary face and align it; the embedding comes after (:func:`embedded`), so
    that the liveness cues can measure the face meanwhile."""
    try:
        rgb = to_rgb(bgr, source=f"frame {index}")
    except ImageError as error:
        follower.forget()
        return Sighting("unusable frame", detail=str(error))
    scene = follower.look(rgb, search)
    faces = tuple(scene.faces)
    if not faces:
        return Sighting("no face")
    if scene.main is None:
        largest = max(faces, key=lambda face: min(face.width, face.height))
        return Sighting("face too small", face=largest, faces=faces)
    return Sighting("face", face=scene.main.face, chip=scene.main.chip, faces=faces, rgb=rgb, main=scene.main,
                    followed=scene.followed)


def embedded(pipeline, sighting: Sighting, share: bool = False) -> Sighting:
    """The sighting with its main face's embedding (unchanged when it has no main face); ``share``:
    the pipeline's spare thread is idle, the mirror image may run there (FacePipeline.embed)."""
    if sighting.main is None:
        return sighting
    return replace(sighting, embedding=np.asarray(pipeline.embed(sighting.main.chip, share=share)[0]))


def face_crop(bgr: np.ndarray, face, padding: float = 0.25) -> np.ndarray:
    """The face box with some margin, clipped to the frame (for store_faces)."""
    x1, y1, x2, y2 = face.box
    pad_x, pad_y = (x2 - x1) * padding, (y2 - y1) * padding
    height, width = bgr.shape[:2]
    left, top = max(int(x1 - pad_x), 0), max(int(y1 - pad_y), 0)
    right, bottom = min(int(x2 + pad_x) + 1, width), min(int(y2 + pad_y) + 1, height)
    return bgr[top:bottom, left:right]
