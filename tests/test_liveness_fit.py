"""The liveness heads' fitting helpers (edge_build.training.liveness_fit): thresholds and the choice of
the texture head's regularisation. Scores: higher means attack, refused at or above the threshold."""
from __future__ import annotations

import numpy as np

from edge_build.training import liveness_fit as fit


def test_apcer_is_the_share_of_attacks_scoring_under_the_threshold():
    scores = np.array([0.1, 0.2, 0.15, 0.8, 0.9])
    attack = np.array([False, False, True, True, True])
    threshold = fit.threshold_for_bpcer(scores, attack, 0.0)  # just above the highest real score, 0.2
    assert fit.apcer_at(scores, attack, threshold) == 1 / 3  # 0.15 is accepted; 0.8 and 0.9 are refused


def test_the_regularisation_chosen_accepts_the_fewest_held_out_attacks():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(6), 40)
    attack = np.tile(np.repeat([True, False], 20), 6)
    # one informative feature and many noisy ones: which L2 serves held-out groups best is measured below
    x = np.column_stack([np.where(attack, 0.8, -0.8) + rng.normal(0, 1, len(attack)),
                         rng.normal(0, 1, (len(attack), 30))])
    apcer = {}
    for l2 in fit.L2_GRID:
        scores = fit.out_of_group(x, attack, groups, l2)
        threshold = fit.threshold_for_bpcer(scores, attack, 0.05)
        apcer[l2] = float(np.mean(scores[attack] < threshold))  # attacks accepted, counted here
    assert max(apcer.values()) > min(apcer.values())  # the choice matters on these rows
    chosen, _ = fit.choose_l2(x, attack, groups, 0.05)
    assert apcer[chosen] == min(apcer.values())
