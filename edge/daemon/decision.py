"""When does the door open? Pure logic, no camera, no GPIO, no clock of its own.

Per frame the daemon follows the main face (at least ``min_face_px``) on its
track (edge.daemon.tracking) and makes one :class:`Observation` from the track's
*combined probe*, the quality-weighted mean of the unit embeddings of its recent
frames: the probe *matches* a person only when its distance is at or below the
threshold for combined probes. A frame without a usable face, an unknown face, a
broken (NaN) embedding or a failed read all observe "nobody".

The door opens when the combined probe matches person P **and** it holds at least
``min_frames`` frames of that face (default 3: at 15 fps 0.2 s; one stray frame
cannot open the door, and the threshold was measured on probes of at least that
many frames) **and** K of the track's last N decisions named P **and** P is not
in their cooldown (default 5 s after P's last unlock, so a person standing at the
door does not re-trigger the pulse every frame). Unknown faces are reported,
never let in.

K of N (default 1 of 1) was the guard of per-frame deciding (3 of 5 frames). On
combined probes it no longer earns its place: successive decisions of one track
share most of their frames, so asking for 2 or 3 of them in a row let in the very
same strangers on the LFW door clips (benchmarks/door_measure.py) and only made
staff wait a frame or two longer. ``min_frames`` is what now keeps a single frame
from deciding. K and N stay settable (per track) for a site that wants more.

The threshold (:func:`door_threshold`)
-------------------------------------
A stranger at the door is compared with every template in the gallery, so the
1:1 threshold stored in the engine manifest lets in more strangers as the gallery
grows (see edge/gallery/threshold.py). When the manifest carries an impostor
tail (``count`` impostor pairs measured offline and the ``distances`` of the
smallest of them, sorted), the threshold is the 1:N rule: the largest distance t
with ``1 - (1 - F(t))^n_templates <= target_rate`` (F: share of impostor
distances <= t), never above the manifest's 1:1 threshold. Two tails exist:
``impostor_tail`` (one photo against one template: for single probes) and
``combined_impostor_tail`` (for combined probes: one stranger's whole approach
against one template, the least distance over every combined probe the daemon
decides on during it; benchmarks/door_calibrate.py), so the target is strangers
let in per approach, not per frame. Without a combined tail combined probes get
the single-photo threshold and the daemon warns: combined probes lie nearer
everybody than single photos, so that threshold lets in more strangers than the
target. Without any tail only the 1:1 threshold is known; it is used as it is and
the daemon warns that the stranger rate then grows with the gallery.

Cohort normalisation (edge.gallery.cohort): when the manifest ships a cohort
and ``cohort_combined_impostor_tail``, a combined probe is judged by its
*adjusted* distance, which weighs how crowded the probe's and the template's
neighbourhoods are, against the threshold from that tail: the plain search's
two nearest people are compared by the adjusted distances of their nearest
templates, and the nearer of them is the match (the tail was measured as the
least adjusted distance over all templates, so looking at two can only let in
fewer strangers than it predicts). On the LFW door clips this let in more staff
and fewer strangers than the plain distance (benchmarks/door_measure.py; figures
in the README). Single-frame probes keep the plain distance and the single-photo
tail. A threshold set in the config replaces all of them, for a measured reason
only (compared with the adjusted distance where a cohort is used; one looser
than the 1:1 threshold is refused unless allowed explicitly). `edge-verify identify`, `enroll` and `gallery show` take
the threshold from the same function, so they say what the door would do.
"""
from __future__ import annotations

import math
from collections import OrderedDict, deque
from dataclasses import dataclass, replace
from typing import Callable, Optional, Union

import numpy as np

from edge.gallery.cohort import COHORT_KEY, COHORT_TAIL, Cohort
from edge.gallery.search import PreparedMatrix, plain, search
from edge.gallery.threshold import COMBINED_TAIL, OpenSetChoice, choose_threshold, impostor_tail, manifest_entry

DEFAULT_K = 1
DEFAULT_N = 1
DEFAULT_MIN_FRAMES = 3
DEFAULT_COOLDOWN_S = 5.0
DEFAULT_STRANGER_RATE = 1e-3
CONFIGURED = "set in the config"  # OpenSetChoice.rule of a [decision] threshold
NO_COMBINED_TAIL = ("the embedding manifest has no combined_impostor_tail: the door's combined probes are judged at the "
                    "single-photo threshold, which lets in more strangers per approach than stranger_rate; rebuild the "
                    "engine (`edge-verify models fetch --force`) for the measured combined figures")


# -- one frame ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Observation:
    """What one frame showed. ``person`` is set only for a match within the threshold;
    ``nearest`` is the nearest enrolled person whatever the distance."""

    person: Optional[str]
    reason: str  # "match", "unknown", "bad embedding", "no face", "face too small", "unusable frame", "no frame"
    distance: float = math.nan
    margin: float = math.nan
    face: bool = False  # a face big enough to judge was seen (these get events)
    nearest: Optional[str] = None

    @classmethod
    def nothing(cls, reason: str) -> "Observation":
        return cls(None, reason)


