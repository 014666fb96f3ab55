"""The admin token: who may set it, how it is stored and checked."""
from __future__ import annotations

import json

import pytest

from edge.exc import AuthError
from edge.gallery import auth
from edge.gallery.audit import AuditLog, verify_chain


@pytest.fixture
def not_root(monkeypatch):
    monkeypatch.setattr(auth.os, "geteuid", lambda: 1000)


@pytest.fixture
def token_file(tmp_path):
    return tmp_path / "gallery.admin-token"


def test_first_token_then_only_the_current_token_may_change_it(token_file, not_root):
    assert auth.set_token(token_file, "first-token") == "first token"
    with pytest.raises(AuthError, match="needs the current one"):
        auth.set_token(token_file, "second-token")
    with pytest.raises(AuthError, match="current admin token is wrong"):
        auth.set_token(token_file, "second-token", current="guessed-token")
    assert auth.check_token(token_file, "first-token")
    assert auth.set_token(token_file, "second-token", current="first-token") == "current token"
    assert auth.check_token(token_file, "second-token") and not auth.check_token(token_file, "first-token")


def test_root_may_always_set_it(token_file, monkeypatch):
    auth.set_token(token_file, "first-token")
    monkeypatch.setattr(auth.os, "geteuid", lambda: 0)
    assert auth.set_token(token_file, "root-chosen-token") == "root"
    assert auth.check_token(token_file, "root-chosen-token")


def test_stored_as_a_salted_hash_in_a_private_file(token_file):
    auth.set_token(token_file, "first-token")
    text = token_file.read_text()
    assert "first-token" not in text
    stored = json.loads(text)
    assert stored["scheme"] == "scrypt" and len(bytes.fromhex(stored["salt"])) == 16
    assert token_file.stat().st_mode & 0o777 == 0o600
    other = token_file.with_name("other")
    auth.set_token(other, "first-token")
    assert json.loads(other.read_text())["hash"] != stored["hash"]  # salted


@pytest.mark.parametrize("token", [None, "", "wrong-token"])
def test_require_token_says_how_to_pass_it(token_file, token):
    auth.set_token(token_file, "first-token")
    with pytest.raises(AuthError) as caught:
        auth.require_token(token_file, token)
    assert "--token" in str(caught.value) and "EDGE_VERIFY_ADMIN_TOKEN" in str(caught.value)
    assert "\n" not in str(caught.value)
    auth.require_token(token_file, "first-token")


def test_require_token_without_any_token_set(token_file):
    with pytest.raises(AuthError, match="admin set-token"):
        auth.require_token(token_file, "anything-at-all")


@pytest.mark.parametrize("token", ["short", " padded-token", "tab\ttoken-x", ""])
def test_weak_or_odd_tokens_are_refused(token_file, token):
    with pytest.raises(AuthError):
        auth.set_token(token_file, token)
    assert not token_file.exists()


def test_token_from_prefers_the_flag(monkeypatch):
    monkeypatch.setenv(auth.ENV, "from-env")
    assert auth.token_from("from-flag") == "from-flag"
    assert auth.token_from(None) == "from-env"
    monkeypatch.delenv(auth.ENV)
    assert auth.token_from(None) is None


def test_token_changes_are_audited(token_file, tmp_path, not_root):
    key = bytes(range(32))
    log = AuditLog(tmp_path / "audit.jsonl", key)
    auth.set_token(token_file, "first-token", audit=log, actor="installer")
    auth.set_token(token_file, "second-token", current="first-token", audit=log, actor="admin")
    with pytest.raises(AuthError):
        auth.set_token(token_file, "third-token", current="wrong-token", audit=log, actor="mallory")
    records = [json.loads(line) for line in log.path.read_text().splitlines()]
    assert [(record["actor"], record["details"]["authorised_by"]) for record in records] == [
        ("installer", "first token"), ("admin", "current token")]
    assert "first-token" not in log.path.read_text()
    assert verify_chain(log.path, key).ok


def test_token_file_writable_by_others_is_refused(token_file):
    auth.set_token(token_file, "first-token")
    token_file.chmod(0o666)
    with pytest.raises(AuthError, match="writable by others"):
        auth.check_token(token_file, "first-token")


def test_root_can_replace_a_damaged_token_file(token_file, monkeypatch):
    token_file.write_text("{not json")
    token_file.chmod(0o600)
    with pytest.raises(AuthError, match="damaged"):
        auth.require_token(token_file, "first-token")
    monkeypatch.setattr(auth.os, "geteuid", lambda: 0)
    assert auth.set_token(token_file, "fresh-token") == "root"
    auth.require_token(token_file, "fresh-token")
