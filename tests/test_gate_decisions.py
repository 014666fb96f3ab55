"""The accuracy gate's decision check for models that decide at thresholds (the attribute model)."""
import numpy as np
import pytest

from edge.exc import GateFailed
from edge_build.gate import GateLimits, accuracy_gate, threshold_decisions

CONTRACT = {"attributes": ["live", "glasses"], "thresholds": {"live": 0.9, "glasses": 0.5}, "output": "logits"}


def logits(rows: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 3, size=(rows, 2))


def test_decisions_follow_each_heads_probability_threshold():
    decide = threshold_decisions(CONTRACT)
    # live needs p >= 0.9, i.e. a logit >= log(9) = 2.197; glasses needs a logit >= 0.
    out = decide(np.array([[2.3, -0.1], [2.1, 0.1]]))
    assert out.tolist() == [[True, False], [False, True]]


def test_other_models_have_no_decisions():
    assert threshold_decisions({"embedding_size": 128}) is None


def test_identical_outputs_pass_and_report_full_agreement():
    reference = logits(200)
    figures = accuracy_gate(lambda batch: reference[batch[:, 0, 0, 0].astype(int)],
                            lambda batch: reference[batch[:, 0, 0, 0].astype(int)],
                            np.arange(200, dtype=np.float32).reshape(200, 1, 1, 1), decide=threshold_decisions(CONTRACT))
    assert figures["decision_agreement"] == 1.0


def test_flipped_decisions_fail_although_cosine_stays_high():
    reference = logits(200)
    engine = reference.copy()
    near = np.argsort(np.abs(reference[:, 0] - np.log(9)))[:10]  # the 10 faces closest to the live threshold
    engine[near, 0] = np.where(reference[near, 0] >= np.log(9), np.log(9) - 0.01, np.log(9) + 0.01)
    chips = np.arange(200, dtype=np.float32).reshape(200, 1, 1, 1)
    with pytest.raises(GateFailed, match="decide alike on 95.00%") as failure:
        accuracy_gate(lambda batch: reference[batch[:, 0, 0, 0].astype(int)],
                      lambda batch: engine[batch[:, 0, 0, 0].astype(int)], chips,
                      GateLimits(min_cosine=0.9), decide=threshold_decisions(CONTRACT))
    assert failure.value.figures["mean_cosine"] > 0.99
