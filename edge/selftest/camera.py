"""Camera checks: it opens, gives frames of the configured size and rate, and
the frames show a scene (not black, not frozen), and with --with-face a face,
which the door's liveness cues must not call an attack (a real person stands
there: if the cues refuse them, the door refuses real people at this camera;
edge.enroll.liveness_check asks the same at enrollment).

About 1.5 s of frames are read without reconnecting, so a flaky camera shows up
as a failed read instead of being papered over by the source's reconnect logic.
"""
from __future__ import annotations

import sys
import time

import cv2
import numpy as np

from edge.enroll.liveness_check import door_cues, frame_note, refusals, refused_mostly
from edge.liveness.check import single_frame
from edge.pipeline import FacePipeline, open_detector
from edge.selftest.runner import Result
from edge.selftest.service import STOP_HINT
from edge.sources import FrameStatus, open_source, parse_uri
from edge.vision.image import to_rgb

SAMPLE_S = 1.5  # how long a live camera is watched
MIN_FRAMES = 10  # at least this many frames from a file, when it has them
MAX_FRAMES = 90
BLACK_MEAN = 16.0  # grey levels (of 255): darker than this with little contrast is "black"
FLAT_STD = 4.0  # less contrast than this is a blank picture (black, white or grey)
FROZEN_DIFF = 0.1  # mean |frame - previous| in grey levels; a live sensor's noise alone exceeds it
# Frozen when at least this share of consecutive frames do not change: a live sensor changes every
# frame; a stuck pipeline repeats one buffer, give or take a codec's first-frame difference.
FROZEN_SHARE = 0.9
FPS_TOLERANCE = 0.8  # a live camera may deliver this share of its configured rate
FACE_FRAMES = 12  # sampled frames searched for a face before watching a live camera longer
FACE_WAIT_S = 10.0  # with --with-face, how long a live camera is watched for a face
LIVENESS_FRAMES = 10  # frames of the face in view judged by the door's liveness cues


