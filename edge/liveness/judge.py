"""The enabled liveness cues, judged together per frame and per tracked face.

One rule for `edge-verify liveness` and the daemon: a face is live only when
no enabled cue calls it an attack, and the verdict names the cue that refused.

* frame cues (``texture``, ``cnn``, ``context``; ``colour`` when an attributes
  engine is used): each frame's score joins the track's window of the last ``window``
  frames; the cue refuses when the window's mean reaches its threshold (for
  ``colour``: when the mean probability of `live` stays below its threshold).
  A track is live only once its window is full: one lucky frame of a photo
  cannot open the door alone. A cue that refuses a full window refuses the
  rest of the track: a photo caught once does not get in on the frames the
  cue then misses;
* ``motion``: the track's face patches (edge.liveness.motion). Once it calls the
  track an attack, the track stays refused. With the active check on, a track is
  live only after the motion cue has seen a head's parallax (the kiosk asks for
  a small head turn).

A *settling* judge (``new_track(settle=True)``, the daemon's) stops measuring
what can no longer change its track's verdict: every cue once the track is
refused for good (a kept call), the motion cue's flows once it has called the
track live (its count of a head's pairs only grows). Its verdicts are those of
a judge that measures everything; what it no longer reports is which other cues
would also have called the later frames attacks (`edge-verify liveness` shows
that: it measures everything).

A track is the main face of consecutive frames whose boxes overlap (``Tracks``):
a face that disappears, or jumps to another place, starts a new track. A
tracker that knows more can feed ``TrackJudge`` directly: it only needs each
frame (RGB) with its MainFace (box, landmarks, chip).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

from edge.exc import ConfigError, NoAttributesEngine, NoLivenessCheck, NoLivenessModel
from edge.liveness import cnn, context, motion, texture
from edge.liveness.attributes import check_same_chips, live_scores, live_threshold, load_attributes_engine
from edge.liveness.model import DEFAULT_WINDOW, cnn_network, model_path, read_model, texture_head, train_hint

COLOUR = "colour"
CUES = ("texture", "cnn", "context", "motion", COLOUR)  # the order a verdict names refusing cues in
FRAME_CUES = ("texture", "cnn", "context")
CHIP_CUES = ("texture", "cnn")  # the frame cues that read the face's grey chip (texture.grey_chip)
MIN_OVERLAP = 0.3  # intersection over union of consecutive boxes of one track


@dataclass(frozen=True)
class LiveVerdict:
    """What the liveness cues say about a track after its latest frame."""

    live: bool
    refused_by: Optional[str]  # the first cue (in CUES order) that refused; None when live or still counting
    reason: str  # "live", "attack", "attack, called earlier in this track", "too few frames", "waiting for a head turn", …
    scores: dict  # per cue: window mean attack score (colour: mean probability of live); motion: its call
    frames: int
    refusing: tuple = ()  # every cue that called an attack on this frame, in CUES order


@dataclass
class Liveness:
    """The cues a kiosk runs and their settings (see load_liveness)."""

    texture: Optional[dict] = None  # {"head": {...}, "threshold": t}
    context: Optional[float] = None  # threshold
    cnn: Optional[dict] = None  # {"network": edge.liveness.cnn.Network, "threshold": t}
    motion: Optional[motion.MotionSettings] = None
    colour: object = None  # an attributes engine with a `live` head
    window: int = DEFAULT_WINDOW
    active: bool = False
    model: Optional[dict] = None  # the liveness model file's contents
    source: Optional[Path] = None  # where it was read from

    @property
    def cues(self) -> tuple:
        present = {"texture": self.texture, "cnn": self.cnn, "context": self.context, "motion": self.motion,
                   COLOUR: self.colour}
        return tuple(name for name in CUES if present[name] is not None)

    def pixel_scores(self, image: np.ndarray, main, cues: Iterable[str] = FRAME_CUES) -> dict:
        """This frame's score from each pixel cue among ``cues`` (texture, cnn, context: numpy, OpenCV and
        ONNX Runtime's CPU provider, safe on any thread), for an RGB (or already grey) image and its MainFace."""
        cues = set(cues)
        texture_on = self.texture is not None and "texture" in cues
        cnn_on = self.cnn is not None and "cnn" in cues
        context_on = self.context is not None and "context" in cues
        scores = {}
        if not (texture_on or cnn_on or context_on):
            return scores
        grey = texture.grey(image)  # once for every cue
        chip = texture.grey_chip(grey, main.landmarks) if texture_on or cnn_on else None
        if texture_on:
            scores["texture"] = texture.attack_score(texture.features(chip), self.texture["head"])
        if cnn_on:
            scores["cnn"] = self.cnn["network"].attack_score(cnn.chip_of(chip))
        if context_on:
            scores["context"] = context.attack_score(context.features(grey, main.box, main.landmarks))
        return scores

    def engine_scores(self, main) -> dict:
        """This frame's score from the engine cue (colour), on the thread that loaded its engine: a
        TensorRT engine's CUDA context is current there only."""
        return {} if self.colour is None else {COLOUR: float(live_scores(self.colour, main.chip)[0])}

    def new_track(self, settle: bool = False) -> "TrackJudge":
        """A judge for one more track; ``settle``: it measures only what can still change its verdict."""
        return TrackJudge(self, settle=settle)

    def describe(self) -> list[str]:
        """One line per enabled cue: what it is and the figures it was validated with."""
        lines = []
        cues = (self.model or {}).get("cues", {})
        for name in self.cues:
            if name == COLOUR:
                lines.append(f"colour: attributes engine `live` head, threshold {live_threshold(self.colour):.4g} "
                             "(camera-specific: validate it on this kiosk's camera)")
                continue
            entry = cues.get(name, {})
            line = f"{name}: {describe_settings(name, entry)}"
            validated = entry.get("validated")
            if validated:
                line += f"; validated: {describe_figures(validated)}"
            lines.append(line)
        if self.active:
            lines.append("active check on: a face is live only after a head turn shows parallax")
        return lines


