"""Video sources read through cv2.VideoCapture: files, V4L2, RTSP and CSI (GStreamer).

One class serves all four because the reconnect logic is the same; what differs
(how to open, whether the stream is live) is decided in ``open_video``.

A file that stops early is told apart from one that ended by the frame count in
its container: a read that fails before that count is a truncated or corrupt
file, which gets a few reopen-and-seek attempts and then a clear ``error``.
A truncated MP4 usually cannot be opened at all (its index sits at the end),
which is reported when the source is opened.
"""
from __future__ import annotations

import os
import re
import time
from typing import Optional

import cv2

from edge.exc import SourceError, SourceUnsupported
from edge.sources.base import Frame, FrameStatus, Pacer, Reconnect, Source, image_problem
from edge.sources.uri import SourceSpec, csi_pipeline

GSTREAMER_HELP = (
    "csi:// cameras need OpenCV built with GStreamer, and this OpenCV ({version}, {where}) has none "
    "(the opencv-python wheels never include it). On Jetson use JetPack's OpenCV: "
    "`sudo apt install python3-opencv` (or nvidia-opencv), create the venv with --system-site-packages "
    "and `pip uninstall opencv-python opencv-python-headless` in it."
)


def opencv_has_gstreamer(build_information: Optional[str] = None) -> bool:
    """True when OpenCV's build information lists GStreamer as YES."""
    text = cv2.getBuildInformation() if build_information is None else build_information
    match = re.search(r"^\s*GStreamer:\s*(\S+)", text, re.MULTILINE)
    return bool(match) and match.group(1).upper().startswith("YES")


def _has_backend(api: int) -> bool:
    try:
        return bool(cv2.videoio_registry.hasBackend(api))
    except (AttributeError, cv2.error):
        return False


