"""LFW metrics against small cases worked out by hand and brute force."""
import numpy as np
import pytest

from edge.bench import metrics
from edge.bench.lfw import read_pairs


def brute_best_accuracy(distances, same):
    candidates = np.concatenate([[-1.0], distances, [np.nanmax(distances[np.isfinite(distances)]) + 1]])
    return max(metrics.accuracy(distances, same, t) for t in candidates)


def test_best_threshold_matches_brute_force():
    rng = np.random.default_rng(0)
    same = rng.random(400) < 0.5
    distances = np.where(same, rng.normal(0.4, 0.1, 400), rng.normal(0.8, 0.15, 400))
    threshold = metrics.best_threshold(distances, same)
    assert metrics.accuracy(distances, same, threshold) == pytest.approx(brute_best_accuracy(distances, same))


def test_infinite_distance_counts_as_different():
    distances = np.array([0.1, np.inf, 0.9, np.inf])
    same = np.array([True, True, False, False])
    assert metrics.accuracy(distances, same, 0.5) == pytest.approx(0.75)
    # genuine 0.1 beats both impostors, genuine inf loses to 0.9 and ties inf: (1 + 1 + 0 + 0.5) / 4
    assert metrics.roc_auc(distances, same) == pytest.approx(0.625)


def test_kfold_uses_other_folds_threshold():
    # Fold 0 alone would pick a threshold near 0.5; folds 1-2 force ~0.3, which fold 0 then gets wrong once.
    distances = np.array([0.45, 0.55, 0.2, 0.4, 0.2, 0.4])
    same = np.array([True, False, True, False, True, False])
    folds = np.array([0, 0, 1, 1, 2, 2])
    mean, std, per_fold, thresholds = metrics.kfold_accuracy(distances, same, folds)
    assert per_fold == [0.5, 1.0, 1.0]
    assert thresholds[0] == pytest.approx(0.3)
    assert mean == pytest.approx(2.5 / 3)


def test_roc_auc_perfect_and_reversed():
    same = np.array([True, True, False, False])
    assert metrics.roc_auc(np.array([0.1, 0.2, 0.8, 0.9]), same) == 1.0
    assert metrics.roc_auc(np.array([0.8, 0.9, 0.1, 0.2]), same) == 0.0


def test_tar_at_far_allows_only_the_permitted_impostors():
    impostors = np.linspace(0.5, 1.5, 1000)  # FAR 1e-3 allows exactly one below the threshold
    genuine = np.array([0.3, 0.4, 0.50005, 0.6])
    distances = np.concatenate([genuine, impostors])
    same = np.concatenate([np.ones(4, bool), np.zeros(1000, bool)])
    tar, threshold = metrics.tar_at_far(distances, same, 1e-3)
    assert np.sum(impostors <= threshold) == 1
    assert tar == pytest.approx(0.75)


def test_read_pairs_view2_layout(tmp_path):
    lines = ["2 1", "A\t1\t2", "A\t1\tB\t3", "C\t2\t4", "C\t1\tD\t1"]
    path = tmp_path / "pairs.txt"
    path.write_text("\n".join(lines) + "\n")
    pairs = read_pairs(path)
    assert [(p.a, p.b, p.same, p.fold) for p in pairs] == [
        ("A/A_0001.jpg", "A/A_0002.jpg", True, 0),
        ("A/A_0001.jpg", "B/B_0003.jpg", False, 0),
        ("C/C_0002.jpg", "C/C_0004.jpg", True, 1),
        ("C/C_0001.jpg", "D/D_0001.jpg", False, 1),
    ]


def test_read_pairs_rejects_wrong_counts(tmp_path):
    from edge.exc import ConfigError

    path = tmp_path / "pairs.txt"
    path.write_text("10 300\nA\t1\t2\n")
    with pytest.raises(ConfigError, match="expected 6000 pairs"):
        read_pairs(path)