def describe_settings(name: str, entry: dict) -> str:
    if name == "motion":
        return (f"parallax >= {entry.get('live_parallax')} is a head, a turn >= {entry.get('attack_turn')} (or a move "
                f"across the view >= {entry.get('attack_shift')} of the frame's width) with parallax < "
                f"{entry.get('attack_parallax')} is a plane, decided by frame {entry.get('min_frames')} "
                f"(up to {entry.get('max_frames')} while a face moves like a plane)")
    if name == "cnn":
        members = entry.get("members", 1)
        of = f", the mean of {members} networks" if members > 1 else ""
        return f"attack logit >= {entry.get('threshold', float('nan')):.4g} ({entry.get('file')}{of})"
    return f"threshold {entry.get('threshold', float('nan')):.4g}"


def describe_figures(validated: dict) -> str:
    """'print APCER 1.2 % BPCER 2.0 %, ...' from a cue's "validated" entry."""
    parts = []
    for label, figures in validated.items():
        if not isinstance(figures, dict):
            continue
        bits = [f"{key.upper()} {100 * figures[key]:.1f} %" for key in ("apcer", "bpcer") if figures.get(key) is not None]
        bits += [f"{key} {figures[key]}" for key in ("attack", "live", "undecided", "deciding", "clips")
                 if figures.get(key) or (key != "deciding" and key in figures)]
        if bits:
            parts.append(f"{label} " + " ".join(bits))
    protocol = validated.get("protocol")
    return "; ".join(parts) + (f" ({protocol})" if protocol else "")


@dataclass(frozen=True)
class FrameCues:
    """One frame's pixel-cue measures (TrackJudge.measure), before they join a track (TrackJudge.record)."""

    scores: dict  # texture and context scores of this frame
    sample: Optional[motion.FaceSample] = None  # the motion cue's cut of the face
    pairs: list = field(default_factory=list)  # its (turn, parallax, shift) against measured_on's history
    measured_on: Optional[motion.MotionTrack] = None
    # Set when a settling judge skipped measures its track no longer needed: the frame, and that judge.
    # Another judge recording the frame (the face turned out to be someone else's) measures it in full.
    skipped: Optional[np.ndarray] = None
    skipped_by: Optional["TrackJudge"] = None
    refused: bool = False  # nothing measured: the track was refused for good

    def joined(self, scores: dict) -> "FrameCues":
        """These measures with frame-cue scores measured elsewhere (the daemon's own thread) added; a frame
        of a track refused for good keeps none."""
        return self if self.refused or not scores else replace(self, scores={**self.scores, **scores})


