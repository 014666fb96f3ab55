"""Each injected fault FAILs the right check with a line a technician can act on (real CLI, subprocess)."""
from __future__ import annotations

import json
import os
import re
import shutil

import pytest

from selftest_kit import by_name, selftest


def statuses(report: dict, prefix: str) -> dict:
    return {check["name"]: check["status"] for check in report["checks"] if check["name"].startswith(prefix)}


# -- camera -------------------------------------------------------------------------------------

def test_missing_camera_file_fails_open_and_skips_the_rest(kiosk, tmp_path):
    missing = tmp_path / "no-such-clip.avi"
    code, report, _ = selftest(kiosk, "--only", "camera", "--source", f"file://{missing}")
    checks = by_name(report)
    assert code == 1 and report["summary"]["failures"] == ["camera.open"]
    assert checks["camera.open"]["detail"] == f"no such video file: {missing} (from 'file://{missing}')"
    assert {name for name, status in statuses(report, "camera.").items() if status == "SKIP"} == {
        "camera.frames", "camera.format", "camera.picture", "camera.frozen", "camera.face",
        "camera.liveness"}


def test_garbage_camera_file_fails_open(kiosk, tmp_path):
    garbage = tmp_path / "clip.avi"
    garbage.write_bytes(os.urandom(4096))
    code, report, _ = selftest(kiosk, "--only", "camera", "--source", f"file://{garbage}")
    detail = by_name(report)["camera.open"]["detail"]
    assert code == 1 and by_name(report)["camera.open"]["status"] == "FAIL"
    assert detail.startswith(f"cannot open {garbage} as a video: not a video, an unsupported codec, or a damaged file")


def test_frozen_frames_fail(kiosk, clips):
    code, report, _ = selftest(kiosk, "--only", "camera", "--source", f"file://{clips['frozen']}")
    checks = by_name(report)
    assert code == 1 and report["summary"]["failures"] == ["camera.frozen"]
    # 37 changes between 38 frames; MJPG may give the first frame a slightly different decode.
    frozen = re.match(r"frames are frozen: (\d+) of 37 frame-to-frame changes over 38 frames are below 0.1 grey levels",
                      checks["camera.frozen"]["detail"])
    assert frozen and int(frozen.group(1)) >= 36
    assert "reconnect the camera" in checks["camera.frozen"]["detail"]
    assert checks["camera.open"]["status"] == checks["camera.picture"]["status"] == "PASS"


def test_black_frames_fail(kiosk, clips):
    code, report, _ = selftest(kiosk, "--only", "camera", "--source", f"file://{clips['black']}")
    detail = by_name(report)["camera.picture"]["detail"]
    assert code == 1 and "camera.picture" in report["summary"]["failures"]
    assert detail.startswith("38 of 38 frames are black (brightness 0/255") and "remove the lens cap" in detail


def test_frames_of_another_size_and_rate_than_expected_fail(kiosk):
    code, report, _ = selftest(kiosk, "--only", "camera", "--expect-size", "1280x720", "--expect-fps", "30")
    detail = by_name(report)["camera.format"]["detail"]
    assert code == 1 and report["summary"]["failures"] == ["camera.format"]
    assert detail.startswith("frames are 250x250, configured 1280x720") and "25.0 fps, configured 30" in detail


def test_expected_size_and_rate_pass(kiosk):
    code, report, _ = selftest(kiosk, "--only", "camera", "--expect-size", "250x250", "--expect-fps", "25")
    assert code == 0 and by_name(report)["camera.format"] == {
        "name": "camera.format", "status": "PASS", "detail": "250x250 @ 25.0 fps as configured",
        "ms": by_name(report)["camera.format"]["ms"]}


# -- compute ------------------------------------------------------------------------------------

@pytest.fixture
def edited_home(kiosk, tmp_path):
    """A copy of the kiosk home whose engine manifests can be edited (engine files linked, manifests copied)."""
    home = tmp_path / "home"
    engines = home / "models" / "engines"
    engines.mkdir(parents=True)
    source = (kiosk["home"] / "models" / "engines").resolve()
    for item in source.iterdir():
        if item.suffix == ".json":
            shutil.copy(item, engines / item.name)
        else:
            (engines / item.name).symlink_to(item)
    for name in ("gallery.sqlite", "gallery.audit.jsonl", "gallery.key"):
        shutil.copy2(kiosk["home"] / name, home / name)

    def edit(engine: str, **changes) -> None:
        path = engines / f"{engine}.json"
        manifest = json.loads(path.read_text())
        manifest.update(changes)
        path.write_text(json.dumps(manifest))

    return home, edit


@pytest.mark.parametrize("change,expected", [
    ({"backend_version": "2.0.0"}, "engine was built with onnxruntime 2.0.0, this device runs"),
    ({"engine_sha256": "0" * 64}, "does not match its manifest (sha256"),
])
def test_engine_manifest_mismatch_fails_that_engine(kiosk, edited_home, change, expected):
    home, edit = edited_home
    edit("embedding.fp32.onnx", **change)
    code, report, _ = selftest(kiosk, "--only", "compute", home=home)
    checks = by_name(report)
    failed = checks["compute.engine.embedding.fp32.onnx"]
    assert code == 1 and failed["status"] == "FAIL" and expected in failed["detail"] and "rebuild" in failed["detail"]
    assert checks["compute.engine.detector-onet.fp32.onnx"]["status"] == "PASS"
    assert checks["compute.latency"]["status"] == "SKIP"


