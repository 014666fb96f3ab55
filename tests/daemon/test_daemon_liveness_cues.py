"""The daemon with the liveness model's cues: a flat attack of an enrolled person never opens the door,
and every refusal names the cue that decided.

The attack clip is made here: the enrolled person's photo mounted as a phone (dark bezel) and
turned by a hand in front of the camera (edge_build.training.liveness_synth), 20 frames.
The model files are written by hand so each test isolates one cue's rule.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from buildkit import constant_cnn
from daemonkit import ENROLLED, PIN, SIZE, levels, person_frames, photo, read_events, settings, write_clip

from edge.daemon.loop import Daemon
from edge.liveness import context, motion, texture
from edge.liveness.model import FORMAT, write_model
from edge_build.training import liveness_synth


@pytest.fixture()
def home(fetched_home):
    return fetched_home / "models"


def liveness_model(models: Path, texture_bias: float, context_threshold: float = 0.5, window: int = 3,
                   cnn_logit: float | None = None) -> None:
    """A model whose texture head says ``texture_bias`` (logit) for every face; with ``cnn_logit``, a cnn
    cue whose network says that logit for every face."""
    n = texture.FEATURE_COUNT
    cues = {"texture": {"features": texture.FEATURES, "mean": [0.0] * n, "scale": [1.0] * n, "weights": [0.0] * n,
                        "bias": texture_bias, "threshold": 0.5, "validated": {"print": {"apcer": 0.1}}},
            "context": {"features": context.FEATURES, "threshold": context_threshold},
            "motion": {"features": motion.FEATURES, **motion.MotionSettings().as_manifest()}}
    if cnn_logit is not None:
        cues["cnn"] = constant_cnn(models, cnn_logit)
    write_model({"format": FORMAT, "window": window, "cues": cues}, models / "liveness.json")


def phone_attack(path, name: str = ENROLLED[0], frames: int = 20):
    image = cv2.imread(str(photo(name, 3)))[..., ::-1]
    motion_kind = liveness_synth.Motion(yaw_deg=30, pitch_deg=15, roll_deg=4, shift=0.02, depth=0.03)
    rgb, _ = liveness_synth.flat_attack(image, np.random.default_rng(7), frames, size=SIZE, kind="phone",
                                        motion=motion_kind, card_width_m=0.16, distance_m=0.26)
    return write_clip(path, [frame[..., ::-1] for frame in rgb])


def run(tmp_path, enrolled, pipeline, mock_factory, clip, **values):
    gallery, key = enrolled
    events = tmp_path / "events.jsonl"
    # the phone is small in these 320x240 clips: judge faces from 60 px
    values = {"events.file": str(events), "decision.min_face_px": 60, **values}
    daemon = Daemon(settings(gallery, key, f"file://{clip}", **values),
                    until_end=True, pin_factory=mock_factory, pipeline=pipeline)
    return daemon, daemon.run(), read_events(events)


def test_the_phone_attack_is_the_enrolled_person_and_would_open_the_door_without_liveness(
        tmp_path, home, enrolled, pipeline, mock_factory):
    clip = phone_attack(tmp_path / "attack.avi")
    _, code, events = run(tmp_path, enrolled, pipeline, mock_factory, clip, **{"decision.liveness": "off"})
    assert code == 0 and [e["person"] for e in events if e["unlock"]] == [ENROLLED[0]]


def test_a_cue_that_calls_every_face_an_attack_keeps_the_door_shut_and_is_named(
        tmp_path, home, enrolled, pipeline, mock_factory):
    liveness_model(home, texture_bias=20.0)
    clip = phone_attack(tmp_path / "attack.avi")
    daemon, code, events = run(tmp_path, enrolled, pipeline, mock_factory, clip)
    assert code == 0 and daemon.liveness.cues == ("texture", "context", "motion")
    faces = [e for e in events if e["person"] is not None]
    assert faces and not any(e["unlock"] for e in events)
    assert all(e["refused_by"] == "texture" and e["live"] is False for e in faces)
    assert any(e["reason"] == "not live" for e in faces)
    assert levels(mock_factory.pin(PIN)) == [False]


def test_a_track_refused_for_good_is_not_measured_again(tmp_path, home, enrolled, pipeline, mock_factory,
                                                        monkeypatch):
    # the daemon's judges settle (edge.liveness.judge): once a track is refused for good, its cues cost nothing
    liveness_model(home, texture_bias=20.0)  # the texture cue refuses the first full window (3 frames)
    measured, shared = [], []
    features, embed = context.features, pipeline.embed
    monkeypatch.setattr(context, "features", lambda *args: measured.append(1) or features(*args))
    monkeypatch.setattr(pipeline, "embed", lambda chips, share=False: shared.append(share) or embed(chips, share))
    clip = phone_attack(tmp_path / "attack.avi")
    _, code, events = run(tmp_path, enrolled, pipeline, mock_factory, clip)
    faces = [e for e in events if e["person"] is not None]
    assert code == 0 and len(faces) >= 10 and not any(e["unlock"] for e in events)
    assert all(e["refused_by"] == "texture" for e in faces)
    # measured: the frames up to the refusal, and those after a frame without a face (the judge starts over)
    earlier = [e for e in faces if e["liveness_reason"] == "attack, called earlier in this track"]
    assert len(earlier) >= 5 and len(measured) == len(faces) - len(earlier)
    # and the helper, measuring nothing for them, embedded their mirror images meanwhile
    assert len(shared) == len(events) and {e["frame"] for e, share in zip(events, shared) if share} >= \
        {e["frame"] for e in earlier}


def test_the_phone_attack_is_refused_by_its_bezel_or_its_flat_motion(tmp_path, home, enrolled, pipeline,
                                                                     mock_factory):
    liveness_model(home, texture_bias=-20.0)  # the texture cue passes everything: the other cues must decide
    clip = phone_attack(tmp_path / "attack.avi")
    _, code, events = run(tmp_path, enrolled, pipeline, mock_factory, clip)
    faces = [e for e in events if e["person"] == ENROLLED[0]]
    assert code == 0 and len(faces) >= 5 and not any(e["unlock"] for e in events)
    assert {e["refused_by"] for e in faces} <= {"context", "motion", None}
    assert all(e["refused_by"] is not None for e in faces if e["reason"] == "not live")
    assert levels(mock_factory.pin(PIN)) == [False]


def test_the_phone_attack_is_refused_by_its_flat_motion_when_no_other_cue_can_refuse(
        tmp_path, home, enrolled, pipeline, mock_factory):
    # (the daemon stops measuring a track once it is refused for good, so the bezel, when the context cue
    # calls it first, would leave the motion cue unasked: here it cannot)
    liveness_model(home, texture_bias=-20.0, context_threshold=1.01)
    clip = phone_attack(tmp_path / "attack.avi")
    _, code, events = run(tmp_path, enrolled, pipeline, mock_factory, clip)
    faces = [e for e in events if e["person"] == ENROLLED[0]]
    assert code == 0 and len(faces) >= 5 and not any(e["unlock"] for e in events)
    assert any(e["refused_by"] == "motion" and "motion" in e["refusing"] for e in faces)  # the card turned like a plane
    assert levels(mock_factory.pin(PIN)) == [False]


def test_a_face_the_cues_cannot_fault_still_opens_the_door(tmp_path, home, enrolled, pipeline, mock_factory):
    liveness_model(home, texture_bias=-20.0, context_threshold=1.01)  # context can never refuse
    clip = write_clip(tmp_path / "ann.avi", person_frames(ENROLLED[0], 8, number=3))
    _, code, events = run(tmp_path, enrolled, pipeline, mock_factory, clip, **{"liveness.cues": "texture,context,motion"})
    assert code == 0 and [e["person"] for e in events if e["unlock"]] == [ENROLLED[0]]
    unlock = next(e for e in events if e["unlock"])
    assert unlock["live"] is True and unlock["refused_by"] is None and unlock["liveness"]["motion"] == "undecided"


def test_the_cnn_cue_refusing_every_face_keeps_the_door_shut_for_a_real_one_and_is_named(
        tmp_path, home, enrolled, pipeline, mock_factory):
    # the face the other cues cannot fault (the test above opens for it), with a network that calls it an attack
    liveness_model(home, texture_bias=-20.0, context_threshold=1.01, cnn_logit=20.0)
    clip = write_clip(tmp_path / "ann.avi", person_frames(ENROLLED[0], 8, number=3))
    daemon, code, events = run(tmp_path, enrolled, pipeline, mock_factory, clip)
    assert code == 0 and daemon.liveness.cues == ("texture", "cnn", "context", "motion")
    faces = [e for e in events if e["person"] == ENROLLED[0]]
    assert len(faces) >= 5 and not any(e["unlock"] for e in events)
    assert all(e["refused_by"] == "cnn" for e in faces[2:])  # from the full window (3 frames) on
    assert all(e["liveness"]["cnn"] == pytest.approx(20.0, abs=1e-3) for e in faces)
    assert levels(mock_factory.pin(PIN)) == [False]


def test_a_cnn_network_that_is_not_the_models_refuses_to_start_locked(tmp_path, home, enrolled, pipeline,
                                                                       mock_factory):
    from edge.exc import ManifestMismatch
    from edge.liveness import cnn

    liveness_model(home, texture_bias=-20.0, cnn_logit=-20.0)
    network = home / cnn.FILE_NAME
    network.write_bytes(network.read_bytes() + b"\0")  # replaced after the model was written
    clip = write_clip(tmp_path / "ann.avi", person_frames(ENROLLED[0], 3, number=3))
    with pytest.raises(ManifestMismatch, match="SHA-256"):
        run(tmp_path, enrolled, pipeline, mock_factory, clip)
    assert levels(mock_factory.pin(PIN)) == [False]


def test_active_liveness_waits_for_a_head_turn_a_still_face_never_gets_in(tmp_path, home, enrolled, pipeline,
                                                                         mock_factory):
    liveness_model(home, texture_bias=-20.0, context_threshold=1.01)
    clip = write_clip(tmp_path / "ann.avi", person_frames(ENROLLED[0], 8, number=3))
    _, code, events = run(tmp_path, enrolled, pipeline, mock_factory, clip, **{"liveness.active": True})
    assert code == 0 and not any(e["unlock"] for e in events)
    assert any(e["liveness_reason"] == "waiting for a head turn" and e["refused_by"] == "motion" for e in events)


def test_a_listed_cue_without_its_model_refuses_to_start_locked(tmp_path, home, enrolled, pipeline, mock_factory):
    from edge.exc import NoLivenessModel

    clip = write_clip(tmp_path / "ann.avi", person_frames(ENROLLED[0], 3, number=3))
    with pytest.raises(NoLivenessModel, match="edge-verify train liveness"):
        run(tmp_path, enrolled, pipeline, mock_factory, clip, **{"liveness.cues": "texture"})
    assert levels(mock_factory.pin(PIN)) == [False]



def test_without_any_liveness_model_the_daemon_warns_at_start_and_runs(tmp_path, home, enrolled, pipeline,
                                                                      mock_factory, caplog):
    clip = write_clip(tmp_path / "ann.avi", person_frames(ENROLLED[0], 4, number=3))
    with caplog.at_level("WARNING", logger="edge.daemon.parts"):
        daemon, code, events = run(tmp_path, enrolled, pipeline, mock_factory, clip)
    assert code == 0 and daemon.liveness is None
    warning = " ".join(record.getMessage() for record in caplog.records)
    assert "no liveness check" in warning and "printed photo or a phone picture" in warning
    assert "edge-verify train liveness" in warning
    assert all("refused_by" not in event for event in events)


def test_a_cue_failing_on_the_helper_thread_stops_the_daemon_with_the_door_locked(
        tmp_path, home, enrolled, pipeline, mock_factory, monkeypatch):
    from edge.liveness.judge import TrackJudge

    def broken(self, image, main, without=()):
        raise RuntimeError("the context cue broke")

    liveness_model(home, texture_bias=-20.0)
    monkeypatch.setattr(TrackJudge, "measure", broken)
    clip = write_clip(tmp_path / "ann.avi", person_frames(ENROLLED[0], 6))
    with pytest.raises(RuntimeError, match="the context cue broke"):
        run(tmp_path, enrolled, pipeline, mock_factory, clip)
    assert levels(mock_factory.pin(PIN)) == [False]
    # the session's pipeline is handed back without the daemon's helper thread
    assert pipeline.helper is None and pipeline.detector.helper is None


def test_the_daemon_gives_numpy_and_opencv_their_threads_back(tmp_path, home, enrolled, pipeline, mock_factory):
    before = cv2.getNumThreads()
    liveness_model(home, texture_bias=-20.0)
    clip = write_clip(tmp_path / "ann.avi", person_frames(ENROLLED[0], 6))
    seen = []

    class Watching(Daemon):
        def _judge(self, frame, read_started):
            seen.append((cv2.getNumThreads(), self.pipeline.detector.helper is not None))
            return super()._judge(frame, read_started)

    gallery, key = enrolled
    values = {"events.file": str(tmp_path / "events.jsonl"), "engine.threads": 1}
    code = Watching(settings(gallery, key, f"file://{clip}", **values), until_end=True, pin_factory=mock_factory,
                    pipeline=pipeline).run()
    assert code == 0 and seen and all(entry == (1, True) for entry in seen)
    assert cv2.getNumThreads() == before and pipeline.detector.helper is None


def test_the_chip_cues_are_scored_by_whichever_thread_is_free_first_with_the_same_measures(
        tmp_path, home, enrolled, pipeline, mock_factory, monkeypatch):
    # texture and cnn read the face's grey chip: the daemon's thread scores them when the helper is still busy
    # with the other cues, the helper when the daemon's thread is still embedding; the race is forced here
    import threading
    import time

    from edge.liveness.judge import TrackJudge

    liveness_model(home, texture_bias=-20.0, context_threshold=1.01, cnn_logit=-20.0)
    monkeypatch.setattr(pipeline, "flip", False)
    threads, recorded = [], []
    texture_features, context_features, record, embed = texture.features, context.features, TrackJudge.record, \
        pipeline.embed
    monkeypatch.setattr(texture, "features",
                        lambda chip: threads.append(threading.current_thread().name) or texture_features(chip))
    monkeypatch.setattr(TrackJudge, "record", lambda judge, cues, main: recorded.append(dict(cues.scores))
                        or record(judge, cues, main))
    clip = write_clip(tmp_path / "ann.avi", person_frames(ENROLLED[0], 8, number=3))
    here = threading.current_thread().name  # the daemon runs on the test's thread

    def busy(seconds, measure):
        return lambda *args, **kwargs: time.sleep(seconds) or measure(*args, **kwargs)

    runs = {}
    for name, (owner, attribute, original) in (("helper busy", (context, "features", context_features)),
                                                ("daemon busy", (pipeline, "embed", embed))):
        monkeypatch.setattr(owner, attribute, busy(0.15, original))
        threads.clear(), recorded.clear()
        (tmp_path / name).mkdir()
        _, code, events = run(tmp_path / name, enrolled, pipeline, mock_factory, clip)
        monkeypatch.setattr(owner, attribute, original)
        runs[name] = (code, list(threads), list(recorded), events)
    code, threads_a, measures, events = runs["helper busy"]
    assert code == 0 and len(measures) >= 5 and all(set(m) == {"texture", "cnn", "context"} for m in measures)
    assert threads_a == [here] * len(measures)
    code, threads_b, measures_b, events_b = runs["daemon busy"]
    assert code == 0 and len(threads_b) == len(measures) and here not in threads_b
    assert measures_b == measures  # to the bit
    timing = ("time", "latency_ms", "read_ms")
    assert [{k: v for k, v in e.items() if k not in timing} for e in events_b] == \
        [{k: v for k, v in e.items() if k not in timing} for e in events]
    # with the mirror image the daemon's thread embeds two images, and the helper measures every cue
    monkeypatch.setattr(pipeline, "flip", True)
    monkeypatch.setattr(context, "features", busy(0.15, context_features))
    threads.clear()
    (tmp_path / "flip").mkdir()
    run(tmp_path / "flip", enrolled, pipeline, mock_factory, clip)
    assert len(threads) == len(measures) and here not in threads
