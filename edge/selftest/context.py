"""Everything a check group needs: the settings, the technician's answers, and the
probes of the machine, each replaceable so tests can inject faults that cannot be
made for real here (a full disk, a hot SoC, a running daemon)."""
from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from edge.engines.device import describe_device
from edge.selftest import service
from edge.selftest.settings import Settings


def describe_gpu() -> dict | None:
    return describe_device()


def free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def ask_on_terminal(question: str) -> bool | None:
    """True/False from a y/N answer on the terminal; None when there is no terminal to ask on."""
    if not (sys.stdin is not None and sys.stdin.isatty()):
        return None
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


@dataclass
class Context:
    settings: Settings = field(default_factory=Settings)
    yes: bool = False  # pulse the relay without asking
    with_face: bool = False  # wait for a face in front of the camera
    pin_factory: object = None  # gpiozero factory; None = GPIOZERO_PIN_FACTORY's
    confirm: Callable[[str], bool | None] = ask_on_terminal
    free_bytes: Callable[[Path], int] = free_bytes
    now: Callable[[], datetime] = utc_now
    thermal_root: Path = Path("/sys/class/thermal")
    proc_root: Path = Path("/proc")
    systemd_runtime: Path = service.SYSTEMD_RUNTIME
    command: Callable = service.run_command  # runs systemctl / timedatectl
    gpu: Callable[[], dict | None] = describe_gpu  # {"gpu", "compute_capability", "source"} or None
    _holder: object = field(default=False, repr=False)

    def daemon_holder(self) -> str | None:
        """Who holds the GPIO and camera (asked once per run), or None."""
        if self._holder is False:
            self._holder = service.daemon_holder(self.proc_root, self.command, self.systemd_runtime)
        return self._holder
