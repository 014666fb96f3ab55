"""The CNN liveness experiment's wide chip (benchmarks/liveness_cnn.py): where the face box lands."""
from __future__ import annotations

import numpy as np

from buildkit import load_benchmark

BENCH = load_benchmark("liveness_cnn")


def square(size: int, box) -> np.ndarray:
    image = np.zeros((size, size, 3), np.uint8)
    x0, y0, x1, y1 = box
    image[y0:y1, x0:x1] = 255
    return image


def test_the_box_fills_its_share_of_the_wide_chip_in_the_middle():
    chip = BENCH.wide_chip(square(400, (150, 150, 250, 250)), np.array([150.0, 150, 250, 250]))
    lit = np.argwhere(chip > 127)
    width = BENCH.texture.CHIP_SIZE / BENCH.WIDE_SCALE  # the box is 1 / WIDE_SCALE of the chip across
    assert abs((lit[:, 1].max() - lit[:, 1].min() + 1) - width) <= 1.5
    assert abs((lit[:, 0].max() - lit[:, 0].min() + 1) - width) <= 1.5
    assert np.allclose(lit.mean(axis=0), (BENCH.texture.CHIP_SIZE - 1) / 2, atol=1.0)


def test_a_camera_of_twice_the_resolution_gives_the_same_chip():
    small = BENCH.wide_chip(square(400, (150, 150, 250, 250)), np.array([150.0, 150, 250, 250]))
    large = BENCH.wide_chip(square(800, (300, 300, 500, 500)), np.array([300.0, 300, 500, 500]))
    assert np.abs(small.astype(int) - large.astype(int)).max() <= 40
    assert np.abs(small.astype(int) - large.astype(int)).mean() < 2


def test_outside_the_frame_is_black():
    chip = BENCH.wide_chip(square(200, (0, 0, 100, 100)), np.array([0.0, 0, 100, 100]))
    assert chip[:5, :5].max() == 0  # the chip's top-left corner lies above and left of the frame
    assert chip[40, 40] == 255


def shifted_part(attack, members, boundary=0.0):
    """One split's part as run_split makes it, with one shift whose cue is the members' mean."""
    members = [np.asarray(m, float) for m in members]
    mean = np.mean(members, axis=0)
    scores = {"cnn": mean, "cnn@boundary": mean, "texture": np.zeros(len(attack)), "context": np.zeros(len(attack))}
    return {"attack": np.asarray(attack), "scores": scores, "members": members,
            "thresholds": {"cnn": boundary, "cnn@boundary": boundary, "texture": 1.0, "context": 1.0},
            "shifts": {"dark": {"attack": np.asarray(attack), "members": members,
                                "scores": {"cnn": mean, "texture": scores["texture"], "context": scores["context"]}}}}


def test_each_member_is_judged_alone_under_a_shift_beside_their_mean():
    # two splits; attack frames score positive when refused. Member 1 lets every attack of the first split in.
    first = shifted_part([True, True, False, False], [[2.0, 3.0, -1.0, -2.0], [-1.0, -2.0, -3.0, -1.0]])
    second = shifted_part([True, False], [[1.0, 1.0], [2.0, -2.0]])
    row = BENCH.figures([first, second], diagnostic=False)
    dark = row["shifts"]["dark"]
    assert [(m["apcer"], m["bpcer"]) for m in dark["members@boundary"]] == [(0.0, 1 / 3), (2 / 3, 0.0)]
    assert dark["members@boundary"] == row["members@boundary"]  # the same frames, unshifted here
    # the mean (the shipped cue) as before: first split 0.5, 0.5, -2, -1.5; second 1.5, -0.5
    assert (dark["cnn"]["apcer"], dark["cnn"]["bpcer"]) == (0.0, 0.0)


def test_one_network_has_no_member_figures():
    part = shifted_part([True, False], [[1.0, -1.0]])
    part["members"], part["shifts"]["dark"]["members"] = [part["members"][0]], []
    row = BENCH.figures([part], diagnostic=False)
    assert "members@boundary" not in row and "members@boundary" not in row["shifts"]["dark"]


def fold(kind: str, cnn, texture, attack, folder: str = "f") -> dict:
    attack = np.asarray(attack, bool)
    return {"type": kind, "folder": folder, "attack": attack,
            "scores": {"cnn": np.asarray(cnn, float), "texture": np.asarray(texture, float),
                       "context": np.zeros(len(attack))}}


def test_the_fused_score_of_a_fold_is_fitted_on_the_other_folds_alone():
    rng = np.random.default_rng(0)

    def noisy_fold(kind, folder, flip_texture=False):
        attack = np.repeat([True, False], 100)
        texture = np.where(attack, 1.0, -1.0) + rng.normal(0, 0.3, 200)  # texture separates, the cnn does not
        return fold(kind, rng.normal(0, 1, 200), -texture if flip_texture else texture, attack, folder)

    agreeing = [noisy_fold("print", "a"), noisy_fold("print", "a"), noisy_fold("screen", "b")]
    row = BENCH.fused_figures(agreeing)
    assert row["print"]["apcer"] < 0.05 and row["print"]["bpcer"] < 0.05
    assert row["print"]["oracle_apcer_at_bpcer_5"]["fused"] < 0.05
    assert row["print"]["oracle_apcer_at_bpcer_5"]["cnn"] > 0.5  # the cnn alone ranks at chance here
    # a judged fold whose texture says the opposite of the others': fitted on them, the fusion is wrong on it
    flipped = agreeing[:2] + [noisy_fold("screen", "b", flip_texture=True)]
    assert BENCH.fused_figures(flipped)["screen"]["apcer"] > 0.9


def test_apcer_at_bpcer_reads_the_threshold_off_the_real_frames():
    scores = np.array([0.0, 1.0, 2.0, 3.0, 10.0, 2.5, 3.5, 11.0])
    attack = np.array([False] * 5 + [True] * 3)
    # at most 20 % of the 5 real frames may be refused: the cut is 3.0 (only 10.0 above it)
    assert BENCH.apcer_at_bpcer(scores, attack, 0.2) == 1 / 3  # 2.5 is accepted
    assert BENCH.apcer_at_bpcer(scores, attack, 0.0) == 2 / 3  # no real frame refused: the cut is 10.0


def test_the_clip_judgement_uses_the_motion_wait_asked_for(monkeypatch):
    from edge.liveness import motion

    # one real clip of 6 still frames (no pair turns or shows parallax) whose frame cues all pass: live from
    # the 5th frame with the shipped wait, never within 6 frames when the motion cue waits 8
    clip = {"rows": list(range(6)), "measures": [[]] + [[(0.0, 0.0, 0.0)]] * 5, "live": True}
    monkeypatch.setattr(BENCH, "folder_clips", lambda folder: [clip])
    scores = {cue: np.full(6, -1.0) for cue in ("cnn", "texture", "context")}
    thresholds = {"texture": 0.5, "context": 0.5}
    mask = np.ones(6, bool)
    shipped = BENCH.clip_counts(None, mask, scores, thresholds, 0.0)
    longer = BENCH.clip_counts(None, mask, scores, thresholds, 0.0, motion.WAITS[8])
    assert shipped["cnn+texture+context+motion"]["real_refused"] == 0
    assert longer["cnn+texture+context+motion"]["real_refused"] == 1
    assert BENCH.parse_args(["--nuaa", "n", "--replay", "r"]).motion_wait == 5
