"""`edge-verify bench lfw` and `bench speed` on a small LFW-layout folder built from the fixtures.

Checks the JSON contract acceptance scripts rely on, and that the numbers are the
pipeline's (real models, real faces), not placeholders.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FACES = Path(__file__).resolve().parent / "fixtures" / "faces"
PEOPLE = ["Colin_Powell", "George_W_Bush", "Serena_Williams", "Tony_Blair"]


@pytest.fixture(scope="module")
def mini_lfw(tmp_path_factory, models_ready):
    root = tmp_path_factory.mktemp("lfw")
    for person in PEOPLE:
        (root / "images" / person).mkdir(parents=True)
        for photo in sorted(FACES.glob(f"{person}_*.jpg")):
            shutil.copy(photo, root / "images" / person / photo.name)
    # Two folds of 2 matched + 2 mismatched pairs, in pairs.txt's layout.
    lines = ["2\t2",
             "Colin_Powell\t1\t2", "George_W_Bush\t1\t3", "Colin_Powell\t3\tTony_Blair\t1", "George_W_Bush\t2\tSerena_Williams\t1",
             "Serena_Williams\t2\t4", "Tony_Blair\t2\t3", "Serena_Williams\t3\tColin_Powell\t4", "Tony_Blair\t4\tGeorge_W_Bush\t4"]
    (root / "pairs.txt").write_text("\n".join(lines) + "\n")
    return root


def edge_verify(*args):
    return subprocess.run([sys.executable, "-m", "edge", *map(str, args)], capture_output=True, text=True,
                          env=os.environ.copy(), timeout=300)


def test_bench_lfw_json(mini_lfw, tmp_path):
    out = tmp_path / "lfw.json"
    result = edge_verify("bench", "lfw", "--lfw", mini_lfw, "--json", out)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    for key in ("accuracy_mean", "accuracy_std", "accuracy_at_threshold", "auc", "tar_at_far_1e-3", "no_face", "images", "ms"):
        assert key in report
    assert set(report["ms"]) >= {"detect", "align", "embed", "total"}
    assert report["images"] == 16 and report["no_face"] == 0
    # These eight pairs are easy for the real model: every one right at the shipped threshold.
    assert report["accuracy_at_threshold"] == 1.0
    assert report["auc"] == 1.0
    assert report["ms"]["total"] > report["ms"]["embed"] > 0
    assert "10-fold accuracy" in result.stdout  # the table


def test_bench_speed_json(mini_lfw, tmp_path):
    out = tmp_path / "speed.json"
    result = edge_verify("bench", "speed", "--images", mini_lfw / "images", "--warmup", "1", "--json", out)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["images"] == 16
    for stage in ("detect", "align", "embed", "total"):
        assert report["ms"][stage]["p90"] >= report["ms"][stage]["median"] > 0


def test_bench_lfw_wrong_folder_is_one_clear_line(tmp_path):
    result = edge_verify("bench", "lfw", "--lfw", tmp_path)
    assert result.returncode != 0
    assert "cannot read LFW pairs file" in result.stderr
