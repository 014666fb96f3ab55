"""benchmarks/daemon_latency.py's summary of repeated runs: which figures are merged, and how."""
from __future__ import annotations

from buildkit import load_benchmark

BENCH = load_benchmark("daemon_latency")


def run(latencies, followed, fps):
    return {"total_ms": latencies, "precision": "fp32", "flip": True, "liveness": "off", "search_every": 15,
            "followed": [False, True, True], "followed_frames": followed, "frames": len(latencies), "frames_with_face": len(latencies), "unlocks": 0,
            "matched": 0, "latency_ms_p50": 0.0, "latency_ms_p95": 0.0, "decode_ms_p50": 1.0,
            "decided_after_decode_ms_p50": 1.0, "sustained_fps": fps}


def test_repeated_runs_keep_their_setting_and_take_each_frames_median():
    merged = BENCH.over_runs([run([10.0, 30.0, 20.0], 2, 40.0), run([12.0, 10.0, 22.0], 2, 42.0),
                              run([50.0, 11.0, 21.0], 1, 41.0)])
    assert merged["search_every"] == 15  # a setting, not a figure: kept as it is
    assert merged["total_ms"] == [12.0, 11.0, 21.0]  # each frame's median over the runs
    assert merged["followed_frames"] == 2.0 and merged["sustained_fps"] == 41.0
    assert merged["runs"] == 3
    # the frames followed and the frames searched, apart: frame 0 was searched, 1 and 2 followed
    assert merged["searched_ms_p50"] == merged["searched_ms_p95"] == 12.0
    assert merged["followed_ms_p50"] == 16.0 and merged["followed_ms_p95"] == 20.5
