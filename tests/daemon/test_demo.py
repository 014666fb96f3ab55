"""`edge-verify demo`: the README's first command, end to end."""
from __future__ import annotations

import pytest

from edge import demo
from edge.exc import ConfigError


def test_demo_lets_in_the_enrolled_and_nobody_else(tmp_path, models_ready):
    lines = []
    home = tmp_path / "demo"
    result = demo.run_demo(home=home, out=lines.append)
    text = "\n".join(lines)
    assert result.ok, result.problems
    assert sorted(person for person, _ in result.unlocked) == sorted(demo.ENROLLED)
    assert result.stranger_frames >= 6 and result.stranger_unlocks == 0
    levels = [level for _, level in result.pin_history]
    assert levels == [False, True, False, True, False, True, False]  # three pulses, locked at the end
    times = [seconds for seconds, _ in result.pin_history]
    pulses = [after - before for before, after in zip(times[1::2], times[2::2])]
    assert len(pulses) == 3 and all(pulse >= 0.99 for pulse in pulses)  # each ran its full 1 s, not cut short
    assert "UNLOCK" in text and "refused" in text and "door: OPEN" in text and "result: as expected" in text
    assert (home / "clip.avi").stat().st_size > 0 and (home / "events.jsonl").exists()
    # A second run in the same home replaces the earlier demo's files.
    assert demo.run_demo(home=home, out=lambda line: None).ok


def test_enrolled_people_appear_in_the_clip_with_other_photos():
    for name in demo.ENROLLED:
        enrolled = {demo.demo_photo(name, n).read_bytes() for n in demo.ENROLL_PHOTOS}
        assert demo.demo_photo(name, demo.CLIP_PHOTO).read_bytes() not in enrolled


def test_demo_refuses_a_folder_with_other_files(tmp_path):
    (tmp_path / "thesis.tex").write_text("precious")
    with pytest.raises(ConfigError, match="not empty"):
        demo.prepare_home(tmp_path)
    assert (tmp_path / "thesis.tex").read_text() == "precious"


def test_demo_checker_flags_a_stranger_unlock():
    segments = [demo.Segment("Colin_Powell", True, 0, 5), demo.Segment("Hugo_Chavez", False, 6, 11)]
    events = [{"person": "Colin_Powell", "frame": 2, "unlock": True},
              {"person": "Colin_Powell", "frame": 8, "unlock": True}]
    result = demo.check(segments, events, [(0.0, False), (1.0, True), (2.0, False), (3.0, True), (4.0, False)])
    assert not result.ok and result.stranger_unlocks == 1
    assert any("frame 8" in problem for problem in result.problems)


def test_without_torch_the_demo_says_to_install_the_build_extra(monkeypatch):
    import importlib.util

    from edge.exc import ModelError

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(demo, "models_present", lambda: False)
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *rest: None if name == "torch" else real_find_spec(name, *rest))
    with pytest.raises(ModelError, match=r"pip install 'edge-verify\[build\]'"):
        demo.ensure_models(lambda line: None)