@dataclass
class TrackJudge:
    """The cues' state for one tracked face."""

    liveness: Liveness
    windows: dict = field(default_factory=dict)
    motion_track: Optional[motion.MotionTrack] = None
    called: set = field(default_factory=set)  # cues whose attack call is kept for the rest of the track
    frames: int = 0
    settle: bool = False  # measure only what can still change the verdict (see the module docstring)

    def __post_init__(self):
        if self.liveness.motion is not None:
            self.motion_track = motion.MotionTrack(self.liveness.motion)

    def add(self, image: np.ndarray, main) -> LiveVerdict:
        """Judge the track with one more frame (RGB) and its MainFace."""
        return self.record(self.measure(image, main), main)

    def measure(self, image: np.ndarray, main, without: Iterable[str] = ()) -> "FrameCues":
        """The pixel cues' measures of one more frame (most of the cues' cost), changing nothing: the
        daemon runs this on a worker thread while the embedding runs, then records it. The frame is
        turned grey once for all of them. A settling judge skips what its track no longer needs.
        ``without``: frame cues left out, for another thread to score (:meth:`FrameCues.joined`)."""
        if self.refused_for_good():  # no measure can change that
            return FrameCues({}, skipped=image, skipped_by=self, refused=True)
        cues = [name for name in FRAME_CUES if name not in set(without)]
        if self.motion_track is None:
            return FrameCues(self.liveness.pixel_scores(image, main, cues))
        if self.settle and self.motion_track.settled():  # called live for good: the flows cannot change it
            return FrameCues(self.liveness.pixel_scores(image, main, cues), skipped=image, skipped_by=self)
        frame = texture.grey(image)
        current, pairs = self.motion_track.measure(frame, main.landmarks)
        return FrameCues(self.liveness.pixel_scores(frame, main, cues), current, pairs, self.motion_track)

    def refused_for_good(self) -> bool:
        """A settling judge whose track a kept call refuses: it measures nothing more (instantly)."""
        return self.settle and bool(self.called)

    def record(self, cues: "FrameCues", main) -> LiveVerdict:
        """Judge the track with one more frame measured by :meth:`measure`; the engine cue runs here."""
        if cues.skipped_by is not None and cues.skipped_by is not self:
            # measured for a settled track, which skipped what it no longer needed; this track needs it all
            cues = self.measure(cues.skipped, main)
        self.frames += 1
        liveness = self.liveness
        if not cues.refused:  # (a track refused for good keeps its windows as they were when it was refused)
            for name, value in {**cues.scores, **liveness.engine_scores(main)}.items():
                self.windows.setdefault(name, deque(maxlen=liveness.window)).append(value)
        scores = {name: float(np.mean(values)) for name, values in self.windows.items()}
        fresh = [] if cues.refused else self._frame_calls(scores)
        call = self._motion_call(cues)
        if call is not None:
            scores["motion"] = motion.ATTACK if "motion" in self.called else call
        # A frame cue's call on a full window is kept for the track, as the motion cue's is: a photo
        # caught once must not get in by a few frames the cue misses (a new angle, a shadow).
        if self.frames >= liveness.window:
            self.called.update(fresh)
        return self._verdict(scores, fresh, call)

    def _frame_calls(self, scores: dict) -> list[str]:
        """The frame cues (and the colour head, once the track is judged) whose window calls an attack now."""
        calls = [name for name in FRAME_CUES if name in scores and scores[name] >= self._threshold(name)]
        if COLOUR in scores and self._full() and scores[COLOUR] < live_threshold(self.liveness.colour):
            calls.append(COLOUR)
        return calls

    def _motion_call(self, cues: "FrameCues") -> Optional[str]:
        """The motion cue's call with this frame (None without the cue); an attack call is kept."""
        if self.motion_track is None:
            return None
        pairs = cues.pairs
        if cues.measured_on is not self.motion_track and cues.sample is not None:
            # measured for another track (the face turned out to be someone else's): pair it
            # with this track's own history instead
            pairs = motion.frame_measures(self.motion_track.history, cues.sample)
        call = self.motion_track.take(cues.sample, pairs).call
        if call == motion.ATTACK:
            self.called.add("motion")
        return call

    def _full(self) -> bool:
        # a track is judged only after a full window, and after the motion cue has seen enough frames to
        # have a say: until then a photo held up would look like a still head to it
        motion_settings = self.liveness.motion
        return self.frames >= self.liveness.window and (motion_settings is None
                                                        or self.frames >= motion_settings.min_frames)

    def _verdict(self, scores: dict, fresh: list[str], call: Optional[str]) -> LiveVerdict:
        refusing = set(fresh) | self.called
        if refusing:
            ordered = tuple(sorted(refusing, key=CUES.index))
            # no cue calls an attack on this window: the track is refused by a call made earlier
            earlier = not fresh and "motion" not in self.called
            reason = "attack, called earlier in this track" if earlier else "attack"
            return LiveVerdict(False, ordered[0], reason, scores, self.frames, ordered)
        if not self._full():
            return LiveVerdict(False, None, "too few frames", scores, self.frames)
        if call == motion.DECIDING:
            return LiveVerdict(False, "motion", "moving like a plane: the motion cue is deciding", scores, self.frames)
        if self.liveness.active and call != motion.LIVE:
            return LiveVerdict(False, "motion", "waiting for a head turn", scores, self.frames)
        return LiveVerdict(True, None, "live", scores, self.frames)

    def _threshold(self, name: str) -> float:
        if name == "context":
            return self.liveness.context
        return getattr(self.liveness, name)["threshold"]


