"""What the self-test checks against: the daemon's own settings, plus the
technician's self-test limits.

The device is tested as the daemon will use it, so its settings are read with
the daemon's reader (edge.daemon.config: the same file, the same flags, the same
defaults and the same refusals). Self-test limits and the relay feedback input
are not daemon settings (the daemon refuses unknown keys), so they are flags
with defaults here.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edge.exc import ConfigError

DEFAULT_LATENCY_BUDGET_MS = 50.0  # one face chip through the embedding engine
DEFAULT_MIN_FREE_MB = 200.0  # free space where logs and the gallery are written
DEFAULT_MAX_TEMP_C = 90.0  # hottest thermal zone; Jetson modules throttle from about 95-99 C
JOURNAL_DIR = Path("/var/log")  # where events go when no events file is set (the journal)


@dataclass
class Settings:
    config_path: Path | None = None
    source_uri: str | None = None
    source_timeout_s: float = 2.0
    expect_width: int | None = None
    expect_height: int | None = None
    expect_fps: float | None = None
    door_pin: str | None = None
    active_high: bool = True
    sensor_pin: str | None = None
    exit_pin: str | None = None
    feedback_pin: str | None = None
    min_face_px: int = 80
    threshold: float | None = None  # [decision] threshold: replaces the 1:N rule when set
    stranger_rate: float = 1e-3
    engine_path: Path | None = None  # None: by precision and backend, as the daemon picks it
    precision: str = "fp32"
    backend: str = "onnxruntime"
    threads: int | None = None
    gallery_path: Path | None = None
    key_path: Path | None = None
    log_dir: Path = JOURNAL_DIR
    latency_budget_ms: float = DEFAULT_LATENCY_BUDGET_MS
    min_free_mb: float = DEFAULT_MIN_FREE_MB
    max_temp_c: float = DEFAULT_MAX_TEMP_C

    def embedding_engine(self) -> Path:
        """The embedding engine file the daemon would load."""
        from edge.models import registry

        if self.engine_path is not None:
            return self.engine_path
        return registry.engine_path(registry.EMBEDDING, self.precision, self.backend)


def from_daemon(daemon, config_path: Path | None = None) -> Settings:
    """Settings from the daemon's resolved settings (edge.daemon.config.Settings)."""
    source, door, decision = daemon.source, daemon.door, daemon.decision
    engine, gallery, events = daemon.engine, daemon.gallery, daemon.events
    return Settings(
        config_path=config_path,
        source_uri=source["uri"],
        source_timeout_s=source["timeout_s"],
        door_pin=door["pin"],
        active_high=door["active_high"],
        sensor_pin=door["sensor_pin"],
        exit_pin=door["exit_pin"],
        min_face_px=decision["min_face_px"],
        threshold=decision["threshold"],
        stranger_rate=decision["stranger_rate"],
        engine_path=_path(engine["path"]),
        precision=engine["precision"],
        backend=engine["backend"],
        threads=engine["threads"],
        gallery_path=_path(gallery["path"]),
        key_path=_path(gallery["key"]),
        log_dir=Path(events["file"]).expanduser().parent if events["file"] else JOURNAL_DIR,
    )


def load_settings(config_path=None, use_default_config: bool = True, flags: dict | None = None) -> Settings:
    """The daemon's settings from ``config_path`` (else /etc/edge-verify/config.toml when it exists) and
    daemon ``flags`` ({"section.key": text}, as edge.daemon.config.flag_values gives)."""
    from edge.daemon import config

    if config_path is None and use_default_config:
        config_path = config.default_config_path()
    path = Path(config_path).expanduser() if config_path is not None else None
    return from_daemon(config.load(path, flags or {}), path)


def _path(text: str | None) -> Path | None:
    return Path(text).expanduser() if text else None


def parse_size(text: str) -> tuple[int, int]:
    """(width, height) from "640x480"."""
    width, separator, height = text.lower().partition("x")
    if not separator or not width.isdigit() or not height.isdigit() or int(width) <= 0 or int(height) <= 0:
        raise ConfigError(f"a frame size is WIDTHxHEIGHT, e.g. 1280x720; got {text!r}")
    return int(width), int(height)
