"""The daemon: frames in, decisions out, the door driven fail-secure.

Start-up order (each step can fail; the door is already locked when it does):
settings are checked before this (a bad setting never touches the relay pin, which
then stays de-energised: locked by wiring), then door (created locked) → signal handlers (SIGTERM/SIGINT/SIGHUP lock, then exit)
→ models → gallery (a wrong key, a corrupt file or another model's templates
refuse to start) → event log → READY=1 → camera. A live camera that cannot be
opened yet is retried with backoff after READY, feeding the watchdog; a file that
cannot be opened is an error.

Each loop iteration sends WATCHDOG=1 (reads come back within the source timeout,
also while a camera reconnects), looks for gallery changes, reads one frame and
decides. Read statuses: ``ok`` frames are judged; ``timeout`` and ``error`` are
logged and break any run of agreement; ``end`` after the source gave up (a
truncated file, a camera past its reconnect limit) is an error exit; a file's
clean ``end`` exits 0 with ``until_end``, else the daemon idles, door locked.

Any exception locks the door first, then propagates (the CLI logs it and exits
non-zero; systemd restarts the service). ``latency_ms`` in an event is the time
from the decoded frame being handed over to the decision; ``read_ms`` is the time
the read itself took (the decode, for a file; waiting plus decode, for a camera).
"""
from __future__ import annotations

import logging
import math
import os
import signal
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from edge.daemon import notify, parts
from edge.daemon.config import Settings
from edge.daemon.decision import Decider, Observation, Verdict, combining_mismatch
from edge.daemon.frames import embedded, face_crop, look
from edge.daemon.tracking import frame_weight, usable
from edge.door import install_signal_handlers, open_door
from edge.events import event_time, store_face
from edge.exc import DoorError, SourceError, SourceUnsupported
from edge.liveness.judge import CHIP_CUES, FrameCues
from edge.sources import FrameStatus

log = logging.getLogger(__name__)

HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
STATUS_EVERY_S = 2.0
IDLE_SLEEP_S = 1.0
TIMEOUT_LOG_EVERY_S = 30.0
# Frames whose latency the status line summarises: 20 s at 15 fps, enough for a p95 that one slow
# frame does not set, recent enough to show a kiosk that slowed down (heat, another process).
RECENT_FRAMES = 300
# The reason of a refused unlock whose followed face the frame's own search did not make its main face.
MAIN_FACE_CHANGED = "main face changed"


