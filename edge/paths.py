"""Where the product keeps its files.

Everything lives under one home folder so that a kiosk can be backed up or wiped
as a unit: ``$EDGE_VERIFY_HOME`` if set; else, on an installed kiosk (one with
/etc/edge-verify/config.toml), the service's state folder /var/lib/edge-verify;
else ``$XDG_DATA_HOME/edge-verify`` or ``~/.local/share/edge-verify``.

On an installed kiosk the gallery, its key and the admin token are where that
config file's [gallery] section says, so every command finds the daemon's gallery
whoever runs it (root through sudo, which drops $EDGE_VERIFY_HOME, or the service
user). See "Who owns what" in the README.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

from edge.exc import ConfigError

INSTALLED_CONFIG = Path("/etc/edge-verify/config.toml")
INSTALLED_HOME = Path("/var/lib/edge-verify")


def home() -> Path:
    explicit = os.environ.get("EDGE_VERIFY_HOME")
    if explicit:
        return Path(explicit).expanduser()
    if is_installed():
        return INSTALLED_HOME
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(data) / "edge-verify"


def models_dir() -> Path:
    """Converted checkpoints, engines and their manifests."""
    return home() / "models"


def engines_dir() -> Path:
    return models_dir() / "engines"


def checkpoints_dir() -> Path:
    return models_dir() / "checkpoints"


def downloads_dir() -> Path:
    """Packages fetched from the registry, kept so a second fetch downloads nothing."""
    return home() / "cache" / "downloads"


def gallery_path() -> Path:
    """The installed config's [gallery] path, else $EDGE_VERIFY_HOME/gallery.sqlite."""
    return installed("path") or home() / "gallery.sqlite"


def gallery_key_path() -> Path:
    """The installed config's [gallery] key, else $EDGE_VERIFY_HOME/gallery.key."""
    return installed("key") or home() / "gallery.key"


def is_installed() -> bool:
    """True on an installed kiosk (/etc/edge-verify/config.toml exists). A user who may not even
    look into /etc/edge-verify is told to use root or the service user: every file of the kiosk
    is theirs."""
    try:
        return INSTALLED_CONFIG.is_file()
    except PermissionError:
        raise ConfigError(f"this is an installed kiosk and {INSTALLED_CONFIG.parent} is not yours to read (permission "
                          "denied): run this as root (sudo edge-verify ...) or as the service user (sudo -u "
                          "edge-verify edge-verify ...)") from None


def installed(key: str, section: str = "gallery") -> Path | None:
    """A file named in the [gallery] (or another) section of /etc/edge-verify/config.toml, when there is one.

    Read here without the daemon's settings, so that a command that only needs the gallery
    works even when another section of the file is being edited."""
    if not is_installed():
        return None
    try:
        table = tomllib.loads(INSTALLED_CONFIG.read_text(encoding="utf-8")).get(section, {})
    except PermissionError:
        raise ConfigError(f"cannot read {INSTALLED_CONFIG}: permission denied; run this as root (sudo edge-verify "
                          "...) or as the service user (sudo -u edge-verify edge-verify ...)") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"cannot read {INSTALLED_CONFIG}: {error}") from None
    value = table.get(key) if isinstance(table, dict) else None
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{INSTALLED_CONFIG}: [{section}] {key} must be a file name in quotes, got {value!r}")
    return Path(value)