class CameraProbe:
    """The open source and what was read from it, shared by the camera checks."""

    def __init__(self, context):
        self.settings = context.settings
        self.daemon = context.settings.daemon
        self.context = context
        self.source = None
        self.spec = None
        self.frames: list[np.ndarray] = []
        self.times: list[float] = []
        self.problems: list[str] = []

    @property
    def live(self) -> bool:
        return self.spec.live

    # -- checks ---------------------------------------------------------------
    def open(self) -> Result:
        uri = self.daemon["source.uri"]
        if not uri:
            return Result.failed("no camera configured: set [source] uri in the config file (--config FILE) "
                                 "or pass --source URI, e.g. csi://0 or v4l2:///dev/video0")
        self.spec = parse_uri(uri)
        if self.live:
            holder = self.context.daemon_holder()
            if holder:
                return Result.skipped(f"{holder} and holds the camera; {STOP_HINT}")
        self.source = open_source(uri, timeout=self.daemon["source.timeout_s"], reconnect=False)
        frame = self.source.read()
        if frame.status is not FrameStatus.OK:
            return Result.failed(f"opened {uri} but got no frame: {frame.status.value}: {frame.detail or 'no detail'}; "
                                 "check the cable/connector and that no other program uses the camera")
        self._keep(frame)
        height, width = frame.image.shape[:2]
        rate = f" @ {self.file_fps:g} fps" if self.file_fps else ""
        return Result.passed(f"opened {uri} {width}x{height}{rate}")

    def read_sample(self) -> Result:
        wanted = self._frames_wanted()
        started = time.monotonic()
        while len(self.frames) < wanted:
            if self.live and time.monotonic() - started >= SAMPLE_S and len(self.frames) >= 2:
                break
            frame = self.source.read()
            if frame.status is FrameStatus.END:
                break
            if frame.status is FrameStatus.OK:
                self._keep(frame)
            else:
                self.problems.append(f"{frame.status.value}: {frame.detail}")
                if len(self.problems) >= 3:
                    break
        took = time.monotonic() - started
        if self.problems:
            return Result.failed(f"{len(self.problems)} failed read(s) after {len(self.frames)} frame(s): "
                                 f"{self.problems[0]}; check the cable/connector and the camera's power")
        if self.live:
            return Result.passed(f"{len(self.frames)} frames in {took:.1f} s ({self.measured_fps:.1f} fps)")
        return Result.passed(f"{len(self.frames)} frames read in {took:.2f} s")

    def check_format(self) -> Result:
        want_width, want_height, want_fps = self._expected()
        if want_width is None and want_fps is None:
            return Result.skipped("no frame size or rate configured (set them in the source URI, e.g. v4l2:///dev/"
                                  "video0?width=1280&height=720&fps=30, or pass --expect-size/--expect-fps)")
        height, width = self.frames[0].shape[:2]
        seen, problems = [], []
        if want_width is not None:
            seen.append(f"{width}x{height}")
            if (width, height) != (want_width, want_height):
                problems.append(f"frames are {width}x{height}, configured {want_width}x{want_height}: the camera "
                                "does not offer that mode (v4l2-ctl --list-formats-ext lists what it offers)")
        if want_fps is not None:
            fps = self.measured_fps if self.live else self.file_fps
            if not fps:
                problems.append(f"cannot tell the frame rate (configured {want_fps:g} fps)")
            else:
                seen.append(f"{fps:.1f} fps")
                low = fps < FPS_TOLERANCE * want_fps if self.live else abs(fps - want_fps) > 0.5
                if low:
                    problems.append(f"{fps:.1f} fps, configured {want_fps:g}: poor light lengthens exposures, "
                                    "or the USB link or the pipeline is too slow")
        if problems:
            return Result.failed("; ".join(problems))
        return Result.passed(" @ ".join(seen) + " as configured")

    def check_picture(self) -> Result:
        stats = [picture_stats(frame) for frame in self.frames]
        blank = [(mean, std) for mean, std in stats if std < FLAT_STD or (mean < BLACK_MEAN and std < 2 * FLAT_STD)]
        means = np.array([mean for mean, _ in stats])
        stds = np.array([std for _, std in stats])
        if len(blank) * 2 > len(stats):
            mean = float(np.median(means))
            kind = "black" if mean < BLACK_MEAN else "blank (one flat colour)"
            return Result.failed(f"{len(blank)} of {len(stats)} frames are {kind} (brightness {mean:.0f}/255, "
                                 f"contrast {float(np.median(stds)):.1f}): remove the lens cap, check the light "
                                 "and the lens, or the sensor and its ribbon cable")
        return Result.passed(f"brightness {float(np.median(means)):.0f}/255, contrast {float(np.median(stds)):.0f} "
                             f"over {len(stats)} frames")

    def check_frozen(self) -> Result:
        if len(self.frames) < 2:
            return Result.skipped(f"only {len(self.frames)} frame: cannot compare frames")
        grey = [cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY).astype(np.int16) for frame in self.frames]
        changes = [float(np.abs(b - a).mean()) if a.shape == b.shape else np.inf for a, b in zip(grey, grey[1:])]
        still = sum(1 for change in changes if change < FROZEN_DIFF)
        if still >= FROZEN_SHARE * len(changes):
            span = f"{self.times[-1] - self.times[0]:.1f} s" if self.live else f"{len(self.frames)} frames"
            return Result.failed(f"frames are frozen: {still} of {len(changes)} frame-to-frame changes over {span} are "
                                 f"below {FROZEN_DIFF:g} grey levels; the camera or its driver is stuck: reconnect the "
                                 "camera, restart nvargus-daemon for CSI, or power-cycle the camera")
        return Result.passed(f"frames change ({len(changes) - still} of {len(changes)} frame-to-frame changes, "
                             f"largest {max(changes):.1f} grey levels)")

    def check_face(self, min_face_px: int) -> Result:
        # The daemon's detector: the FP32 ONNX Runtime nets, whatever the embedding engine is.
        detector = open_detector(threads=self.daemon["engine.threads"])
        largest = 0.0
        started = time.monotonic()
        for index, frame in enumerate(self._frames_to_search()):
            faces = detector.detect(to_rgb(frame, f"frame {index}"))
            for face in faces:
                side = min(face.width, face.height)
                largest = max(largest, side)
                if side >= min_face_px:
                    return Result.passed(f"face found in frame {index}: {side:.0f} px, score {face.score:.2f} "
                                         f"(the daemon needs {min_face_px} px)")
        watched = time.monotonic() - started
        if largest:
            return Result.failed(f"faces found, but the largest is {largest:.0f} px and the daemon ignores faces under "
                                 f"{min_face_px} px: stand closer, or aim/zoom the camera")
        return Result.failed(f"no face in {watched:.1f} s of frames: stand 0.5-1 m in front of the camera facing it; "
                             "check focus, light on the face, and the camera's aim")

    def check_liveness(self, min_face_px: int) -> Result:
        """The door's frame cues on the face in view, each frame judged alone as at enrollment."""
        engine = self.daemon.engine
        pipeline = FacePipeline.load(precision=engine["precision"], backend=engine["backend"],
                                     threads=self.daemon["engine.threads"], flip=False)
        liveness = door_cues(self.daemon, pipeline, report=lambda line: None)
        if liveness is None:
            return Result.skipped("no liveness cues to run (off, none trained, or not loadable: see compute.liveness)")
        notes = []
        for index, frame in enumerate(self._frames_to_search()):
            rgb = to_rgb(frame, f"frame {index}")
            main = pipeline.main_face(rgb)
            if main is not None and main.face_px >= min_face_px:
                notes.append(frame_note(liveness, rgb, main))
            if len(notes) >= LIVENESS_FRAMES:
                break
        judged, refused, by = refusals(notes)
        if not judged:
            return Result.skipped(f"no face of {min_face_px} px or more to judge (see camera.face)")
        cues = ", ".join(single_frame(liveness).cues)  # motion needs a track: not judged here
        if refused_mostly(judged, refused):
            return Result.failed(f"the door's liveness cues ({cues}) call {refused} of {judged} frames of the face in "
                                 f"view an attack ({by}): if a real person stood there, the door refuses them at this "
                                 "camera and in this light; check the light on the face (no strong light behind, no "
                                 "glare, not too dark), and if everyone is refused, the liveness model does not know "
                                 "this camera: train it on this camera's real and attack frames (README, liveness)")
        return Result.passed(f"the door's liveness cues ({cues}) let the face in view pass on {judged - refused} of "
                             f"{judged} frames" + (f" (refused: {by})" if refused else ""))

    def close(self) -> None:
        if self.source is not None:
            self.source.close()

    # -- helpers --------------------------------------------------------------
    @property
    def file_fps(self) -> float | None:
        fps = getattr(self.source, "fps", None)
        return float(fps) if fps and not self.live else None

    @property
    def measured_fps(self) -> float:
        span = self.times[-1] - self.times[0] if len(self.times) > 1 else 0.0
        return (len(self.times) - 1) / span if span > 0 else 0.0

    def _keep(self, frame) -> None:
        self.frames.append(frame.image)
        self.times.append(frame.timestamp)

    def _frames_wanted(self) -> int:
        if self.live:
            return MAX_FRAMES
        fps = self.file_fps or 20.0
        wanted = max(MIN_FRAMES, int(round(fps * SAMPLE_S)))
        count = getattr(self.source, "frame_count", None)
        return min(wanted, count, MAX_FRAMES) if count else min(wanted, MAX_FRAMES)

    def _expected(self):
        settings = self.settings
        width, height, fps = settings.expect_width, settings.expect_height, settings.expect_fps
        options = self.spec.options
        if width is None and "width" in options and "height" in options:
            width, height = options["width"], options["height"]
        if fps is None and "fps" in options:
            fps = float(options["fps"])
        return width, height, fps

    def _frames_to_search(self):
        # Spread over the sample: neighbouring frames show the same scene.
        step = max(1, len(self.frames) // FACE_FRAMES)
        yield from self.frames[::step]
        if not self.live:
            return
        print(f"camera.face: look at the camera (watching for up to {FACE_WAIT_S:g} s)", file=sys.stderr)
        deadline = time.monotonic() + FACE_WAIT_S
        while time.monotonic() < deadline:
            frame = self.source.read()
            if frame.status is FrameStatus.OK:
                yield frame.image


def picture_stats(frame: np.ndarray) -> tuple[float, float]:
    """(mean, standard deviation) of the grey picture, on every 4th pixel (plenty for this)."""
    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)[::4, ::4]
    return float(grey.mean()), float(grey.std())