@dataclass
class Stats:
    frames: int = 0
    read_problems: int = 0
    faces: int = 0
    unknown: int = 0
    unlocks: int = 0
    unlocked: list = field(default_factory=list)
    latency_sum_ms: float = 0.0
    latency_count: int = 0
    started: float = field(default_factory=time.monotonic)
    recent_ms: deque = field(default_factory=lambda: deque(maxlen=RECENT_FRAMES))

    def fps(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.frames / elapsed if elapsed > 0 else 0.0

    def record_latency(self, latency_ms: float) -> None:
        """One judged frame's time from the decoded frame to the decision."""
        self.latency_sum_ms += latency_ms
        self.latency_count += 1
        self.recent_ms.append(latency_ms)

    def latency_summary(self) -> str:
        """'frame p50 / p95 21 / 28 ms (last 300)' over the latest judged frames, or '' before the first:
        what a technician compares with the frame budget (README, "Cost per frame")."""
        if not self.recent_ms:
            return ""
        p50, p95 = np.percentile(np.asarray(self.recent_ms), [50, 95])
        return f"frame p50 / p95 {p50:.0f} / {p95:.0f} ms (last {len(self.recent_ms)})"


@dataclass(frozen=True)
class Measuring:
    """One frame's liveness measures under way on the helper thread (:meth:`Daemon._measure_liveness`)."""

    future: Future
    claim: Optional[threading.Lock] = None  # taken by the first thread to score the chip cues; None: the helper's


class Daemon:
    """One run of the door daemon. ``run()`` returns the exit code or raises (door locked either way).

    ``pin_factory``: a gpiozero factory for a door on GPIO pins (None: gpiozero's
    default, which honours $GPIOZERO_PIN_FACTORY). ``pipeline``: an already loaded FacePipeline to reuse.
    ``on_event(event, door)``: called after each event is written (the demo prints).
    ``clock``: the monotonic clock for cooldowns and gallery polling.
    """

    def __init__(self, settings: Settings, until_end: bool = False, pin_factory=None, pipeline=None,
                 on_event: Optional[Callable] = None, clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self.until_end = until_end
        self.pin_factory = pin_factory
        self.pipeline = pipeline
        self.on_event = on_event
        self.clock = clock
        self.stats = Stats()
        self.door = self.gallery = self.events = self.source = self.liveness = self.fleet = self.share = None
        self.tracker = self.follower = None
        self._helper: Optional[ThreadPoolExecutor] = None  # the frame's second thread (see _start)
        self._restore_threads = None  # gives numpy and OpenCV back their own threads (parts.limit_library_threads)
        self.decider = Decider(settings["decision.k"], settings["decision.n"], settings["decision.cooldown_s"],
                               settings["decision.min_frames"])
        self._previous_handlers: dict = {}
        self._stopping_handler = None  # the door's: lock, then SystemExit
        self._stop_signal = None  # a stop asked for while starting
        self._status_at = -math.inf
        self._timeout_logged_at = -math.inf
        self._last_decision = "none yet"

    # -- lifecycle ------------------------------------------------------------------------------
    def run(self) -> int:
        try:
            self._start()
            return self._loop()
        except BaseException:
            if self.door is not None:
                self.door.lock()  # before anything else: logging or closing may fail too
            raise
        finally:
            self._shutdown()

    def _start(self) -> None:
        self.door = open_door(self.settings, self.pin_factory)
        self.door.on_exit_request = self._exit_button
        self._install_signals()
        notify.status("loading models")
        if self.pipeline is None:
            self.pipeline = parts.load_pipeline(self.settings)
        self._stop_if_asked()
        self.liveness = parts.load_liveness(self.settings, self.pipeline)
        # A second thread for each frame: part of the detection, then either the liveness cues (while
        # the face is embedded) or, without liveness, the mirror image's embedding. Same results, less
        # waiting: a frame's latency is what a person at the door feels.
        self._helper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="frame-helper")
        self._restore_threads = parts.limit_library_threads(self.settings)
        log.debug("frame helper thread used by: %s", ", ".join(self.pipeline.share_thread(self._helper)
                                                              + (["liveness"] if self.liveness else [])) or "nothing")
        self.tracker = parts.make_tracker(self.pipeline.manifest, self.settings["decision.combine_frames"])
        self.follower = parts.make_follower(self.settings, self.pipeline)
        mismatch = combining_mismatch(self.pipeline.manifest, self.settings["decision.min_frames"],
                                      self.settings["decision.combine_frames"])
        if mismatch is not None:
            log.warning("%s", mismatch)
        self._stop_if_asked()
        notify.status("opening the gallery")
        self.gallery = parts.open_live_gallery(self.settings, self.pipeline.manifest, clock=self.clock)
        self.events = parts.open_events(self.settings)
        self.fleet = parts.open_fleet(self.settings)
        self._stop_if_asked()
        self.share = parts.open_share(self.settings, self.pipeline, self._share_status)
        log.info("door (%s) locked; %s", self.door.describe(), self.gallery.describe())
        notify.ready(f"ready: {self.gallery.describe()}; opening {self.settings['source.uri']}")
        self._signals_stop_at_once()
        self.source = self._connect()
        log.info("reading %s", self.settings["source.uri"])

    def _shutdown(self) -> None:
        try:
            notify.stopping("stopping; door locked")
            if self.fleet is not None:
                self.fleet.counters(self.stats, force=True)
            if self._helper is not None:
                self.pipeline.share_thread(None)  # the pipeline may outlive this daemon (the demo, tests)
                self._helper.shutdown(wait=True, cancel_futures=True)  # its work finishes in milliseconds
            if self._restore_threads is not None:
                self._restore_threads()
            for part in (self.share, self.source, self.events, self.fleet, self.gallery and self.gallery.gallery):
                if part is not None:
                    try:
                        part.close()
                    except Exception as error:  # the door must still be closed below
                        log.error("closing %s failed: %s", type(part).__name__, error)
        finally:
            # Whatever happened above (even a second SIGTERM), the relay ends locked and released.
            if self.door is not None:
                self.door.close()
            self._restore_signals()
        stats = self.stats
        if stats.frames or stats.read_problems:
            latency = stats.latency_summary()
            log.info("stopped after %d frames (%.1f fps): %d faces judged, %d unknown, %d unlocks%s",
                     stats.frames, stats.fps(), stats.faces, stats.unknown, stats.unlocks,
                     f"; {latency}" if latency else "")

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # only the main thread may set handlers; an embedding program owns its signals
        self._previous_handlers = {signum: signal.getsignal(signum) for signum in HANDLED_SIGNALS}
        self._stopping_handler = install_signal_handlers(self.door, HANDLED_SIGNALS)
        self._defer_signals()

    def _defer_signals(self) -> None:
        """While models load, a stop request locks the door at once and ends the start at the next step:
        an exception raised inside an import (onnxruntime's, numpy's) leaves the module half made and
        surfaces as an ImportError instead of a clean exit."""
        def deferred(signum, frame):
            self.door.lock()
            self._stop_signal = signum

        for signum in HANDLED_SIGNALS:
            signal.signal(signum, deferred)

    def _stop_if_asked(self) -> None:
        if self._stop_signal is not None:
            self._stopping_handler(self._stop_signal, None)  # locks again, then exits as a stop does

    def _signals_stop_at_once(self) -> None:
        """Started: from now on a stop request ends the loop where it is (the door handler raises)."""
        self._stop_if_asked()
        if self._previous_handlers:
            for signum in HANDLED_SIGNALS:
                signal.signal(signum, self._stopping_handler)

    def _restore_signals(self) -> None:
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        self._previous_handlers = {}

    # -- the camera -----------------------------------------------------------------------------
    def _connect(self):
        """Open the source; a live camera that is not there yet is retried with backoff."""
        policy = parts.reconnect_for(self.settings)
        live = parts.is_live(self.settings)
        attempt = 0
        while True:
            notify.watchdog()
            try:
                return parts.open_camera(self.settings, policy)
            except SourceError as error:
                attempt += 1
                if not live or not policy.allows(attempt) or isinstance(error, SourceUnsupported):
                    raise  # a camera this machine can never open is not waited for
                delay = policy.delay(attempt)
                log.warning("%s; retrying in %.1f s (attempt %d)", error, delay, attempt)
                notify.status(f"waiting for the camera (attempt {attempt}): {error}")
                self._sleep_watched(delay)

    def _sleep_watched(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, IDLE_SLEEP_S))
            notify.watchdog()

    # -- the loop -------------------------------------------------------------------------------
    def _loop(self) -> int:
        ended = False
        self.stats.started = time.monotonic()  # fps counts the loop, not the model loading
        while True:
            notify.watchdog()
            self._check_door()
            if self.share is not None:
                self.share.serve_requests(self.door, self._write)  # door test pulses, hold events
            if self.gallery.refresh():
                self.decider.forget()  # the tracks stay: their probes and liveness do not depend on the gallery
                log.info("gallery changed: %s", self.gallery.describe())
            if ended:
                self._status("the source ended; idle with the door locked")
                time.sleep(IDLE_SLEEP_S)
                continue
            read_started = time.monotonic()
            frame = self.source.read()
            if frame.status is FrameStatus.OK:
                self.stats.frames += 1
                self._judge(frame, read_started)
                self.follower.search_if_due()  # the door has its decision: the person is not kept waiting
            elif frame.status is FrameStatus.END:
                if self.source.failure is not None:
                    raise SourceError(f"{self.settings['source.uri']}: {self.source.failure}; door locked")
                log.info("%s", frame.detail)
                if self.until_end:
                    return 0
                ended = True
            else:
                self._read_problem(frame)
            self._status(self._running_status)

    def _read_problem(self, frame) -> None:
        self.stats.read_problems += 1
        self.decider.interrupt()
        self.tracker.end_all()
        self.follower.forget()
        now = time.monotonic()
        # Every error (a failed reconnect attempt, a bad frame) is logged; a camera that stays
        # away produces a timeout every few seconds, logged only now and then.
        if frame.status is FrameStatus.ERROR or now - self._timeout_logged_at >= TIMEOUT_LOG_EVERY_S:
            log.warning("%s: %s", frame.status.value, frame.detail)
            if frame.status is FrameStatus.TIMEOUT:
                self._timeout_logged_at = now
        self._status(f"camera problem: {frame.detail}", force=True)

    def _judge(self, frame, read_started: float) -> None:
        # While the door is held for an enrollment, every frame is searched: the live view's one-person
        # check (edge.daemon.share.frame_meta) then sees everyone in view, as the enrollment's own does.
        held = self.share is not None and self.share.veto() is not None
        sighting = look(self.follower, frame.image, frame.index, search=held)
        tracks = self.tracker.update(sighting.faces)
        if sighting.main is None:
            if sighting.reason == "unusable frame":
                log.warning("%s", sighting.detail)
            self.tracker.restart_judges()  # no face judged this frame: liveness starts again with the next
            self.decider.observe(Observation.nothing(sighting.reason), self.clock())
            self._publish(frame, sighting)
            return
        track = tracks[id(sighting.face)]
        self.tracker.restart_judges(keep=track)  # only the main face is judged; the others start over
        measuring = self._measure_liveness(track, sighting)
        # the mirror image may run on the helper unless it is measuring the cues
        sighting = embedded(self.pipeline, sighting, share=measuring is None or measuring.future.done())
        if usable(sighting.embedding):
            track = self._follow(track, sighting)
            observation = self.gallery.match_combined(track.probe(self.tracker.unit))
        else:  # judged on its own (never a match), and kept out of the track's probe
            observation = self.gallery.match(sighting.embedding)
        live, live_fields = self._liveness(track, sighting, measuring)
        veto = self._veto() or self._main_face_check(sighting)
        verdict = self.decider.observe(observation, self.clock(), live=live, veto=veto, track=track.id,
                                       frames=track.frames)
        if verdict.unlock:
            self.door.unlock_pulse()
        latency_ms = (time.monotonic() - frame.timestamp) * 1e3
        self._count(verdict)
        self.stats.record_latency(latency_ms)
        event = self._event(verdict, frame, sighting, read_ms=(frame.timestamp - read_started) * 1e3,
                            latency_ms=latency_ms)
        event.update(live_fields)
        self._write(event)
        self._publish(frame, sighting, verdict, live_fields.get("live_score"), event["latency_ms"])

    def _veto(self) -> Optional[str]:
        """Why unlocks are refused now: an enrollment holding the door locked (edge.daemon.share),
        the site's offline policy (fleet), or None."""
        held = self.share.veto() if self.share is not None else None
        if held is not None:
            return held
        return self.fleet.blocked() if self.fleet is not None else None

    def _main_face_check(self, sighting) -> Optional[Callable[[], Optional[str]]]:
        """On a followed frame, the check the decider runs before it opens the door (edge.daemon.decision
        ``vetoed``): the whole frame searched, and the door refused when its main face is not the followed
        one (edge.pipeline.Follower.confirm). A searched frame's main face is already the search's."""
        if not sighting.followed:
            return None
        return lambda: None if self.follower.confirm(sighting.rgb, sighting.face) else MAIN_FACE_CHANGED

    def _publish(self, frame, sighting, verdict=None, live_score=None, latency_ms=None) -> None:
        if self.share is not None:
            self.share.publish(frame, sighting, verdict, live_score, latency_ms)

    def _share_status(self) -> dict:
        """The daemon's state for the console (edge.daemon.share ``status``)."""
        liveness = None if self.liveness is None else {"cues": self.liveness.describe()}
        return {"pid": os.getpid(), "source": self.settings["source.uri"], "door": self.door.describe(),
                "locked": self.door.is_locked, "gallery": self.gallery.describe(),
                "liveness_mode": self.settings["decision.liveness"], "liveness": liveness,
                "fps": round(self.stats.fps(), 1), "frame_latency": self.stats.latency_summary() or None,
                "unlocks": self.stats.unlocks, "last": self._last_decision,
                "store_faces": self.settings["events.store_faces"], "events": self.settings["events.file"]}

    def _follow(self, track, sighting):
        """Add the main face to its track; returns the track it joined (a new one when the face is not
        the person the track followed: edge.daemon.tracking)."""
        weight = frame_weight(sighting.main, self.pipeline.mean, self.pipeline.std, self.pipeline.padding)
        return self.tracker.add(track, sighting.rgb, sighting.main, sighting.embedding, weight)

    def _measure_liveness(self, track, sighting) -> Optional[Measuring]:
        """Start the pixel cues on this frame's main face (edge.liveness.judge.TrackJudge.measure, most of
        the cues' cost) on the helper thread, so that they run while the face is embedded; None without
        liveness. They read the track's history, which nothing changes until :meth:`_liveness`. A track
        refused for good has nothing left to measure (edge.liveness.judge, settling judges): its future
        comes back done, and the helper is free for the mirror image's embedding."""
        if self.liveness is None:
            return None
        if track.judge is None:
            track.judge = self.liveness.new_track(settle=True)
        if track.judge.refused_for_good():  # nothing to measure: the helper stays free for the embedding
            done = Future()
            done.set_result(track.judge.measure(sighting.rgb, sighting.main))
            return Measuring(done)
        if self.pipeline.flip:  # this thread embeds two images meanwhile: the helper measures every cue
            return Measuring(self._helper.submit(track.judge.measure, sighting.rgb, sighting.main))
        claim = threading.Lock()  # the chip cues go to whichever thread is free first (_chip_scores)
        return Measuring(self._helper.submit(self._measure_on_helper, track.judge, sighting, claim), claim)

    def _measure_on_helper(self, judge, sighting, claim: threading.Lock) -> FrameCues:
        """On the helper: the track's measures without the cues that read the face's grey chip (texture,
        cnn), then those too unless the daemon's thread has taken them."""
        cues = judge.measure(sighting.rgb, sighting.main, without=CHIP_CUES)
        return cues.joined(self._chip_scores(sighting, claim))

    def _chip_scores(self, sighting, claim: Optional[threading.Lock]) -> dict:
        """The chip cues' scores of this frame when this thread is the first to ``claim`` them, else {}.

        Why: without the mirror image (``[engine] flip = false``) the daemon's thread embeds one image and
        then waited for the helper's cues, about 6 ms a frame on real rooms here; it now scores texture and
        cnn meanwhile unless the helper has got to them first (on a track's first frames, without motion
        flows, the helper has less to do). With the mirror image the daemon's thread embeds two, and the
        helper measures every cue: sharing them then did not shorten the frame (README, "Cost per frame").
        Either thread scores them the same: same numbers, same verdicts (tests/daemon/test_daemon_liveness_cues.py)."""
        if claim is None or not claim.acquire(blocking=False):
            return {}
        return self.liveness.pixel_scores(sighting.rgb, sighting.main, CHIP_CUES)

    def _liveness(self, track, sighting, measuring: Optional[Measuring]) -> tuple[bool, dict]:
        """(live?, event fields) for this frame's face: its track's verdict from every enabled cue
        (edge.liveness.judge; each track has its own judge, fed the track's frames), from the measures
        :meth:`_measure_liveness` started. Without liveness (mode 'off', or 'auto' with none trained)
        every face counts as live and the events carry no liveness fields."""
        if self.liveness is None:
            return True, {}
        own = self._chip_scores(sighting, measuring.claim)  # unless the helper has taken them
        cues = measuring.future.result().joined(own)  # a cue's error is raised here, and the door stays locked
        if track.judge is None:  # the face turned out to be another person's: a new track
            track.judge = self.liveness.new_track(settle=True)
        verdict = track.judge.record(cues, sighting.main)
        scores = {name: (_rounded(value) if isinstance(value, float) else value) for name, value in verdict.scores.items()}
        fields = {"live": verdict.live, "refused_by": verdict.refused_by, "refusing": list(verdict.refusing),
                  "liveness_reason": verdict.reason, "liveness": scores}
        if "colour" in scores:
            fields["live_score"] = scores["colour"]  # the attributes engine's mean probability of `live`
        return verdict.live, fields

    def _count(self, verdict: Verdict) -> None:
        self.stats.faces += 1
        if verdict.person is None:
            self.stats.unknown += 1
        if verdict.unlock:
            self.stats.unlocks += 1
            self.stats.unlocked.append(verdict.person)
            self._last_decision = f"unlocked for {verdict.person} at {time.strftime('%H:%M:%S')}"

    def _event(self, verdict: Verdict, frame, sighting, read_ms: float, latency_ms: float) -> dict:
        event = {
            "time": event_time(),
            "person": verdict.person,
            "distance": _rounded(verdict.distance),
            "margin": _rounded(verdict.margin),
            "frames_agreed": verdict.frames_agreed,
            "unlock": verdict.unlock,
            "latency_ms": round(latency_ms, 2),
            "read_ms": round(read_ms, 2),
            "reason": verdict.reason,
            "threshold": _rounded(self.gallery.combined_threshold),
            "frame": frame.index,
            "face_px": round(sighting.face_px, 1),
            "followed": sighting.followed,
            "track": verdict.track,
            "frames_combined": verdict.frames_combined,
        }
        if self.settings["events.store_faces"]:
            event["face_image"] = self._store_face(frame, sighting.face)
        return event

    def _store_face(self, frame, face) -> Optional[str]:
        folder = Path(self.settings["events.file"]).parent / "faces"
        return store_face(folder, f"{time.strftime('%Y%m%dT%H%M%S')}-{frame.index:08d}", face_crop(frame.image, face),
                          keep=self.settings["events.faces_kept"])

    def _write(self, event: dict) -> None:
        if self.fleet is not None:
            self.fleet.record(event)  # first: the event gets its id, which the local log keeps too
        self.events.write(event)
        if self.on_event is not None:
            self.on_event(event, self.door)

    def _exit_button(self) -> None:
        # Runs on gpiozero's thread; EventLog serialises writes.
        self.stats.unlocks += 1
        self._write({"time": event_time(), "person": None, "distance": None, "margin": None, "frames_agreed": 0,
                     "unlock": True, "latency_ms": None, "read_ms": None, "reason": "exit button", "threshold": None,
                     "frame": None, "face_px": None, "track": None, "frames_combined": 0})

    def _check_door(self) -> None:
        if self.door.fault is not None:
            raise DoorError(f"the door lock reported a fault: {self.door.fault}")

    # -- status ---------------------------------------------------------------------------------
    def _running_status(self) -> str:
        latency = self.stats.latency_summary()
        return (f"{self.stats.fps():.1f} fps{', ' + latency if latency else ''}, {self.gallery.describe()}, "
                f"{self.stats.unlocks} unlocks; last: {self._last_decision}{dropped_note(self.events)}")

    def _status(self, text: "str | Callable[[], str]", force: bool = False) -> None:
        """Tell systemd ``text`` at most every STATUS_EVERY_S (at once with ``force``); a callable is only
        called then: the running status summarises the recent frames, which every frame need not pay for."""
        if self.fleet is not None:
            self.fleet.counters(self.stats)
        now = time.monotonic()
        if force or now - self._status_at >= STATUS_EVERY_S:
            self._status_at = now
            notify.status(text() if callable(text) else text)


def dropped_note(events) -> str:
    """For the status line: events the file missed (a full disk), which journald still has."""
    dropped = getattr(events, "dropped", 0)
    return f"; {dropped} events not written to the events file (disk full?)" if dropped else ""


def _rounded(value) -> Optional[float]:
    if value is None:
        return None
    value = float(value)
    return round(value, 4) if math.isfinite(value) else None
