"""Guided enrollment: good frames in, one person's templates out, in one gallery transaction.

``enroll`` takes frames until it has ``count`` that pass every quality gate
(edge.enroll.quality), reporting each rejection with its reason and the
progress, then runs the checks that need the gallery and writes all templates
in one transaction. Nothing is stored unless everything succeeds.

Checks before writing (each refused unless ``force``):
  * the new frames show one person: compared every one with every other, they
    do not split into two groups as far apart as two people are (photos of two
    people given by mistake or on purpose; edge.enroll.one_person). A single
    frame unlike all the others is set aside as rejected instead, so a second
    person's frame is never stored and one bad frame does not sink the rest;
  * they match nobody enrolled under another name at the 1:1 threshold (the same
    person enrolled twice would make the door's answer depend on the photo);
  * with ``append``, they match the person already enrolled under that name.
The 1:1 threshold is used here, not the stricter 1:N one, because a near-miss is
exactly what an installer must be told about.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import numpy as np

from edge.enroll.one_person import check_frames
from edge.enroll.quality import assess
from edge.exc import DuplicateFaceError, EnrollmentError, GalleryError, ImageError
from edge.gallery.inputs import check_name
from edge.gallery.search import person_distances, search
from edge.sources import FrameStatus, open_source, parse_uri
from edge.verify.api import embedding_space
from edge.vision.image import load_image, to_rgb

# Below three templates a single unlucky frame (a blink, a shadow) is a third or
# more of the person; with the default five, two frames may be lost to a
# source that ends early and the enrollment still covers the person.
MIN_GOOD = 3
DEFAULT_COUNT = 5
# Distance below which two frames are copies of one picture: the same file (or a frozen camera's
# repeated frame) embeds to the same vector up to float rounding (~1e-7), while frames of a live
# camera differ at least by sensor noise.
SAME_PICTURE = 1e-4


@dataclass(frozen=True)
class Shot:
    """One frame offered for enrollment: ``image`` RGB uint8, or None with ``problem`` saying why."""

    label: str
    image: np.ndarray | None
    problem: str | None = None
    note: str | None = None  # how the stored quality note names the frame, when the label must not be kept


@dataclass
class Rejection:
    label: str
    reasons: list[str]


@dataclass
class EnrollResult:
    """What was stored (``templates`` rows for ``name``) and what was turned away."""

    name: str
    templates: int
    frames: int
    appended: bool
    rejected: list = field(default_factory=list)
    quality: list = field(default_factory=list)
    warnings: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"name": self.name, "templates": self.templates, "frames": self.frames, "appended": self.appended,
                "rejected": [{"frame": item.label, "reasons": item.reasons} for item in self.rejected],
                "quality": self.quality, "warnings": self.warnings}


def quiet(message: str) -> None:
    """The default reporter: say nothing."""


def enroll(name: str, pipeline, gallery, frames: Iterable, count: int = DEFAULT_COUNT, force: bool = False,
           append: bool = False, actor: str | None = None, min_count: int = MIN_GOOD,
           report: Callable[[str], None] = quiet) -> EnrollResult:
    """Capture ``count`` good frames from ``frames`` and enroll them as ``name`` in one transaction.

    ``frames``: Shots, (label, RGB image) pairs, or bare RGB images. Stops at
    ``count`` good frames or when ``frames`` ends; fewer than ``min(min_count,
    count)`` good frames is an EnrollmentError. ``report`` receives one line per
    frame (rejections with their reasons, progress) and per warning.
    """
    name = check_name(name)
    if count < 1:
        raise EnrollmentError(f"the number of frames to capture must be at least 1, got {count}")
    needed = min(max(int(min_count), 1), count)
    enrolled = {person["name"]: person["templates"] for person in gallery.list_people()}
    if name in enrolled and not append:
        raise GalleryError(f"{name} is already enrolled ({enrolled[name]} templates); use --append to add templates, "
                           "or remove the person first (`edge-verify gallery remove`)")
    vectors, quality, rejected, seen = capture(pipeline, frames, count, report)
    if len(vectors) < needed:
        raise EnrollmentError(shortfall(len(vectors), needed, seen, rejected))
    threshold = float(pipeline.threshold)
    matrix, quality, frames_problem = one_person(np.stack(vectors), quality, threshold, force, rejected, report)
    if len(matrix) < needed:
        raise EnrollmentError(shortfall(len(matrix), needed, seen, rejected))
    warnings: list[str] = []
    details: dict = {}
    problems = [("frames", frames_problem)]
    names, index, gallery_matrix = gallery.load_matrix(embedding_space(pipeline.manifest))
    duplicate, other = duplicate_problem(matrix, names, index, gallery_matrix, name, threshold)
    problems.append(("duplicate", duplicate))
    if append and name in names:
        problems.append(("append", append_problem(matrix, names, index, gallery_matrix, name, threshold)))
    for kind, problem in problems:
        if problem is None:
            continue
        if not force:
            error = DuplicateFaceError if kind == "duplicate" else EnrollmentError
            raise error(f"{problem}; nothing was stored (use --force to enroll anyway)")
        warnings.append(f"{problem}; enrolled anyway (--force)")
        report(f"warning: {warnings[-1]}")
        details[f"forced_{kind}"] = gallery.person_ref(other) if kind == "duplicate" else problem
    stored = gallery.add_person_templates(name, matrix, embedding_space(pipeline.manifest), actor, quality, append=append,
                                          audit_details=details or None)
    return EnrollResult(name, stored, seen, append and name in enrolled, rejected, quality, warnings)


def capture(pipeline, frames: Iterable, count: int, report) -> tuple[list, list, list, int]:
    """Judge frames until ``count`` pass: (embeddings, quality notes, rejections, frames seen)."""
    vectors, quality, rejected, seen = [], [], [], 0
    for seen, shot in enumerate(as_shots(frames), start=1):
        if shot.image is None:
            rejected.append(Rejection(shot.label, [shot.problem or "no image"]))
            report(f"{shot.label}: skipped: {shot.problem}")
            continue
        verdict = assess(pipeline, shot.image)
        if not verdict.ok:
            rejected.append(Rejection(shot.label, verdict.reasons))
            report(f"{shot.label}: rejected: {'; '.join(verdict.reasons)}")
            continue
        vector = pipeline.embed(verdict.chip[None])[0]
        copy = same_picture(vector, vectors)
        if copy is not None:
            reason = f"the same picture as good frame {copy + 1}: one template per picture"
            rejected.append(Rejection(shot.label, [reason]))
            report(f"{shot.label}: rejected: {reason}")
            continue
        vectors.append(vector)
        quality.append({"frame": shot.note or shot.label, **verdict.measures})
        report(f"{shot.label}: good ({len(vectors)}/{count} good frames)")
        if len(vectors) >= count:
            break
    return vectors, quality, rejected, seen


def same_picture(vector: np.ndarray, kept: list) -> int | None:
    """The kept frame this one is a copy of (the same file twice, a frozen camera), or None.

    Any two real frames differ by sensor noise at least; copies embed to the same vector."""
    for number, other in enumerate(kept):
        if float(np.linalg.norm(np.asarray(vector) - np.asarray(other))) < SAME_PICTURE:
            return number
    return None


def as_shots(frames: Iterable) -> Iterator[Shot]:
    for number, item in enumerate(frames, start=1):
        if isinstance(item, Shot):
            yield item
        elif isinstance(item, tuple) and len(item) == 2:
            yield Shot(str(item[0]), item[1])
        else:
            yield Shot(f"frame {number}", item)


def shortfall(good: int, needed: int, seen: int, rejected: list) -> str:
    if seen == 0:
        return "no frames came from the source; nothing was stored"
    counts: dict[str, int] = {}
    for item in rejected:
        for reason in item.reasons:
            key = reason.split(":")[0]
            counts[key] = counts.get(key, 0) + 1
    why = ", ".join(f"{reason} ({number})" for reason, number in sorted(counts.items(), key=lambda kv: -kv[1]))
    return (f"only {good} good frame{'s' if good != 1 else ''} of {seen} (at least {needed} needed); "
            f"rejected: {why or 'none'}; nothing was stored")


# ---- checks against the gallery ------------------------------------------------------------------

def one_person(matrix: np.ndarray, quality: list, threshold: float, force: bool, rejected: list,
               report) -> tuple[np.ndarray, list, str | None]:
    """(rows to enroll, their quality notes, problem): frames of someone else are set aside and
    reported as rejected; two groups of frames are a problem. With ``force`` every frame is kept
    and anything odd becomes the problem (a warning)."""
    verdict = check_frames(matrix, threshold)
    odd = [(quality[row]["frame"], f"not the same person as the other good frames: {distance:.3f} from them on "
                                   f"average > {limit:.3f}") for row, distance, limit in verdict.odd]
    if force:
        return matrix, quality, verdict.problem or ("; ".join(f"good frame {row + 1}: {reason}" for (row, _, _), (_, reason)
                                                              in zip(verdict.odd, odd)) or None)
    for label, reason in odd:
        rejected.append(Rejection(label, [reason]))
        report(f"{label}: rejected: {reason}")
    return matrix[verdict.keep], [quality[row] for row in verdict.keep], verdict.problem


def duplicate_problem(matrix, names, index, gallery_matrix, name: str,
                      threshold: float) -> tuple[str | None, str | None]:
    """(message, other person) when the new frames match someone enrolled under another name."""
    others = [position for position, person in enumerate(names) if person != name]
    if not others:
        return None, None
    keep = np.isin(index, others)
    other_names = [names[position] for position in others]
    remap = {position: new for new, position in enumerate(others)}
    other_index = np.array([remap[position] for position in index[keep]], dtype=np.intp)
    hits: dict[str, list[float]] = {}
    for vector in matrix:
        match = search(gallery_matrix[keep], other_index, other_names, vector)
        if match.person is not None and match.distance <= threshold:
            hits.setdefault(match.person, []).append(match.distance)
    if not hits:
        return None, None
    person = max(hits, key=lambda key: (len(hits[key]), -min(hits[key])))
    return (f"this face matches {person}, who is already enrolled (distance {min(hits[person]):.3f} <= {threshold:g} "
            f"on {len(hits[person])} of {len(matrix)} frames): the same person under another name?"), person


def append_problem(matrix, names, index, gallery_matrix, name: str, threshold: float) -> str | None:
    """With --append: do the new frames look like the person already enrolled as ``name``?"""
    position = names.index(name)
    rows = gallery_matrix[index == position]
    nearest = [float(person_distances(rows, np.zeros(len(rows), np.intp), 1, vector)[0]) for vector in matrix]
    if np.median(nearest) > threshold:
        return (f"the new frames do not look like the enrolled {name} (median distance {np.median(nearest):.3f} "
                f"> {threshold:g}): another person under this name?")
    return None


# ---- frame sources ------------------------------------------------------------------------------------

def image_shots(paths) -> Iterator[Shot]:
    """Photos from files; an unreadable one becomes a Shot with its problem (reported, not fatal)."""
    for number, path in enumerate(paths, start=1):
        # The path is shown to the installer, never stored: quality notes say "photo N".
        try:
            yield Shot(str(path), load_image(path), note=f"photo {number}")
        except ImageError as error:
            yield Shot(str(path), None, str(error).removeprefix(f"{path}: "), note=f"photo {number}")


def camera_shots(uri: str, timeout_s: float = 30.0, interval_s: float = 0.3, read_timeout_s: float = 2.0,
                 clock=time.monotonic) -> Iterator[Shot]:
    """Frames from a camera or video (edge.sources URI), at most one per ``interval_s``.

    Spacing the frames makes the templates differ a little (pose, expression),
    which covers the person better than five copies of one moment. A video file
    is played at its own frame rate so that the spacing means the same as on a
    live camera; a folder of stills (dir://) is taken whole. Ends when the
    source ends or after ``timeout_s`` seconds.
    """
    scheme = parse_uri(uri).scheme
    rate = "realtime" if scheme == "file" else None
    if scheme == "dir":
        interval_s = 0.0  # distinct stills, read as fast as they load: none may be skipped
    deadline = clock() + timeout_s
    last = -float("inf")
    with open_source(uri, timeout=read_timeout_s, rate=rate) as source:
        while clock() < deadline:
            frame = source.read()
            if frame.status is FrameStatus.END:
                if source.failure:
                    yield Shot(f"frame {frame.index}", None, f"camera gave up: {source.failure}")
                return
            label = f"frame {frame.index}" if frame.index >= 0 else "camera"
            if frame.status is not FrameStatus.OK:
                yield Shot(label, None, f"camera {frame.status.value}: {frame.detail}")
                continue
            if frame.timestamp - last < interval_s:
                continue
            last = frame.timestamp
            try:
                yield Shot(label, to_rgb(frame.image, source=f"{uri} {label}"))
            except ImageError as error:
                yield Shot(label, None, str(error))
