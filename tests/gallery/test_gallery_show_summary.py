"""Issue 12 item 11: `gallery show` and the daemon's start tell the truth about the gallery.

Enrollment stores templates under the engine's embedding space ("dlib_resnet_v1+l2"):
comparing that with the bare model name made `gallery show` ask to enroll everyone again
after every normal enrollment. An empty gallery is not "1:N with 1 templates", and a daemon
started on one must say that nobody can be let in.
"""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from edge.cli import main
from edge.gallery import open_gallery


@pytest.fixture
def home(tmp_path, monkeypatch, models_ready):
    monkeypatch.setenv("EDGE_VERIFY_HOME", str(tmp_path))
    (tmp_path / "models").symlink_to(models_ready)
    return tmp_path


def test_show_after_a_normal_enrollment_has_no_model_warning(home, capsys, pipeline):
    from edge.verify.api import embedding_space

    with open_gallery(create=True, actor="test") as gallery:
        gallery.add_person_templates("Alice", np.full((3, 128), 0.088, np.float32),
                                     embedding_space(pipeline.manifest), "test")
    assert main(["gallery", "show", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["threshold_1n"]["threshold"] is not None and not summary["threshold_1n"].get("note")
    assert main(["gallery", "show"]) == 0
    assert "enroll everyone again" not in capsys.readouterr().out


def test_show_on_an_empty_gallery_says_so(home, capsys):
    open_gallery(create=True, actor="test").close()
    assert main(["gallery", "show"]) == 0
    out = capsys.readouterr().out
    assert "with 1 templates" not in out and "no templates" in out


def test_the_daemon_warns_when_it_starts_on_an_empty_gallery(home, pipeline, caplog):
    from edge.daemon import config, parts

    open_gallery(create=True, actor="test").close()
    settings = config.resolve({"gallery.path": str(home / "gallery.sqlite"), "gallery.key": str(home / "gallery.key")},
                              {}, origin="the test")
    caplog.set_level(logging.WARNING)
    live = parts.open_live_gallery(settings, pipeline.manifest)
    live.gallery.close()
    assert any("empty" in record.getMessage() and "nobody" in record.getMessage() for record in caplog.records)
