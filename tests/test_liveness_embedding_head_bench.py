"""The embedding-feature liveness experiment (benchmarks/liveness_embedding_head.py): its stage outputs,
summaries, grey chip and protocol cuts."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from buildkit import load_benchmark

BENCH = load_benchmark("liveness_embedding_head")


def two_stage_model() -> bytes:
    """chip (1, 3, 4, 4) -> Relu 'inner' -> Neg -> 'out': a tensor inside the graph to expose."""
    graph = helper.make_graph(
        [helper.make_node("Relu", ["chip"], ["inner"]), helper.make_node("Neg", ["inner"], ["out"])], "g",
        [helper.make_tensor_value_info("chip", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, 4, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


def test_a_stage_inside_the_graph_becomes_an_output_with_the_values_it_holds():
    session = ort.InferenceSession(BENCH.with_stage_outputs(two_stage_model(), ("inner",)),
                                   providers=["CPUExecutionProvider"])
    chip = np.linspace(-1, 1, 48, dtype=np.float32).reshape(1, 3, 4, 4)
    inner, = session.run(["inner"], {"chip": chip})
    assert np.array_equal(inner, np.maximum(chip, 0))


def test_a_stage_the_model_lacks_is_refused_by_name():
    with pytest.raises(SystemExit, match="missing_stage"):
        BENCH.with_stage_outputs(two_stage_model(), ("missing_stage",))


def test_each_map_is_summarised_by_channel_mean_then_deviation():
    first = np.stack([np.full((2, 2), 1.0), np.array([[0.0, 2.0], [0.0, 2.0]])])[None]
    second = np.arange(4, dtype=float).reshape(1, 1, 2, 2)
    summary = BENCH.summarise([first, second])
    assert summary.tolist() == [1.0, 1.0, 0.0, 1.0, 1.5, np.std([0, 1, 2, 3])]


def test_the_grey_chip_has_one_grey_in_three_channels_whatever_the_cast():
    mean, std = [122.0, 117.0, 104.0], [256.0, 256.0, 256.0]
    rgb = np.zeros((3, 2, 2), np.float32)
    rgb[0], rgb[1], rgb[2] = 200.0, 100.0, 50.0  # a warm cast
    chip = ((rgb - np.array(mean, np.float32)[:, None, None]) / 256.0)[None]
    grey = BENCH.grey_chip(chip, mean, std)[0] * 256.0 + np.array(mean, np.float32)[:, None, None]
    expected = 0.299 * 200 + 0.587 * 100 + 0.114 * 50
    assert np.allclose(grey, expected, atol=1e-3)


def test_the_protocols_hold_out_whole_groups_and_test_one_folder_on_the_other():
    data = {"nuaa_train": {"ok": np.ones(4, bool),
                           "groups": np.array(["nuaa_train/0001", "nuaa_train/0002", "nuaa_train/0004",
                                               "nuaa_train/0003"])},
            "replay_dev": {"ok": np.ones(2, bool), "groups": np.array(["replay_dev/Dracarys261",
                                                                       "replay_dev/code-with-prabhu"])}}
    cuts = {(label, folder, tuple(tested)): rows for label, rows, folder, tested in BENCH.protocols(data)}
    first = cuts[("both, NUAA subjects out (prints)", "nuaa_train", (True, False, True, False))]
    assert first["nuaa_train"].tolist() == [False, True, False, True] and first["replay_dev"].all()
    across = cuts[("NUAA -> replay_dev (screens)", "replay_dev", (True, True))]
    assert across["nuaa_train"].all() and not across["replay_dev"].any()
    assert len(cuts) == 7  # five folds and the two directions


def test_the_head_is_fitted_on_the_training_side_and_its_threshold_refuses_the_target_share():
    rng = np.random.default_rng(0)
    groups = np.repeat([f"g{k}" for k in range(4)], 50)
    attack = np.tile(np.r_[np.zeros(25, bool), np.ones(25, bool)], 4)
    x = rng.normal(size=(200, 3)) + attack[:, None] * 3.0
    cells = np.where(attack, "f/attack", "f/real")
    head = BENCH.fit_head(x, attack, groups, cells, target=0.1)
    from edge_build.training import liveness_fit as fit

    scores = fit.head_scores(x, head)
    assert np.mean(scores[attack] >= head["threshold"]) > 0.9  # separable: most attacks refused
    assert np.mean(scores[~attack] >= head["threshold"]) <= 0.2
    assert head["l2"] in fit.L2_GRID