def match_probe(matrix: np.ndarray | PreparedMatrix, person_index: np.ndarray, names: list, probe,
                threshold: float, cohort: Optional[Cohort] = None) -> Observation:
    """Search ``probe`` in the gallery (``matrix`` plain or prepared: edge.gallery.search.prepare); a match
    needs a finite distance <= ``threshold``.

    With a ``cohort`` (:func:`combined_cohort`) the nearest person's and the runner-up's nearest templates
    are compared by their adjusted distances (edge.gallery.cohort): the person is whichever of the two is
    nearer adjusted, the distance theirs, the margin to the other one. The spreads of the probe and of
    those two templates are measured here (2,608 cohort faces: about 0.3 ms), so nothing per
    template is kept or recomputed when the gallery changes."""
    probe = np.asarray(probe, dtype=np.float32).reshape(-1)
    if probe.size == 0 or not np.all(np.isfinite(probe)):
        return Observation(None, "bad embedding", face=True)
    best = search(matrix, person_index, names, probe)
    person, distance, margin = best.person, best.distance, best.margin
    if cohort is not None and person is not None and math.isfinite(distance):
        person, distance, margin = adjusted_nearest(cohort, best, probe, plain(matrix))
    if person is not None and math.isfinite(distance) and distance <= threshold:
        return Observation(person, "match", distance, margin, face=True, nearest=person)
    return Observation(None, "unknown", distance, margin, face=True, nearest=person)


def adjusted_nearest(cohort: Cohort, best, probe: np.ndarray, matrix: np.ndarray) -> tuple:
    """(person, adjusted distance, adjusted margin) from the plain search's two nearest people
    (edge.gallery.search.Match): the one nearer once adjusted; a broken template matches nobody."""
    if best.row < 0:
        return best.person, math.nan, math.nan
    rows = [best.row] + ([best.second_row] if best.second_row >= 0 and math.isfinite(best.second_distance) else [])
    spreads = cohort.spreads(np.vstack([probe[None], np.asarray(matrix[rows], dtype=np.float32)]))
    first = float(cohort.adjust(best.distance, spreads[0], spreads[1]))
    if len(rows) == 1:
        return best.person, first, best.margin
    second = float(cohort.adjust(best.second_distance, spreads[0], spreads[2]))
    if second < first:
        return best.second_person, second, first - second
    return best.person, first, second - first


ADJUSTED = " (cohort-adjusted distances)"  # how a threshold for adjusted distances is labelled wherever it is shown


def uses_cohort(manifest: dict) -> bool:
    """Whether combined probes are judged by cohort-adjusted distances: only a manifest that ships both the
    cohort and the impostor tail of adjusted distances does (either alone is unused). Cheap: it does not
    decode the cohort, so the threshold can be chosen at every gallery reload without that cost."""
    return manifest_entry(manifest, COHORT_KEY) is not None and impostor_tail(manifest, COHORT_TAIL) is not None


def combined_cohort(manifest: dict) -> Optional[Cohort]:
    """The cohort combined probes are adjusted with (edge.gallery.cohort), or None (:func:`uses_cohort`)."""
    return Cohort.from_manifest(manifest) if uses_cohort(manifest) else None


def door_threshold(manifest: dict, n_templates: int, configured: Optional[float] = None,
                   stranger_rate: float = DEFAULT_STRANGER_RATE, combined: bool = False) -> OpenSetChoice:
    """The distance threshold the door decides with for a gallery of ``n_templates``, and how it was
    chosen: ``configured`` ([decision] threshold) when set, else the 1:N rule on the embedding
    ``manifest`` at ``stranger_rate`` ([decision] stranger_rate; edge.gallery.threshold.choose_threshold).

    ``combined``: the threshold for combined probes (a track's frames, or several photos given as one
    attempt), from the manifest's ``cohort_combined_impostor_tail`` when it ships a cohort (the adjusted
    distances :func:`match_probe` compares with a cohort), else from its ``combined_impostor_tail``. A
    manifest without either gives the single-photo threshold with a note saying it does not hold the
    rate: averaging a stranger's frames takes out what made them differ from everybody, so combined
    probes come nearer other people's templates than single photos do (on LFW, 790 templates: 0.261
    for combined probes, 0.287 for single photos of the same people; benchmarks/door_calibrate.py).
    """
    if configured is not None:
        return OpenSetChoice(float(configured), max(int(n_templates), 1), stranger_rate,
                             float(manifest["threshold"]), CONFIGURED)
    if not combined:
        return choose_threshold(manifest, n_templates, stranger_rate)
    if uses_cohort(manifest):
        return choose_threshold(manifest, n_templates, stranger_rate, tail_key=COHORT_TAIL)
    if impostor_tail(manifest, COMBINED_TAIL) is not None:
        return choose_threshold(manifest, n_templates, stranger_rate, tail_key=COMBINED_TAIL)
    single = choose_threshold(manifest, n_templates, stranger_rate)
    return replace(single, note=f"{single.note}; {NO_COMBINED_TAIL}" if single.note else NO_COMBINED_TAIL)


