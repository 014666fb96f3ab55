"""Guided enrollment: good frames in, one person's templates out, in one gallery transaction.

``enroll`` takes frames until it has ``count`` that pass every quality gate
(edge.enroll.quality), reporting each rejection with its reason and the
progress, then runs the checks that need the gallery and writes all templates
in one transaction. Nothing is stored unless everything succeeds.

Checks before writing:
  * the new frames show one person: compared every one with every other, they
    do not split into two groups as far apart as two people are (photos of two
    people given by mistake or on purpose; edge.enroll.one_person). A single
    frame unlike all the others is set aside as rejected instead, so a second
    person's frame is never stored and one bad frame does not sink the rest.
    Always refused: ``force`` does not switch this check off;
  * the door would not take them for somebody already enrolled under another
    name (refused unless ``force``): the door's own decision (edge.daemon), on
    the combined probe of the new frames (edge.daemon.tracking.combine), at the
    threshold edge.daemon.decision.door_threshold gives combined probes for the
    gallery's size once this person is in it. The same person under two names
    makes the door's answer depend on the photo; and a face the door would take
    for someone else is one the door cannot tell from them. The question is the
    door's, not a 1:1 comparison of single frames: at 1:1 a frame of nearly every
    newcomer lies near somebody in a gallery of hundreds (121 of 158 LFW people
    were refused that way), while the door, which decides by the 1:N rule, would
    have taken none of them for anyone;
  * with ``append``, they look like the person already enrolled under that name
    (always refused otherwise: remove the person and enroll them again).

Camera frames are also judged by the door's liveness cues when the caller
passes them: a warning, never a refusal, when the door would likely refuse
this person at this camera (edge.enroll.liveness_check).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import numpy as np

from edge.daemon.decision import DEFAULT_STRANGER_RATE, combined_cohort, door_threshold, match_probe
from edge.daemon.tracking import combine
from edge.enroll.liveness_check import frame_note, refusal_warning
from edge.enroll.one_person import check_frames
from edge.enroll.poses import PER_POSE, PoseProgress, choose_templates
from edge.enroll.quality import assess, pose
from edge.exc import DuplicateFaceError, EnrollmentError, GalleryError, ImageError
from edge.gallery.inputs import check_name
from edge.gallery.search import person_distances
from edge.pipeline import MainFace
from edge.sources import FrameStatus, open_source, parse_uri
from edge.verify.api import embedding_space
from edge.vision.image import decode_image, load_image, to_rgb

# Below three templates a single unlucky frame (a blink, a shadow) is a third or
# more of the person; with the default five, two frames may be lost to a
# source that ends early and the enrollment still covers the person.
MIN_GOOD = 3
DEFAULT_COUNT = 5
SAY_EVERY = 5  # frames of the wrong pose between two reminders of the pose asked for
POSE_PATIENCE = 20  # good frames of other poses before one is given up (6 s at the default 0.3 s interval)
# Distance below which two frames are copies of one picture: the same file (or a frozen camera's
# repeated frame) embeds to the same vector up to float rounding (~1e-7), while frames of a live
# camera differ at least by sensor noise.
SAME_PICTURE = 1e-4
FRAMES_ENDED = "no more frames: the time was up or the camera stopped"


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
           report: Callable[[str], None] = quiet, decision: dict | None = None, poses: list | None = None,
           per_pose: int = PER_POSE, progress: PoseProgress | None = None, liveness=None) -> EnrollResult:
    """Capture ``count`` good frames from ``frames`` and enroll them as ``name`` in one transaction.

    ``frames``: Shots, (label, RGB image) pairs, or bare RGB images. Stops at
    ``count`` good frames or when ``frames`` ends; fewer than ``min(min_count,
    count)`` good frames is an EnrollmentError. ``report`` receives one line per
    frame (rejections with their reasons, progress) and per warning. ``force``
    enrolls a face the door would take for someone else (recorded in the audit
    log); nothing else. ``decision``: the daemon's [decision] settings
    (``threshold``, ``stranger_rate``), so the duplicate check asks what this
    kiosk's door would do; None: the defaults. ``poses`` (edge.enroll.poses.pose_plan): ask for
    these poses in turn, ``per_pose`` good frames each, and keep the ``count`` that add the most
    (edge.enroll.poses.choose_templates); a pose not given is a warning. ``progress``: a PoseProgress of
    ``poses`` that the capture keeps up to date, for a screen to show (the console's). ``liveness``: the
    door's cues (edge.liveness.judge.Liveness), to judge each good frame and warn when the door would
    likely refuse this person (edge.enroll.liveness_check); None for photos.
    """
    name = check_name(name)
    if count < 1:
        raise EnrollmentError(f"the number of frames to capture must be at least 1, got {count}")
    needed = min(max(int(min_count), 1), count)
    enrolled = {person["name"]: person["templates"] for person in gallery.list_people()}
    if name in enrolled and not append:
        raise GalleryError(f"{name} is already enrolled ({enrolled[name]} templates); use --append to add templates, "
                           "or remove the person first (`edge-verify gallery remove`)")
    warnings: list[str] = []
    if poses:
        vectors, quality, rejected, seen, missed = capture_poses(pipeline, frames, poses, report, per_pose, progress,
                                                                 liveness)
        if missed:
            warnings.append(f"not covered: {', '.join(missed)} (add them later with --append)")
            report(f"warning: {warnings[-1]}")
    else:
        vectors, quality, rejected, seen = capture(pipeline, frames, count, report, liveness)
    if len(vectors) < needed:
        raise EnrollmentError(shortfall(len(vectors), needed, seen, rejected))
    threshold = float(pipeline.threshold)
    matrix, quality, frames_problem = one_person(np.stack(vectors), quality, threshold, rejected, report)
    if frames_problem is not None:
        raise EnrollmentError(f"{frames_problem}; nothing was stored (only the person enrolling may be in the frames)")
    if len(matrix) < needed:
        raise EnrollmentError(shortfall(len(matrix), needed, seen, rejected))
    if poses and len(matrix) > count:
        kept = choose_templates(matrix, count)
        report(f"keeping the {count} of {len(matrix)} good frames that cover the face best: "
               f"{', '.join(quality[row]['frame'] for row in kept)}")
        matrix, quality = matrix[kept], [quality[row] for row in kept]
    if liveness is not None:
        refusal = refusal_warning(name, [note.get("liveness") for note in quality])
        if refusal is not None:
            warnings.append(refusal)
            report(f"warning: {refusal}")
    details: dict = {}
    names, index, gallery_matrix = gallery.load_matrix(embedding_space(pipeline.manifest))
    if append and name in names:
        problem = append_problem(matrix, names, index, gallery_matrix, name, threshold)
        if problem is not None:
            raise EnrollmentError(f"{problem}; nothing was stored (if {name} now looks very different, remove them "
                                  "and enroll them again)")
    door = duplicate_threshold(pipeline.manifest, len(gallery_matrix) + len(matrix), decision)
    duplicate, other = duplicate_problem(matrix, names, index, gallery_matrix, name, door.threshold,
                                         **door_rule(pipeline.manifest))
    if duplicate is not None:
        if not force:
            raise DuplicateFaceError(f"{duplicate}; nothing was stored (use --force to enroll anyway)")
        warnings.append(f"{duplicate}; enrolled anyway (--force)")
        report(f"warning: {warnings[-1]}")
        details["forced_duplicate"] = gallery.person_ref(other)
    stored = gallery.add_person_templates(name, matrix, embedding_space(pipeline.manifest), actor, quality, append=append,
                                          audit_details=details or None)
    return EnrollResult(name, stored, seen, append and name in enrolled, rejected, quality, warnings)


def capture(pipeline, frames: Iterable, count: int, report, liveness=None) -> tuple[list, list, list, int]:
    """Judge frames until ``count`` pass: (embeddings, quality notes, rejections, frames seen)."""
    vectors, quality, rejected, seen = [], [], [], 0
    for seen, shot in enumerate(as_shots(frames), start=1):
        verdict = judge_shot(pipeline, shot, rejected, report)
        if verdict is None:
            continue
        vector = pipeline.embed(verdict.chip[None])[0]
        copy = same_picture(vector, vectors)
        if copy is not None:
            reason = f"the same picture as good frame {copy + 1}: one template per picture"
            rejected.append(Rejection(shot.label, [reason]))
            report(f"{shot.label}: rejected: {reason}")
            continue
        vectors.append(vector)
        quality.append({"frame": shot.note or shot.label, **verdict.measures, **live_note(liveness, shot, verdict)})
        report(f"{shot.label}: good ({len(vectors)}/{count} good frames)")
        if len(vectors) >= count:
            break
    return vectors, quality, rejected, seen


def judge_shot(pipeline, shot, rejected: list, report: Callable[[str], None]):
    """The quality verdict of a good frame, or None (the shot is added to ``rejected`` and said why)."""
    if shot.image is None:
        rejected.append(Rejection(shot.label, [shot.problem or "no image"]))
        report(f"{shot.label}: skipped: {shot.problem}")
        return None
    verdict = assess(pipeline, shot.image)
    if not verdict.ok:
        rejected.append(Rejection(shot.label, verdict.reasons))
        report(f"{shot.label}: rejected: {'; '.join(verdict.reasons)}")
        return None
    return verdict


def capture_poses(pipeline, shots: Iterable, plan: list, report: Callable[[str], None], per_pose: int = PER_POSE,
                  progress: PoseProgress | None = None, liveness=None) -> tuple[list, list, list, int, list]:
    """Take ``per_pose`` good frames of each pose in turn from ``shots`` (edge.enroll.capture.Shot).

    Returns (embeddings, quality notes with "pose", rejections, frames seen, poses missed). A good frame
    of another pose is not kept (the person is told which way to turn); after POSE_PATIENCE of them
    the pose is given up and the next one asked for, so a person who cannot turn, or a recording, is
    still enrolled with the looks it shows. The source ending (the enrollment's time is up, or the
    camera stopped) leaves the remaining poses missed. ``progress`` (a PoseProgress of ``plan``) follows
    each pose asked, each good frame taken and each pose given up.
    """
    vectors, quality, rejected, seen, missed = [], [], [], 0, []
    shots = as_shots(shots)
    progress = progress if progress is not None else PoseProgress(plan, per_pose)
    ended = False
    for number, wanted in enumerate(plan, start=1):
        if ended:
            missed.append(wanted.name)
            progress.ended(number - 1, FRAMES_ENDED)
            continue
        progress.asking(number - 1)
        report(f"pose {number} of {len(plan)}: {wanted.prompt}")
        taken, waited = 0, 0
        while taken < per_pose and waited < POSE_PATIENCE:
            shot = next(shots, None)
            if shot is None:
                ended = True
                break
            seen += 1
            verdict = judge_shot(pipeline, shot, rejected, report)
            if verdict is None:
                continue
            yaw = pose(verdict.face.landmarks)[0]
            if not wanted.fits(yaw):
                waited += 1
                if waited % SAY_EVERY == 1:
                    report(f"{shot.label}: yaw {yaw:+.0f} deg, not yet: {wanted.prompt} "
                           f"({wanted.yaw[0]:+.0f} to {wanted.yaw[1]:+.0f} deg)")
                continue
            vector = pipeline.embed(verdict.chip[None])[0]
            copy = same_picture(vector, vectors)
            if copy is not None:
                rejected.append(Rejection(shot.label, [f"the same picture as good frame {copy + 1}"]))
                continue
            vectors.append(vector)
            quality.append({"frame": shot.note or shot.label, "pose": wanted.name, **verdict.measures,
                            **live_note(liveness, shot, verdict)})
            taken += 1
            progress.took(number - 1)
            report(f"{shot.label}: good, {wanted.name} ({taken}/{per_pose})")
        why = None
        if taken == 0:
            missed.append(wanted.name)
            why = FRAMES_ENDED if ended else f"{waited} good frames, none {wanted.name}"
            report(f"no frame of {wanted.name} ({why}): going on without it")
        progress.ended(number - 1, why)
    return vectors, quality, rejected, seen, missed


def live_note(liveness, shot: Shot, verdict) -> dict:
    """{"liveness": the door's frame cues on this good frame} when asked, else nothing."""
    if liveness is None:
        return {}
    return {"liveness": frame_note(liveness, shot.image, MainFace(verdict.face, verdict.chip[None]))}


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

def one_person(matrix: np.ndarray, quality: list, threshold: float, rejected: list,
               report) -> tuple[np.ndarray, list, str | None]:
    """(rows to enroll, their quality notes, problem): frames of someone else are set aside and
    reported as rejected; two groups of frames are the problem (the enrollment is refused)."""
    verdict = check_frames(matrix, threshold)
    for row, distance, limit in verdict.odd:
        label = quality[row]["frame"]
        reason = f"not the same person as the other good frames: {distance:.3f} from them on average > {limit:.3f}"
        rejected.append(Rejection(label, [reason]))
        report(f"{label}: rejected: {reason}")
    return matrix[verdict.keep], [quality[row] for row in verdict.keep], verdict.problem


def duplicate_threshold(manifest: dict, n_templates: int, decision: dict | None = None):
    """The door's threshold for combined probes at ``n_templates`` (edge.daemon.decision.door_threshold)
    with the daemon's [decision] ``threshold`` and ``stranger_rate`` (defaults when ``decision`` is None)."""
    decision = decision or {}
    return door_threshold(manifest, n_templates, decision.get("threshold"),
                          decision.get("stranger_rate", DEFAULT_STRANGER_RATE), combined=True)


def door_rule(manifest: dict | None) -> dict:
    """How the door compares a combined probe under this embedding ``manifest``: the ``unit`` and ``cohort``
    arguments of :func:`duplicate_problem` (none when the manifest is not known: unit length, no cohort)."""
    if manifest is None:
        return {}
    return {"unit": manifest.get("embedding_normalization") == "l2", "cohort": combined_cohort(manifest)}


def duplicate_problem(matrix, names, index, gallery_matrix, name: str, threshold: float,
                      unit: bool = True, cohort=None) -> tuple[str | None, str | None]:
    """(message, other person) when the door would take the new frames for someone enrolled under
    another name: their combined probe (edge.daemon.tracking.combine) matches that person at
    ``threshold`` (the door's, :func:`duplicate_threshold`). ``unit``: the embeddings are compared
    at unit length (the manifest's "embedding_normalization": "l2"). ``cohort``: the door's
    (edge.daemon.decision.combined_cohort), so the distance is the adjusted one the door compares."""
    others = [position for position, person in enumerate(names) if person != name]
    if not others or len(matrix) == 0:
        return None, None
    keep = np.isin(index, others)
    other_names = [names[position] for position in others]
    remap = {position: new for new, position in enumerate(others)}
    other_index = np.array([remap[position] for position in index[keep]], dtype=np.intp)
    observation = match_probe(gallery_matrix[keep], other_index, other_names, combine(matrix, unit=unit), threshold,
                              cohort)
    if observation.person is None:
        return None, None
    frames = f"{len(matrix)} frame{'s' if len(matrix) != 1 else ''}"
    return (f"the door would take this face for {observation.person}, who is already enrolled (the {frames} combined "
            f"are {observation.distance:.3f} from them, within the door's threshold {threshold:.3f}): the same "
            "person under another name?"), observation.person


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


def upload_shots(photos) -> Iterator[Shot]:
    """Photos sent as files to a console, (file name, bytes) each; an unreadable one becomes a Shot with its
    problem, as with :func:`image_shots`. The file name is shown, never stored: notes say "photo N"."""
    for number, (filename, data) in enumerate(photos, start=1):
        label = filename or f"photo {number}"
        try:
            yield Shot(label, decode_image(data, label), note=f"photo {number}")
        except ImageError as error:
            yield Shot(label, None, str(error).removeprefix(f"{label}: "), note=f"photo {number}")


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
