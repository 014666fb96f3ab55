"""Issue 12 item 16: small things that each let a mistake through or pass for something else."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
import warnings

import numpy as np
import pytest

from edge.daemon import config
from edge.exc import ConfigError


@pytest.mark.parametrize("text, message", [("[events]\nfile = 5\n", "[events] file must be text in quotes"),
                                           ("[door]\npin = 11\n", "[door] pin must be text in quotes")])
def test_numbers_where_names_are_meant_are_refused(tmp_path, text, message):
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        config.load(path)


def test_a_rate_may_still_be_a_number(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[source]\nuri = "file:///x.avi"\nrate = 10\n')
    assert config.load(path)["source.rate"] == 10.0


def test_csi_without_gstreamer_stops_instead_of_retrying_for_ever(tmp_path, monkeypatch, mock_factory, pipeline):
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "daemon"))
    from daemonkit import make_gallery, settings

    from edge.daemon.loop import Daemon
    from edge.exc import SourceError
    from edge.sources import opencv

    gallery, key = make_gallery(tmp_path, pipeline)
    monkeypatch.setattr(opencv, "opencv_has_gstreamer", lambda *args: False)
    daemon = Daemon(settings(gallery, key, "csi://0"), pin_factory=mock_factory, pipeline=pipeline)
    monkeypatch.setattr(daemon, "_sleep_watched", lambda seconds: pytest.fail("it waited to try csi:// again"))
    with pytest.raises(SourceError, match="GStreamer"):
        daemon.run()
    assert daemon.door.closed


def test_a_closed_pipe_is_not_a_traceback(tmp_path):
    env = {**os.environ, "EDGE_VERIFY_HOME": str(tmp_path)}
    process = subprocess.Popen([sys.executable, "-m", "edge", "gallery", "list"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    process.stdout.close()  # `| head` that has read enough
    _, err = process.communicate(timeout=60)
    assert b"Traceback" not in err and b"BrokenPipeError" not in err, err.decode()[-1500:]


def test_an_empty_token_flag_is_said_not_hidden(tmp_path, monkeypatch, capsys):
    from edge.cli import main

    monkeypatch.setenv("EDGE_VERIFY_HOME", str(tmp_path))
    monkeypatch.setenv("EDGE_VERIFY_ADMIN_TOKEN", "a-valid-token-1")
    assert main(["gallery", "remove", "Alice", "--token", ""]) == 3
    assert "--token was given empty" in capsys.readouterr().err


def test_the_same_photo_five_times_is_one_template(pipeline, tmp_path, face_images):
    from edge.enroll.capture import enroll, image_shots
    from edge.exc import EnrollmentError
    from edge.gallery import open_gallery

    photo = face_images["Colin_Powell"][0]
    with open_gallery(tmp_path / "g.sqlite", tmp_path / "g.key", create=True, actor="test") as gallery:
        with pytest.raises(EnrollmentError, match=r"only 1 good frame of 5 .*the same picture as good frame 1 \(4\)"):
            enroll("Colin", pipeline, gallery, image_shots([photo] * 5), actor="test")
        assert gallery.list_people() == []


def test_stored_face_crops_are_as_private_as_the_events(tmp_path):
    from edge.events import store_face

    path = store_face(tmp_path / "faces", "20250101T000000-00000001", np.full((40, 40, 3), 90, np.uint8))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


def test_no_pin_factory_fallback_warnings_without_a_factory(monkeypatch):
    from gpiozero import Device
    from gpiozero.exc import PinFactoryFallback

    from edge.door import DoorLock
    from edge.exc import DoorError

    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    monkeypatch.setattr(Device, "pin_factory", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            DoorLock("BOARD11").close()
        except DoorError:
            pass  # no GPIO here: the one-line error, which says what to set
    assert not [warning for warning in caught if issubclass(warning.category, PinFactoryFallback)]
