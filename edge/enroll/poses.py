"""Enrollment at the kiosk camera in a few poses, keeping the templates that add the most.

Five frames of one moment cover a person badly: the door later sees them a little
turned, with or without their glasses, and each of those looks is farther from
five copies of one frontal look than from one template that shows it. So a
camera enrollment asks for a few poses in turn (look straight, turn slightly to
one side, then the other; glasses off when the person wears them), takes good
frames of each (every quality gate of edge.enroll.quality, and the head turned
the asked way, measured on the landmarks), and then keeps the ``count``
templates that add the most: the most typical frame first, then each time the
frame farthest from every one kept so far. A pose the person could not give
within the time is reported, and `edge-verify gallery show NAME` says what is
covered (edge.enroll.coverage). The frames are taken by
edge.enroll.capture.capture_poses, which keeps a PoseProgress up to date for a screen
that shows the installer where the capture stands (the console's enrollment page).

Yaw signs: edge.enroll.quality.pose measures yaw positive when the nose tip lies
to the image's right of the eyes' midpoint, which is the person turning to their
own left (the camera sees them mirrored).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

# A slight turn: enough to show the side of the face, well inside the enrollment pose gate
# (MAX_YAW_DEG 50) and inside what the door sees of a person walking up at an angle.
FRONT_MAX_DEG = 10.0
TURN_DEG = (10.0, 35.0)
PER_POSE = 3  # good frames taken per pose; the kept templates are chosen among them all


@dataclass(frozen=True)
class Pose:
    """One look asked for: ``yaw`` is the accepted range of yaw in degrees (see the module docstring)."""

    name: str
    prompt: str
    yaw: tuple

    def fits(self, yaw: float) -> bool:
        return self.yaw[0] <= yaw <= self.yaw[1]


FRONT = Pose("front", "look straight at the camera", (-FRONT_MAX_DEG, FRONT_MAX_DEG))
LEFT = Pose("left", "turn your head slightly to your left", TURN_DEG)
RIGHT = Pose("right", "turn your head slightly to your right", (-TURN_DEG[1], -TURN_DEG[0]))
NO_GLASSES = Pose("front, no glasses", "take your glasses off and look straight at the camera",
                  (-FRONT_MAX_DEG, FRONT_MAX_DEG))


def pose_plan(glasses: bool = False) -> list[Pose]:
    """The poses asked for: straight, slightly left, slightly right; then, for a person who wears
    glasses (and has them on for the first three), straight without them."""
    return [FRONT, LEFT, RIGHT] + ([NO_GLASSES] if glasses else [])


@dataclass
class PoseStep:
    """One pose of a capture: ``state`` is waiting, asking, done (at least one good frame) or missed."""

    name: str
    prompt: str
    needed: int
    taken: int = 0
    state: str = "waiting"
    why: Optional[str] = None  # why a missed pose was not given


class PoseProgress:
    """Where a guided capture stands, pose by pose. Written by the capture's thread only; a reader
    (another thread) sees each step's plain attributes, never a half-made object."""

    def __init__(self, plan: list, per_pose: int = PER_POSE):
        self.steps = [PoseStep(pose.name, pose.prompt, per_pose) for pose in plan]
        self.current: Optional[int] = None

    def asking(self, index: int) -> None:
        self.current = index
        self.steps[index].state = "asking"

    def took(self, index: int) -> None:
        step = self.steps[index]
        step.taken += 1
        if step.taken >= step.needed:
            step.state = "done"

    def ended(self, index: int, why: Optional[str]) -> None:
        """The capture moves on from this pose: done when it gave a good frame, else missed (``why``)."""
        step = self.steps[index]
        if step.taken > 0:
            step.state = "done"
        else:
            step.state, step.why = "missed", why
        if self.current == index:
            self.current = None

    @property
    def prompt(self) -> Optional[str]:
        """What the person is asked to do now (None between poses and after the last)."""
        return None if self.current is None else self.steps[self.current].prompt

    def missed(self) -> list[str]:
        return [step.name for step in self.steps if step.state == "missed"]


def choose_templates(matrix, count: int) -> list[int]:
    """Rows of ``matrix`` (embeddings) to keep, at most ``count``: the row nearest the mean of all
    (the most typical look), then each time the row farthest from every row kept so far (the look the
    kept ones cover worst). Rows are compared at unit length."""
    rows = np.asarray(matrix, dtype=np.float64)
    if len(rows) <= count:
        return list(range(len(rows)))
    units = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    centre = units.mean(axis=0)
    kept = [int(np.argmin(np.linalg.norm(units - centre, axis=1)))]
    nearest = np.linalg.norm(units - units[kept[0]], axis=1)
    while len(kept) < count:
        nearest[kept] = -1.0
        choice = int(np.argmax(nearest))
        kept.append(choice)
        nearest = np.minimum(nearest, np.linalg.norm(units - units[choice], axis=1))
    return sorted(kept)
