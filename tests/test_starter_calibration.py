"""Calibrated figures measured after a models home was converted (the door's combined-probe tail)
reach it: `models fetch` converts the embedding again when its checkpoint lacks them."""
from __future__ import annotations

import torch

from edge_build.starter import CALIBRATED_KEYS, calibrated_figures, calibration_current


def test_a_checkpoint_without_the_shipped_figures_is_not_current(tmp_path):
    figures = calibrated_figures()
    assert "combined_impostor_tail" in figures and figures["combined_impostor_tail"]["count"] > 1_000_000
    current = tmp_path / "current.pt"
    torch.save({"contract": {key: figures[key] for key in CALIBRATED_KEYS}}, current)
    assert calibration_current(current)
    stale = tmp_path / "stale.pt"
    torch.save({"contract": {key: figures[key] for key in ("threshold", "impostor_tail")}}, stale)
    assert not calibration_current(stale)