AFTER_OPEN = ("frames", "format", "picture", "frozen", "face", "liveness")


def run(context, step) -> None:
    probe = CameraProbe(context)
    try:
        opened = step("open", probe.open)
        if opened.status != "PASS":
            reason = opened.detail if opened.status == "SKIP" else "the camera did not open (see camera.open)"
            for name in AFTER_OPEN:
                step.skip(name, reason)
            return
        sampled = step("frames", probe.read_sample)
        if not probe.frames or (sampled.status != "PASS" and len(probe.frames) < 2):
            for name in AFTER_OPEN[1:]:
                step.skip(name, "too few frames were read (see camera.frames)")
            return
        step("format", probe.check_format)
        step("picture", probe.check_picture)
        step("frozen", probe.check_frozen)
        min_face_px = context.settings.daemon["decision.min_face_px"]
        if context.with_face:
            face = step("face", lambda: probe.check_face(min_face_px))
            if face.status == "PASS":
                step("liveness", lambda: probe.check_liveness(min_face_px))
            else:
                step.skip("liveness", "no face to judge (see camera.face)")
        else:
            step.skip("face", "not asked: rerun with --with-face and stand in front of the camera")
            step.skip("liveness", "not asked: rerun with --with-face and stand in front of the camera")
    finally:
        probe.close()
