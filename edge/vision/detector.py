"""What the face pipeline needs from a face detector, whichever network finds the faces.

A detector takes an RGB (or grey, or RGBA) uint8 image and returns every face it
finds as a :class:`Face`: a box, a score and five landmarks. Alignment maps those
five landmarks onto the detector's own ``template`` (where its landmarks sit, on
average, in the unit face box the embedding model's chips are cut from): each
detector places its points a little differently, so the template belongs to the
detector, not to the alignment.

A detector is built from its engines: ``cls(*engines)``, one engine per name in
``cls.nets`` (the engine names in edge.models.registry), in that order. The
registry's ``DETECTORS`` table says which detector classes exist; MTCNN
(edge.vision.mtcnn) is the one shipped.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Optional

import numpy as np


def iou(a, b) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


@dataclass(frozen=True, eq=False)
class Face:
    """One detected face, in pixels of the image given to the detector.

    ``box`` is (x1, y1, x2, y2) in float pixel-edge coordinates: whole values would be
    ``image[y1:y2, x1:x2]``. ``landmarks`` is float32 (5, 2) of (x, y) in pixel-centre
    coordinates (the centre of the top-left pixel is (0, 0)), in this order: eye on the
    image's left, eye on the image's right, nose tip, mouth corner on the image's left,
    mouth corner on the image's right. ``score`` is the detector's confidence, 0 to 1.
    """

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    @property
    def center(self) -> tuple[float, float]:
        return (self.box[0] + self.box[2]) / 2.0, (self.box[1] + self.box[3]) / 2.0


class Detector(ABC):
    """A face detector: ``detect(image) -> [Face]`` plus what alignment needs to know about its landmarks.

    Subclasses set ``nets`` (their engines' registry names, in constructor order),
    ``template`` ((5, 2) unit-box positions of the five landmarks, the alignment
    target) and, optionally, ``template_weights`` (how much the alignment fit trusts
    each landmark; None trusts all alike).
    """

    nets: ClassVar[tuple[str, ...]]
    template: ClassVar[np.ndarray]
    template_weights: ClassVar[Optional[np.ndarray]] = None

    helper = None  # a spare thread (see share_thread), or None

    @abstractmethod
    def detect(self, image: np.ndarray, smallest: float = 0.0) -> list[Face]:
        """Every face in the image, best score first; [] when there is none. ``smallest``: the caller
        judges only faces whose box is at least this many pixels on its shorter side, so the detector
        may skip searching for much smaller ones (it may still return some)."""

    def follow(self, image: np.ndarray, box) -> Optional[list[Face]]:
        """The face that had ``box`` (x1, y1, x2, y2) in the frame before, found again in ``image`` near
        it by a cheaper search than ``detect``: a list of at most one face ([] when it is not there any
        more), or None when this detector cannot follow (the caller then runs ``detect``)."""
        return None

    def share_thread(self, helper) -> bool:
        """Offer a spare thread (a concurrent.futures Executor whose worker is idle while ``detect``
        runs) for part of each detection, which must give exactly the faces it gives alone; True when
        the detector takes it. By default it does not."""
        return False