def judge_track(liveness: Liveness, observations: Iterable) -> list[LiveVerdict]:
    """One verdict per (RGB frame, MainFace) of one track, in order; the last is the track's."""
    judge = liveness.new_track()
    return [judge.add(image, main) for image, main in observations]


def overlap(a, b) -> float:
    """Intersection over union of two boxes (x1, y1, x2, y2)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Tracks:
    """The main face's track over consecutive frames: a box overlapping the previous one continues it."""

    liveness: Liveness
    judge: Optional[TrackJudge] = None
    box: Optional[tuple] = None
    number: int = 0  # how many tracks have started

    def observe(self, image: np.ndarray, main) -> LiveVerdict:
        if self.judge is None or self.box is None or overlap(self.box, main.box) < MIN_OVERLAP:
            self.judge = self.liveness.new_track()
            self.number += 1
        self.box = tuple(float(v) for v in main.box)
        return self.judge.add(image, main)

    def forget(self) -> None:
        """No face in a frame (or a broken read) ends the track."""
        self.judge, self.box = None, None


# -- loading ------------------------------------------------------------------------------------

def parse_cues(text: str | None) -> Optional[tuple]:
    """None for "auto" (every cue whose model is present), else the named cues, checked."""
    if text is None or text.strip().lower() == "auto":
        return None
    names = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [name for name in names if name not in CUES]
    if unknown or not names:
        raise ConfigError(f"liveness cues must be 'auto' or a list of {', '.join(CUES)}; got {text!r}")
    return names


def load_liveness(cues: str | None = "auto", active: bool = False, precision: str = "fp32",
                  backend: str = "onnxruntime", threads: int | None = None, models_dir: Path | None = None,
                  path: Path | None = None, default_window: int = DEFAULT_WINDOW) -> Liveness:
    """The cues to run. ``cues`` "auto": those of the liveness model (when trained) and the colour cue
    (when an attributes engine is built); a list: exactly those, each required. None available:
    NoLivenessModel saying how to train one. ``active`` needs the motion cue. The window is the
    liveness model's; ``default_window`` without one (the colour cue alone)."""
    wanted = parse_cues(cues)
    model, source, missing_model = None, Path(path) if path else model_path(models_dir), None
    try:
        model = read_model(source)
    except NoLivenessModel as error:
        missing_model = error
    colour, missing_colour = None, None
    if wanted is None or COLOUR in wanted:
        try:
            colour = load_attributes_engine(precision, backend, threads=threads, models_dir=models_dir)
        except NoAttributesEngine as error:
            missing_colour = error
    available = dict((model or {}).get("cues", {}))
    if wanted is None:
        wanted = tuple(name for name in CUES if name in available or (name == COLOUR and colour is not None))
        if not wanted:
            raise NoLivenessModel(f"no liveness check available: {missing_model}; or build an attributes engine "
                                  f"({missing_colour})")
    for name in wanted:
        if name == COLOUR and colour is None:
            raise missing_colour
        if name != COLOUR and name not in available:
            if missing_model is not None:
                raise missing_model
            raise NoLivenessModel(f"the liveness model {source} has no {name} cue; {train_hint()}")
    if active and "motion" not in wanted:
        raise ConfigError("the active liveness check needs the motion cue (add motion to the liveness cues)")
    entry = available.get("texture")
    return Liveness(
        texture={"head": texture_head(entry), "threshold": float(entry["threshold"])} if "texture" in wanted else None,
        context=float(available["context"]["threshold"]) if "context" in wanted else None,
        cnn={"network": cnn_network(available["cnn"], source), "threshold": float(available["cnn"]["threshold"])}
        if "cnn" in wanted else None,
        motion=motion.MotionSettings.from_manifest(available["motion"]) if "motion" in wanted else None,
        colour=colour if COLOUR in wanted else None,
        window=int(model.get("window", DEFAULT_WINDOW)) if model else int(default_window),
        active=active, model=model, source=source if model else None)


def check_colour_chips(liveness: Liveness, embedding_manifest: dict) -> None:
    """Refuse an attributes engine that wants other chips than the pipeline makes."""
    if liveness.colour is not None:
        check_same_chips(liveness.colour.manifest, embedding_manifest)


__all__ = ["CUES", "LiveVerdict", "Liveness", "NoLivenessCheck", "TrackJudge", "Tracks", "check_colour_chips",
           "judge_track", "load_liveness", "overlap", "parse_cues"]
