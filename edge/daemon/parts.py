"""Building the daemon's parts from its settings, each with a clear error.

The order the daemon calls these in is the fail-secure order: the door first
(edge.door.open_door: created locked, so every later failure happens with the
lock driven to "locked"), then the models, the gallery, the event log, and the
camera last.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable, Optional

from edge.daemon.config import Settings
from edge.daemon.share import FrameShare, socket_path
from edge.daemon.tracking import DEFAULT_WINDOW as COMBINE_WINDOW
from edge.daemon.tracking import Tracker
from edge.daemon.watch import LiveGallery
from edge.events import EventLog
from edge.exc import ConfigError, NoLivenessCheck, SourceError
from edge.fleet.link import FleetLink
from edge.gallery import open_gallery
from edge.gallery.check import audit_problems
from edge.liveness.judge import Liveness, check_colour_chips, parse_cues
from edge.liveness.judge import load_liveness as load_cues
from edge.pipeline import FacePipeline, Follower
from edge.sources import FILE_RECONNECT, Reconnect, open_source, parse_uri

log = logging.getLogger(__name__)


def engine_threads(settings: Settings) -> int:
    """CPU threads per engine: ``[engine] threads``, else half the CPU cores (at least 1). The daemon runs
    a frame on two threads (its own and a helper, edge.daemon.loop), each calling engines: with more
    threads than cores they wait for each other and every frame takes longer."""
    chosen = settings.engine["threads"]
    return int(chosen) if chosen is not None else default_engine_threads()


def default_engine_threads() -> int:
    return max(1, (os.cpu_count() or 2) // 2)


def limit_library_threads(settings: Settings) -> Callable[[], None]:
    """numpy's BLAS (OpenBLAS) to one thread and OpenCV's to the engines' count; returns what restores
    them. The daemon parallelises each frame itself (two threads); the libraries' own pools would then
    fight over the same cores. OpenBLAS's threads spin after every call, stealing the core the frame's
    other thread works on: measured on a 2-core machine (benchmarks/daemon_latency.py), a frame took
    31 ms at the median with them instead of 20, though the gallery search is small."""
    import cv2
    from threadpoolctl import threadpool_limits

    blas = threadpool_limits(limits=1, user_api="blas")
    before = cv2.getNumThreads()
    cv2.setNumThreads(engine_threads(settings))

    def restore() -> None:
        cv2.setNumThreads(before)
        blas.restore_original_limits()

    return restore


def load_pipeline(settings: Settings) -> FacePipeline:
    """The face pipeline; ``[engine] path`` picks an embedding engine file, else precision and backend do."""
    engine = settings.engine
    path = Path(engine["path"]) if engine["path"] is not None else None
    pipeline = FacePipeline.load(precision=engine["precision"], backend=engine["backend"],
                                 threads=engine_threads(settings), flip=engine["flip"], embedding_path=path)
    if path is not None:
        log.info("embedding engine %s (%s, %s, from its manifest)", path, pipeline.manifest["precision"],
                 pipeline.manifest["backend"])
    return pipeline


def make_follower(settings: Settings, pipeline: FacePipeline) -> Follower:
    """Finds each frame's main face, searching the whole frame every ``[engine] search_every`` frames while
    a face is followed (edge.pipeline.Follower)."""
    return Follower(pipeline, settings["decision.min_face_px"], settings["engine.search_every"])


def live_window(settings: Settings) -> int:
    """Frames a liveness window holds when the liveness model sets none: as many as a face must
    combine before it may unlock, and never fewer than K."""
    return max(settings["decision.k"], settings["decision.min_frames"])


def configured_cues(settings: Settings, active: Optional[bool] = None) -> Liveness:
    """The cues of [liveness] cues (or every one trained), loaded with the engine settings; NoLivenessCheck
    when none is there. ``active``: instead of [liveness] active."""
    engine = settings.engine
    return load_cues(settings["liveness.cues"], settings["liveness.active"] if active is None else active,
                     engine["precision"], engine["backend"], threads=engine_threads(settings),
                     default_window=live_window(settings))


def load_liveness(settings: Settings, pipeline) -> Optional[Liveness]:
    """The liveness cues that must pass before an unlock, or None.

    'auto' runs every cue whose model is there and says loudly when none is (the
    starter models have none: the cues are trained per product, see `edge-verify
    train liveness`); 'required' refuses to start without one; 'off' skips the
    check. Cues named in [liveness] cues are required whatever the mode.
    """
    mode = settings["decision.liveness"]
    if mode == "off":
        log.warning("liveness check off: a printed photo or a phone picture of an enrolled person can open the door")
        return None
    try:
        liveness = configured_cues(settings)
    except NoLivenessCheck as error:
        if mode == "required" or parse_cues(settings["liveness.cues"]) is not None:
            raise
        log.warning("no liveness check (%s): a printed photo or a phone picture of an enrolled person can open the "
                    "door; set [decision] liveness = \"required\" once one is trained", error)
        return None
    check_colour_chips(liveness, pipeline.manifest)
    log.info("liveness cues: %s (window of %d frames)", ", ".join(liveness.cues), liveness.window)
    for line in liveness.describe():
        log.info("liveness %s", line)
    return liveness


def liveness_status(settings: Settings) -> dict:
    """What the daemon would run for liveness with these settings: {enabled, cues, lines, warning}
    (for `selftest` and `gallery show`; loads the cues' models, not the camera)."""
    mode = settings["decision.liveness"]
    if mode == "off":
        return {"enabled": False, "mode": mode, "cues": [], "lines": [],
                "warning": "liveness off in the config: a printed photo or a phone picture of an enrolled person "
                           "can open the door"}
    try:
        liveness = configured_cues(settings)
    except NoLivenessCheck as error:
        starts = mode != "required" and parse_cues(settings["liveness.cues"]) is None
        return {"enabled": False, "mode": mode, "cues": [], "lines": [], "daemon_starts": starts,
                "warning": f"no liveness check ({error}): a printed photo or a phone picture of an enrolled person "
                           "can open the door"}
    return {"enabled": True, "mode": mode, "cues": list(liveness.cues), "window": liveness.window,
            "lines": liveness.describe(), "warning": None}


def make_tracker(manifest: dict, window: int = COMBINE_WINDOW) -> Tracker:
    """Follows the faces and combines each track's latest ``window`` frames; a frame farther than the
    model's 1:1 threshold from its track's probe is another person (edge.daemon.tracking)."""
    return Tracker(split_distance=float(manifest["threshold"]), window=window,
                   unit=manifest.get("embedding_normalization") == "l2")


def open_live_gallery(settings: Settings, manifest: dict, clock=None) -> LiveGallery:
    """Open the gallery and load it once: a wrong key, a corrupt file or another model's templates refuse here."""
    gallery_settings, decision = settings.gallery, settings.decision
    check_threshold(settings, manifest)
    gallery = open_gallery(gallery_settings["path"], gallery_settings["key"], create=False)
    try:
        live = LiveGallery(gallery, manifest, threshold=decision["threshold"], stranger_rate=decision["stranger_rate"],
                           reload_s=gallery_settings["reload_s"], clock=clock,
                           reopen=lambda: open_gallery(gallery_settings["path"], gallery_settings["key"]))
        live.load()
    except BaseException:
        gallery.close()
        raise
    report_audit(gallery)
    report_empty(live)
    return live


def report_empty(live: LiveGallery) -> None:
    if live.templates == 0:
        log.warning("the gallery %s is empty: nobody will be let in until people are enrolled "
                    "(edge-verify enroll NAME ...)", live.path)


def check_threshold(settings: Settings, manifest: dict) -> None:
    """A set threshold looser than the model's 1:1 one makes nearly every face somebody: refused unless
    [decision] allow_loose_threshold says it is meant (then said loudly at every start)."""
    threshold, model_threshold = settings["decision.threshold"], float(manifest["threshold"])
    if threshold is None or threshold <= model_threshold:
        return
    message = (f"[decision] threshold {threshold:g} is looser than the model's 1:1 threshold {model_threshold:g}: "
               "faces of strangers would be taken for enrolled people")
    if not settings["decision.allow_loose_threshold"]:
        origin = getattr(settings, "origins", {}).get("decision.threshold", "the config file")
        raise ConfigError(f"{message} ({origin}); leave it unset for the 1:N rule, or pass --allow-loose-threshold "
                          "([decision] allow_loose_threshold = true) if that is really meant")
    log.warning("%s (allowed by allow_loose_threshold)", message)


def report_audit(gallery) -> None:
    """A broken or unacknowledged audit trail does not stop the door, but is said loudly at every start."""
    for problem in audit_problems(gallery):
        log.warning("gallery audit trail: %s", problem)


def open_events(settings: Settings) -> EventLog:
    events = settings.events
    try:
        return EventLog(events["file"], stdout=events["stdout"], max_bytes=events["max_bytes"],
                        backups=events["backups"])
    except OSError as error:
        raise ConfigError(f"cannot write the events file {events['file']}: {error.strerror or error}") from None


def open_fleet(settings: Settings) -> FleetLink | None:
    """The spool and policy of the fleet agent's folder ([fleet] state), or None outside a fleet."""
    state = settings["fleet.state"]
    return FleetLink(state) if state is not None else None


def open_share(settings: Settings, pipeline, describe) -> FrameShare:
    """Serve the latest frames, faces and decisions to the console and to enrollment (edge.daemon.share)."""
    return FrameShare(socket_path(settings), pipeline, describe).start()


def reconnect_for(settings: Settings) -> Reconnect:
    """Live cameras: the configured backoff. Files cannot grow back: a few quick tries, then a clear error."""
    source = settings.source
    attempts = source["reconnect_max_attempts"]
    if parse_uri(source["uri"]).live:
        return Reconnect(initial_s=source["reconnect_initial_s"], max_delay_s=source["reconnect_max_s"],
                         max_attempts=attempts)
    return Reconnect(initial_s=FILE_RECONNECT.initial_s, max_delay_s=FILE_RECONNECT.max_delay_s,
                     max_attempts=FILE_RECONNECT.max_attempts if attempts is None else attempts)


def open_camera(settings: Settings, policy: Reconnect):
    source = settings.source
    return open_source(source["uri"], timeout=source["timeout_s"], reconnect=policy, rate=source["rate"])


def is_live(settings: Settings) -> bool:
    try:
        return parse_uri(settings["source.uri"]).live
    except SourceError:
        return False
