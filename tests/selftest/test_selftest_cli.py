"""`edge-verify selftest` end to end on this machine: a file:// camera, mock GPIO, real engines, a real gallery."""
from __future__ import annotations

import re

from edge.engines.device import describe_device
from selftest_kit import by_name, selftest

STATUSES = {"PASS", "FAIL", "SKIP"}
# Latency figures belong to benchmarks: this machine's cores are shared, so the all-pass run
# gives the budget room; test_faults checks that a budget the engine cannot meet FAILs.
ROOMY_BUDGET = ("--latency-budget-ms", "2000")


def test_every_check_passes_or_skips_with_its_reason(kiosk, clips):
    code, report, stderr = selftest(kiosk, "--yes", "--with-face", *ROOMY_BUDGET)
    checks = by_name(report)
    failed = {name: check["detail"] for name, check in checks.items() if check["status"] == "FAIL"}
    assert failed == {}, stderr
    assert code == 0
    for check in report["checks"]:
        assert set(check) == {"name", "status", "detail", "ms"}
        assert check["status"] in STATUSES and check["detail"].strip() and check["ms"] >= 0
    must_pass = [
        "camera.open", "camera.frames", "camera.picture", "camera.frozen", "camera.face",
        "compute.engine.embedding.fp32.onnx", "compute.engine.detector-pnet.fp32.onnx", "compute.latency",
        "door.sensor", "door.exit_button", "door.relay", "door.locked",
        "gallery.key", "gallery.open", "gallery.decrypt", "gallery.people", "gallery.model", "gallery.threshold",
        "gallery.audit", "system.disk", "system.clock",
    ]
    assert {name: checks[name]["status"] for name in must_pass} == {name: "PASS" for name in must_pass}
    assert checks["camera.open"]["detail"] == f"opened file://{clips['faces']} 250x250 @ 25 fps"
    assert "3 people, 6 templates" in checks["gallery.people"]["detail"]
    assert "mock pins" in checks["door.relay"]["detail"]
    assert "no feedback input" in checks["door.feedback"]["detail"]
    if describe_device() is None:
        for name in ("compute.gpu", "compute.cuda_preprocess"):
            assert checks[name]["status"] == "SKIP" and "CPU-only" in checks[name]["detail"]
    summary = report["summary"]
    assert summary["ok"] is True and summary["failed"] == 0 and summary["failures"] == []
    assert summary["passed"] + summary["skipped"] == len(report["checks"])
    assert summary["passed"] == sum(1 for check in report["checks"] if check["status"] == "PASS")


def test_text_report_has_one_line_per_check_and_a_summary(kiosk):
    code, text, _ = selftest(kiosk, "--only", "gallery,system", json_output=False)
    lines = text.strip().splitlines()
    assert lines[0].startswith("edge-verify selftest: gallery, system; config ")
    checks = lines[1:-1]
    assert len(checks) >= 12
    for line in checks:
        assert re.fullmatch(r"(PASS|FAIL|SKIP) (gallery|system)\.\w+ +\S.* \(\d+ ms\)", line), line
    assert not any(line.startswith(("camera.", "compute.", "door.")) for line in checks)
    assert re.fullmatch(r"selftest: \d+ passed, 0 failed, \d+ skipped in [\d.]+ s; nothing failed", lines[-1])
    assert code == 0


def test_unknown_group_is_a_one_line_error(kiosk):
    code, text, stderr = selftest(kiosk, "--only", "camera,relay", json_output=False)
    assert code == 2 and text == ""
    assert stderr.strip().splitlines() == [
        "edge-verify: error: --only takes a comma-separated list of camera, compute, door, gallery, fleet, system; "
        "got 'camera,relay'"]


def test_threshold_is_the_one_the_door_decides_with(kiosk, pipeline):
    """The daemon matches a face's combined frames (edge.daemon.decision.door_threshold, combined=True): the
    threshold check must show that one first, not the single-photo threshold the door no longer opens on, and
    say when it is for cohort-adjusted distances."""
    from edge.daemon.decision import door_threshold, uses_cohort

    code, report, stderr = selftest(kiosk, "--only", "gallery")
    assert code == 0, stderr
    detail = by_name(report)["gallery.threshold"]["detail"]
    door = door_threshold(pipeline.manifest, 6, combined=True).threshold
    single = door_threshold(pipeline.manifest, 6).threshold
    frames = "a face's combined frames" + (" (cohort-adjusted distances)" if uses_cohort(pipeline.manifest) else "")
    assert f"1:N threshold {door:.3f} for {frames}, {single:.3f} for one photo, for 6 templates" in detail, detail


def test_a_threshold_set_in_the_config_says_which_door_threshold_it_replaces(kiosk, pipeline, tmp_path):
    from edge.daemon.decision import door_threshold

    config = tmp_path / "config.toml"
    config.write_text(kiosk["config"].read_text() + "\n[decision]\nthreshold = 0.3\n")
    code, report, stderr = selftest({**kiosk, "config": config}, "--only", "gallery")
    assert code == 0, stderr
    detail = by_name(report)["gallery.threshold"]["detail"]
    door = door_threshold(pipeline.manifest, 6, combined=True).threshold
    assert detail.startswith(f"threshold 0.3 set in the config ([decision] threshold) replaces the 1:N rule's "
                             f"{door:.3f} for a face's combined frames"), detail