def combining_mismatch(manifest: dict, min_frames: int, window: int) -> Optional[str]:
    """Why the combined threshold may not hold the stranger rate with these settings, or None: the
    manifest's combined tail was measured on probes of at least its ``min_frames`` frames, combining
    the latest ``window``; fewer frames per decision give a stranger more, noisier tries."""
    tail = manifest_entry(manifest, COMBINED_TAIL) or {}
    measured = tail.get("min_frames"), tail.get("window")
    if None in measured or (int(min_frames), int(window)) == tuple(int(value) for value in measured):
        return None
    return (f"the combined threshold was measured with min_frames {measured[0]} and combine_frames {measured[1]}; "
            f"this door decides with {min_frames} and {window}, so its stranger rate is not the one measured")


# -- many frames --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Verdict:
    """The decision for one frame. ``track``: the id of the face's track (None when decided per frame);
    ``frames_combined``: frames in the probe that was judged (1 for a single frame)."""

    person: Optional[str]
    unlock: bool
    frames_agreed: int
    reason: str  # "unlock", "combining", "agreeing", "cooldown", "not live", or the observation's reason
    distance: float = math.nan
    margin: float = math.nan
    track: Optional[int] = None
    frames_combined: int = 0


Veto = Union[str, Callable[[], Optional[str]], None]  # a reason, a check that may give one, or none


def vetoed(veto: "Veto") -> Optional[str]:
    """The reason a ``veto`` refuses an unlock, or None: the veto itself, or, when it is a check (a
    callable), what it returns. A check runs only for a frame that would otherwise unlock, so it may
    cost what no frame could pay every time (the daemon's whole-frame search of a followed frame)."""
    return veto() if callable(veto) else veto


class Decider:
    """When a match opens the door: enough frames combined, K of the last N decisions agreeing, per-person
    cooldown. Times are seconds on any monotonic clock.

    Decisions are kept per ``track`` (edge.daemon.tracking): the agreement of one face never counts
    for another. ``min_frames``: the frames a track's combined probe must hold before it may unlock.
    Observations without a track share one window (per-frame deciding, as before tracking).
    """

    TRACKS_KEPT = 16  # agreement windows of recent tracks; older tracks have left

    def __init__(self, k: int = DEFAULT_K, n: int = DEFAULT_N, cooldown_s: float = DEFAULT_COOLDOWN_S,
                 min_frames: int = 1):
        if not (isinstance(k, int) and isinstance(n, int) and 1 <= k <= n):
            raise ValueError(f"need 1 <= k <= n, got k={k!r}, n={n!r}")
        if not (math.isfinite(cooldown_s) and cooldown_s >= 0):
            raise ValueError(f"cooldown must be >= 0 s, got {cooldown_s!r}")
        if not (isinstance(min_frames, int) and min_frames >= 1):
            raise ValueError(f"min_frames must be a whole number >= 1, got {min_frames!r}")
        self.k, self.n, self.cooldown_s, self.min_frames = k, n, float(cooldown_s), min_frames
        self._windows: OrderedDict = OrderedDict()
        self._last_unlock: dict = {}

    def observe(self, observation: Observation, now: float, live: bool = True, veto: "Veto" = None,
                track: Optional[int] = None, frames: int = 1) -> Verdict:
        """``live`` False (the liveness check failed) turns an unlock into "not live",
        without starting the cooldown: the real person may still be let in next frame.
        ``veto`` (a reason, e.g. the site's offline policy) refuses an unlock the same way; it may be a
        check, called only when everything else would unlock (:func:`vetoed`).
        ``track``: the face's track id (None: per-frame deciding); ``frames``: frames combined
        in the probe behind ``observation``."""
        window = self._window(track)
        window.append(observation.person)
        person = observation.person
        if person is None:
            return Verdict(None, False, 0, observation.reason, observation.distance, observation.margin, track, frames)
        agreed = sum(1 for seen in window if seen == person)
        if frames < self.min_frames:
            reason, unlock = "combining", False
        elif agreed < self.k:
            reason, unlock = "agreeing", False
        elif now - self._last_unlock.get(person, -math.inf) < self.cooldown_s:
            reason, unlock = "cooldown", False
        elif not live:
            reason, unlock = "not live", False
        elif (refused := vetoed(veto)) is not None:
            reason, unlock = refused, False
        else:
            reason, unlock = "unlock", True
            self._last_unlock[person] = now
        return Verdict(person, unlock, agreed, reason, observation.distance, observation.margin, track, frames)

    def interrupt(self) -> None:
        """A read that brought no frame breaks any run of agreement."""
        for window in self._windows.values():
            window.append(None)

    def forget(self) -> None:
        """Drop the windows (the gallery changed: old matches may name people no longer enrolled)."""
        self._windows.clear()

    def in_cooldown(self, person: str, now: float) -> bool:
        return now - self._last_unlock.get(person, -math.inf) < self.cooldown_s

    def _window(self, track: Optional[int]) -> deque:
        window = self._windows.get(track)
        if window is None:
            window = self._windows[track] = deque(maxlen=self.n)
            while len(self._windows) > self.TRACKS_KEPT:
                self._windows.popitem(last=False)
        else:
            self._windows.move_to_end(track)
        return window
