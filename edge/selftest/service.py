"""Is the door daemon running? Asked of systemd and of /proc.

The self-test must never fight the daemon for the relay pin or the camera, so
both are consulted: systemd knows about the service, /proc also finds a daemon
started by hand (``edge-verify run`` in a terminal, or ``python -m edge run``).
"""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SERVICE = "edge-verify"
SYSTEMD_RUNTIME = Path("/run/systemd/system")  # exists only when systemd is PID 1 (sd_booted)


@dataclass(frozen=True)
class ServiceState:
    """``systemctl show`` for the unit; ``None`` fields when systemd cannot be asked."""

    load: str  # loaded, not-found, ...
    active: str  # active, inactive, failed, activating, ...
    sub: str  # running, dead, auto-restart, ...
    enabled: str  # enabled, disabled, static, ... ("" when unknown)
    pid: int  # MainPID, 0 when not running


def systemd_available(runtime_dir: Path = SYSTEMD_RUNTIME) -> str | None:
    """None when systemctl can be asked, else why not."""
    if shutil.which("systemctl") is None:
        return "systemctl is not installed"
    if not runtime_dir.is_dir():
        return "systemd is not running on this machine (not PID 1)"
    return None


def run_command(argv: list[str], timeout: float = 5.0) -> subprocess.CompletedProcess | None:
    """Run a status command; None when it cannot be run at all."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None


def parse_show(output: str) -> ServiceState:
    """A ServiceState from ``systemctl show -p LoadState,ActiveState,SubState,UnitFileState,MainPID``."""
    values = dict(line.split("=", 1) for line in output.splitlines() if "=" in line)
    try:
        pid = int(values.get("MainPID", "0") or 0)
    except ValueError:
        pid = 0
    return ServiceState(values.get("LoadState", ""), values.get("ActiveState", ""), values.get("SubState", ""),
                        values.get("UnitFileState", ""), pid)


def service_state(runner=run_command) -> ServiceState | None:
    done = runner(["systemctl", "show", SERVICE, "--property=LoadState,ActiveState,SubState,UnitFileState,MainPID"])
    if done is None or done.returncode != 0:
        return None
    return parse_show(done.stdout)


def is_daemon_command(argv: list[str]) -> bool:
    """True for ``[python] .../edge-verify run ...`` and ``python -m edge run ...``."""
    for index, word in enumerate(argv):
        if os.path.basename(word) == "edge-verify":
            rest = argv[index + 1:]
        elif word == "-m" and index + 1 < len(argv) and argv[index + 1] in ("edge", "edge.cli"):
            rest = argv[index + 2:]
        else:
            continue
        commands = [item for item in rest if not item.startswith("-")]
        return bool(commands) and commands[0] == "run"
    return False


def daemon_processes(proc_root: Path = Path("/proc"), own_pid: int | None = None) -> list[int]:
    """Process ids of running ``edge-verify run`` daemons (other than this process)."""
    own_pid = os.getpid() if own_pid is None else own_pid
    found = []
    try:
        entries = list(proc_root.iterdir())
    except OSError:
        return found
    for entry in entries:
        if not entry.name.isdigit() or int(entry.name) == own_pid:
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile, or hidden from us
            continue
        words = [word.decode(errors="replace") for word in argv if word]
        if is_daemon_command(words):
            found.append(int(entry.name))
    return sorted(found)


def daemon_holder(proc_root: Path = Path("/proc"), runner=run_command,
                  runtime_dir: Path = SYSTEMD_RUNTIME) -> str | None:
    """A sentence naming the running daemon, or None when none runs."""
    if systemd_available(runtime_dir) is None:
        state = service_state(runner)
        if state is not None and state.active in ("active", "activating", "reloading"):
            pid = f" (pid {state.pid})" if state.pid else ""
            return f"the edge-verify service is {state.active}{pid}"
    pids = daemon_processes(proc_root)
    if pids:
        return f"an `edge-verify run` daemon is running (pid {', '.join(map(str, pids))})"
    return None


STOP_HINT = "stop it first (sudo systemctl stop edge-verify), rerun the selftest, then start it again"