class VideoSource(Source):
    def __init__(
        self,
        spec: SourceSpec,
        timeout: float,
        reconnect: Reconnect,
        rate: "float | str | None" = None,
    ):
        super().__init__(spec.uri, timeout)
        self.spec = spec
        self.live = spec.live
        self.policy = reconnect
        self._capture = self._open()
        if self._capture is None:
            raise SourceError(self._open_failure_message())
        self.frame_count = self._frame_count(self._capture)
        self.fps = self._capture.get(cv2.CAP_PROP_FPS) or None
        try:
            self._pacer = Pacer(self._playback_rate(rate))
        except Exception:
            self.close()  # do not leave the camera or file open behind a refused setting
            raise
        self._next_index = 0  # index the next good frame will carry
        self._attempt = 0  # consecutive failed reconnect attempts since the last good frame
        self._next_attempt_at = 0.0
        self._last_problem = ""
        self._ended = False

    # -- opening --------------------------------------------------------------
    def _open(self) -> Optional["cv2.VideoCapture"]:
        capture = _capture_for(self.spec, self.timeout)
        if capture is None or not capture.isOpened():
            if capture is not None:
                capture.release()
            return None
        if self.spec.scheme == "v4l2":
            _apply_v4l2_options(capture, self.spec.options, self.timeout)
        return capture

    def _open_failure_message(self) -> str:
        scheme, target = self.spec.scheme, self.spec.target
        if scheme == "file":
            if not os.path.exists(target):
                return f"no such video file: {target} (from {self.uri!r})"
            return (
                f"cannot open {target} as a video: not a video, an unsupported codec, or a damaged file "
                "(an MP4 cut short loses its index and cannot be opened)"
            )
        if scheme == "v4l2":
            return f"cannot open camera {target}: is it in use by another program, or not a capture device?"
        if scheme == "csi":
            return (
                f"cannot start the CSI camera sensor-id={target}: check that nvargus-daemon is running "
                "(systemctl status nvargus-daemon) and the camera ribbon is seated"
            )
        return f"cannot connect to {self.uri} within {self.timeout:g} s: check the address, credentials and network"

    def _playback_rate(self, rate) -> Optional[float]:
        if rate is None:
            return None
        if self.live:
            raise SourceError(f"{self.uri}: rate applies to file:// and dir:// sources; a camera sets its own pace")
        if rate == "realtime":
            if not self.fps or self.fps <= 0:
                raise SourceError(f"{self.uri}: the file states no frame rate; give rate as frames per second")
            return float(self.fps)
        return rate

    @staticmethod
    def _frame_count(capture) -> Optional[int]:
        count = capture.get(cv2.CAP_PROP_FRAME_COUNT)
        return int(count) if count and count > 0 else None

    # -- reading --------------------------------------------------------------
    def _read(self) -> Frame:
        if self._ended:
            return self._end()  # a file that ended keeps saying so
        if self._capture is None:
            return self._reconnect_step()
        return self._grab()

    def _grab(self) -> Frame:
        self._pacer.wait(self._next_index)
        started = time.monotonic()
        try:
            ok, image = self._capture.read()
            why = "read failed"
        except cv2.error as error:
            ok, image, why = False, None, f"decoder error: {error}"
        if ok:
            index = self._next_index
            self._next_index += 1
            problem = image_problem(image)
            if problem is not None:
                # The stream is still there; only this frame is unusable.
                return self._frame(FrameStatus.ERROR, index=index, detail=f"{self.uri}: frame {index}: {problem}")
            self._attempt = 0
            return self._frame(FrameStatus.OK, image, index)
        if not self.live and self._ended_cleanly():
            self._release_capture()
            self._ended = True
            return self._end()
        timed_out = self.live and time.monotonic() - started >= 0.9 * self.timeout
        return self._lost(self._describe_loss(why), timed_out)

    def _ended_cleanly(self) -> bool:
        # Without a frame count in the container there is no way to tell a cut
        # from an end, so the end is believed.
        return self.frame_count is None or self._next_index >= self.frame_count

    def _describe_loss(self, why: str) -> str:
        if self.live:
            return f"{self.uri}: camera stream lost ({why})"
        return (
            f"{self.uri}: {why} at frame {self._next_index} of {self.frame_count}: "
            "the file is truncated or corrupt"
        )

    def _lost(self, problem: str, timed_out: bool = False) -> Frame:
        self._release_capture()
        self._last_problem = problem
        attempt = self._attempt + 1
        status = FrameStatus.TIMEOUT if timed_out else FrameStatus.ERROR
        if not self.policy.allows(attempt):
            made = self._attempt
            self.failure = f"{problem}; gave up after {made} reconnect attempt{'s' if made != 1 else ''}"
            return self._frame(FrameStatus.ERROR, index=self._next_index, detail=self.failure)
        delay = self.policy.delay(attempt)
        self._next_attempt_at = time.monotonic() + delay
        return self._frame(status, index=self._next_index, detail=f"{problem}; {self._plan(attempt, delay)}")

    def _plan(self, attempt: int, delay: float) -> str:
        limit = "" if self.policy.max_attempts is None else f" of {self.policy.max_attempts}"
        return f"reconnect attempt {attempt}{limit} in {delay:.2f} s"

    def _reconnect_step(self) -> Frame:
        wait = self._next_attempt_at - time.monotonic()
        if wait > self.timeout:
            time.sleep(self.timeout)
            return self._frame(
                FrameStatus.TIMEOUT,
                index=self._next_index,
                detail=f"{self._last_problem}; next reconnect attempt in {wait - self.timeout:.1f} s",
            )
        if wait > 0:
            time.sleep(wait)
        self._attempt += 1
        self.reconnects += 1
        capture = self._open()
        if capture is None:
            return self._lost(f"{self._last_problem}; reopening failed")
        self._capture = capture
        if not self.live and self._next_index:
            # Resume where the file broke off instead of replaying it from the start.
            capture.set(cv2.CAP_PROP_POS_FRAMES, self._next_index)
        return self._grab()

    def _end(self) -> Frame:
        return self._frame(FrameStatus.END, index=self._next_index, detail=f"{self.uri}: end of file")

    def _release_capture(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    def _release(self) -> None:
        self._release_capture()


def _capture_for(spec: SourceSpec, timeout: float) -> Optional["cv2.VideoCapture"]:
    scheme, target = spec.scheme, spec.target
    if scheme == "csi":
        if not opencv_has_gstreamer():
            raise SourceUnsupported(GSTREAMER_HELP.format(version=cv2.__version__,
                                                          where=os.path.dirname(cv2.__file__)))
        options = spec.options
        pipeline = csi_pipeline(int(target), options["width"], options["height"], options["fps"], options["flip"])
        return cv2.VideoCapture(pipeline, cv2.CAP_GSTREAMER)
    if scheme == "v4l2":
        if not os.path.exists(target):
            raise SourceError(f"no such camera device {target}: is it plugged in? (ls /dev/video*)")
        return cv2.VideoCapture(target, cv2.CAP_V4L2)
    if scheme in ("rtsp", "rtsps"):
        if _has_backend(cv2.CAP_FFMPEG):
            milliseconds = int(timeout * 1000)
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, milliseconds, cv2.CAP_PROP_READ_TIMEOUT_MSEC, milliseconds]
            return cv2.VideoCapture(target, cv2.CAP_FFMPEG, params)
        return cv2.VideoCapture(target, cv2.CAP_ANY)
    if not os.path.isfile(target):
        return None
    return cv2.VideoCapture(target, cv2.CAP_ANY)


def _apply_v4l2_options(capture, options: dict, timeout: float) -> None:
    # Order matters for many UVC cameras: the pixel format first, then the size.
    if "fourcc" in options:
        capture.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*options["fourcc"]))
    if "width" in options:
        capture.set(cv2.CAP_PROP_FRAME_WIDTH, options["width"])
    if "height" in options:
        capture.set(cv2.CAP_PROP_FRAME_HEIGHT, options["height"])
    if "fps" in options:
        capture.set(cv2.CAP_PROP_FPS, options["fps"])
    # Keep only the newest frame; not every driver honours these (set() then returns False).
    capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
    capture.set(cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(timeout * 1000))
