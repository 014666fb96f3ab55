"""sd_notify against a real AF_UNIX datagram socket standing in for systemd."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from edge.daemon import notify

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def systemd_socket(tmp_path, monkeypatch):
    """A bound datagram socket at a path in tmp_path, announced in $NOTIFY_SOCKET."""
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(path))
        listener.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        yield listener


def received(listener) -> bytes:
    return listener.recv(4096)


def test_nothing_happens_outside_systemd(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify.ready() is False and notify.watchdog() is False and notify.status("x") is False


def test_ready_watchdog_status_and_stopping(systemd_socket):
    assert notify.ready("camera open, 3 people enrolled")
    assert received(systemd_socket) == b"READY=1\nSTATUS=camera open, 3 people enrolled"
    assert notify.watchdog()
    assert received(systemd_socket) == b"WATCHDOG=1"
    assert notify.status("reconnecting\ncamera")  # a newline would start a bogus field
    assert received(systemd_socket) == b"STATUS=reconnecting camera"
    assert notify.stopping()
    assert received(systemd_socket) == b"STOPPING=1"


def test_abstract_namespace_socket(monkeypatch):
    name = f"edge-verify-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind("\0" + name)
        listener.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert notify.watchdog()
        assert received(listener) == b"WATCHDOG=1"


def test_a_child_process_reaches_the_same_socket(systemd_socket):
    code = "from edge.daemon import notify; raise SystemExit(0 if notify.ready('child') else 1)"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=30)
    assert received(systemd_socket) == b"READY=1\nSTATUS=child"


def test_a_dead_socket_is_not_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone.sock"))
    assert notify.watchdog() is False
    monkeypatch.setenv("NOTIFY_SOCKET", "vsock:2:1234")
    assert notify.watchdog() is False


def test_watchdog_interval(monkeypatch):
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert notify.watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    assert notify.watchdog_interval() == 30.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert notify.watchdog_interval() == 30.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))  # meant for another process
    assert notify.watchdog_interval() is None
    monkeypatch.delenv("WATCHDOG_PID")
    for bad in ("0", "soon", "-5"):
        monkeypatch.setenv("WATCHDOG_USEC", bad)
        assert notify.watchdog_interval() is None