def test_embedding_slower_than_its_budget_fails(kiosk):
    code, report, _ = selftest(kiosk, "--only", "compute", "--latency-budget-ms", "0.01")
    detail = by_name(report)["compute.latency"]["detail"]
    assert code == 1 and report["summary"]["failures"] == ["compute.latency"]
    assert detail.endswith("budget 0.01 ms: too slow. See system.temperature and system.throttling, and `top` for "
                           "another busy process; on a Jetson select the full power mode (sudo nvpmodel -m 0; "
                           "sudo jetson_clocks); or build a faster engine (edge-verify build --precision fp16)")
    assert re.match(r"[\d.]+ ms per face chip \(median of 5, embedding\.fp32\.onnx\)", detail)


# -- gallery ------------------------------------------------------------------------------------

def test_missing_key_fails_and_the_keyed_audit_chain_waits_for_it(kiosk, tmp_path):
    missing = tmp_path / "gallery.key"
    code, report, _ = selftest(kiosk, "--only", "gallery", "--key", str(missing))
    checks = by_name(report)
    assert code == 1 and report["summary"]["failures"] == ["gallery.key"]
    assert checks["gallery.key"]["detail"].startswith(f"no gallery key at {missing}")
    assert checks["gallery.open"]["status"] == "SKIP" and "without its key" in checks["gallery.open"]["detail"]
    assert checks["gallery.audit"]["status"] == "SKIP" and "keyed with the gallery key" in checks["gallery.audit"]["detail"]


def test_key_readable_by_others_fails_with_the_fix(kiosk, tmp_path):
    key = tmp_path / "gallery.key"
    shutil.copy(kiosk["key"], key)
    key.chmod(0o644)
    code, report, _ = selftest(kiosk, "--only", "gallery", "--key", str(key))
    assert code == 1
    assert f"run `chmod 600 {key}`" in by_name(report)["gallery.key"]["detail"]


def test_wrong_key_fails_open(kiosk, tmp_path):
    from edge.gallery.crypto import create_key

    create_key(tmp_path / "other.key")
    code, report, _ = selftest(kiosk, "--only", "gallery", "--key", str(tmp_path / "other.key"))
    checks = by_name(report)
    assert code == 1 and report["summary"]["failures"] == ["gallery.open"]
    assert checks["gallery.open"]["detail"].startswith("the key does not match this gallery")
    assert checks["gallery.decrypt"]["status"] == "SKIP"


# -- door ---------------------------------------------------------------------------------------

def test_relay_feedback_that_never_changes_fails_and_the_door_ends_locked(kiosk):
    # BOARD16 is a mock input with nothing wired to it: it cannot see the pulse.
    code, report, _ = selftest(kiosk, "--only", "door", "--yes", "--feedback-pin", "BOARD16")
    checks = by_name(report)
    assert code == 1 and report["summary"]["failures"] == ["door.feedback"]
    assert checks["door.feedback"]["detail"].startswith(
        "relay feedback never changed: check relay wiring/coil supply (feedback on BOARD16 stayed low")
    assert checks["door.relay"]["status"] == checks["door.locked"]["status"] == "PASS"


def test_without_a_terminal_or_yes_the_relay_is_not_pulsed(kiosk):
    code, report, _ = selftest(kiosk, "--only", "door")
    checks = by_name(report)
    assert code == 0
    assert checks["door.relay"] == {"name": "door.relay", "status": "SKIP", "ms": 0.0,
                                    "detail": "no terminal to confirm the relay pulse: rerun with --yes to pulse the relay"}
    assert checks["door.sensor"]["status"] == "PASS" and checks["door.locked"]["status"] == "SKIP"


def test_no_face_in_front_of_the_camera_fails_the_face_check(kiosk, clips):
    code, report, _ = selftest(kiosk, "--only", "camera", "--with-face", "--source", f"file://{clips['black']}")
    detail = by_name(report)["camera.face"]["detail"]
    assert code == 1 and by_name(report)["camera.face"]["status"] == "FAIL"
    assert detail.startswith("no face in ") and "stand 0.5-1 m in front of the camera" in detail


def test_faces_too_small_for_the_daemon_fail_the_face_check(kiosk):
    code, report, _ = selftest(kiosk, "--only", "camera", "--with-face", "--min-face", "200")
    detail = by_name(report)["camera.face"]["detail"]
    assert code == 1 and report["summary"]["failures"] == ["camera.face"]
    assert re.match(r"faces found, but the largest is 1\d\d px and the daemon ignores faces under 200 px: stand closer",
                    detail)


def test_edited_audit_log_fails_the_audit_check(kiosk, tmp_path):
    for name in ("gallery.sqlite", "gallery.audit.jsonl"):
        shutil.copy2(kiosk["home"] / name, tmp_path / name)
    log = tmp_path / "gallery.audit.jsonl"
    text = log.read_text()
    assert '"actor":"test"' in text
    log.write_text(text.replace('"actor":"test"', '"actor":"someone else"', 1))
    code, report, _ = selftest(kiosk, "--only", "gallery", "--gallery", str(tmp_path / "gallery.sqlite"),
                               "--key", str(kiosk["key"]))
    checks = by_name(report)
    assert code == 1 and report["summary"]["failures"] == ["gallery.audit"]
    assert checks["gallery.audit"]["detail"].startswith(f"audit log {log} is broken at record 1: line 1: ")
    assert checks["gallery.decrypt"]["status"] == "PASS"
