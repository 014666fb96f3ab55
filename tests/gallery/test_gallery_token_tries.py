"""Issue 12 item 6: wrong admin tokens are slowed down, recorded, and locked out.

After each wrong token the next try must wait longer (the wait is kept beside the
gallery, so a new process waits too), each wrong token writes an audit record, and
after LOCKOUT wrong tokens in a row even the right one is refused until root lifts
the lockout.
"""
from __future__ import annotations

import json

import pytest

from edge.cli import main
from edge.gallery import auth

MODEL = "dlib_resnet_v1"
TOKEN = "correct-horse-battery"


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


@pytest.fixture
def home(tmp_path, monkeypatch, admin_home):
    admin_home(tmp_path, {"Alice": (1, 3)}, MODEL, TOKEN)
    monkeypatch.setattr(auth.os, "geteuid", lambda: 1000)  # an installer, not root
    return tmp_path


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(auth, "now", clock, raising=False)
    return clock


def remove(capsys, token):
    code = main(["gallery", "remove", "Alice", "--token", token])
    return code, capsys.readouterr().err


def refusals(home):
    return [json.loads(line) for line in (home / "gallery.audit.jsonl").read_text().splitlines()
            if json.loads(line)["action"] == "token-refused"]


def test_twenty_quick_wrong_tokens_are_slowed_down_and_each_checked_one_recorded(home, capsys, clock):
    answers = []
    for _ in range(20):
        answers.append(remove(capsys, "wrong-guess-123"))
        clock.now += 1.2  # 20 tries in 24 s
    checked = [err for code, err in answers if "the admin token is wrong" in err]
    waited = [err for code, err in answers if "try again in" in err]
    assert all(code == 3 for code, _ in answers)
    assert len(checked) <= 6 and len(waited) >= 14  # the waits grow: 1, 2, 4, 8 ... seconds
    assert len(refusals(home)) == len(checked)
    assert "wrong-guess-123" not in (home / "gallery.audit.jsonl").read_text()


def test_the_wait_is_kept_between_processes(home, capsys, clock):
    assert "wrong" in remove(capsys, "wrong-guess-123")[1]
    state = json.loads((home / "gallery.admin-failures").read_text())
    assert state["failures"] == 1
    code, err = remove(capsys, TOKEN)  # even the right token waits its turn
    assert code == 3 and "try again in" in err
    clock.now += 60
    assert remove(capsys, TOKEN)[0] == 0
    assert json.loads((home / "gallery.admin-failures").read_text())["failures"] == 0


def test_lockout_after_ten_wrong_tokens_only_root_lifts_it(home, capsys, clock, monkeypatch):
    for _ in range(auth.LOCKOUT):
        clock.now += 10_000
        assert remove(capsys, "wrong-guess-123")[0] == 3
    clock.now += 10_000
    code, err = remove(capsys, TOKEN)
    assert code == 3 and "locked" in err and "sudo edge-verify admin unlock" in err
    code = main(["admin", "unlock"])
    assert code == 3 and "root" in capsys.readouterr().err
    monkeypatch.setattr(auth.os, "geteuid", lambda: 0)
    assert main(["admin", "unlock"]) == 0
    monkeypatch.setattr(auth.os, "geteuid", lambda: 1000)
    capsys.readouterr()
    assert remove(capsys, TOKEN)[0] == 0
    actions = [json.loads(line)["action"] for line in (home / "gallery.audit.jsonl").read_text().splitlines()]
    assert actions.count("token-refused") == auth.LOCKOUT and "token-unlocked" in actions
