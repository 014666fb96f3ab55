"""What the self-test checks against: the daemon's own settings, plus the
technician's self-test limits.

The device is tested as the daemon will use it, so ``daemon`` holds the daemon's
settings exactly as the daemon reads them (edge.daemon.config: the same file, the
same flags, the same defaults and the same refusals), and the checks read them
from there. Self-test limits and the relay feedback input are not daemon settings
(the daemon refuses unknown keys), so they are flags with defaults here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edge.daemon import config
from edge.exc import ConfigError
from edge.models import registry

DEFAULT_LATENCY_BUDGET_MS = 50.0  # one face chip through the embedding engine
DEFAULT_MIN_FREE_MB = 200.0  # free space where logs and the gallery are written
DEFAULT_MAX_TEMP_C = 90.0  # hottest thermal zone; Jetson modules throttle from about 95-99 C
JOURNAL_DIR = Path("/var/log")  # where events go when no events file is set (the journal)


def built_in_defaults() -> config.Settings:
    """The daemon's settings with no file and no flags."""
    return config.resolve({}, {})


@dataclass
class Settings:
    daemon: config.Settings = field(default_factory=built_in_defaults)
    feedback_pin: str | None = None
    expect_width: int | None = None
    expect_height: int | None = None
    expect_fps: float | None = None
    latency_budget_ms: float = DEFAULT_LATENCY_BUDGET_MS
    min_free_mb: float = DEFAULT_MIN_FREE_MB
    max_temp_c: float = DEFAULT_MAX_TEMP_C

    @property
    def config_path(self) -> Path | None:
        """The config file the daemon's settings came from (None: built-in defaults and flags)."""
        return self.daemon.path

    def path(self, name: str) -> Path | None:
        """A daemon path setting ("gallery.path", "engine.path", ...) with ~ expanded; None when unset."""
        text = self.daemon[name]
        return Path(text).expanduser() if text else None

    @property
    def log_dir(self) -> Path:
        """Where the daemon writes its events: next to [events] file, else the journal's folder."""
        events = self.path("events.file")
        return events.parent if events is not None else JOURNAL_DIR

    def embedding_engine(self) -> Path:
        """The embedding engine file the daemon would load."""
        configured = self.path("engine.path")
        if configured is not None:
            return configured
        return registry.engine_path(registry.EMBEDDING, self.daemon["engine.precision"], self.daemon["engine.backend"])


def parse_size(text: str) -> tuple[int, int]:
    """(width, height) from "640x480"."""
    width, separator, height = text.lower().partition("x")
    if not separator or not width.isdigit() or not height.isdigit() or int(width) <= 0 or int(height) <= 0:
        raise ConfigError(f"a frame size is WIDTHxHEIGHT, e.g. 1280x720; got {text!r}")
    return int(width), int(height)
