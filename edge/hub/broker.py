"""The broker's files, written by the hub: Mosquitto's config, password file and ACL file.

The hub is the only writer of these files. `hub init` writes mosquitto.conf (TLS
listener with the site CA, client certificates required, no anonymous clients,
persistence on); every `add-device` and `revoke-device` rewrites the password and
ACL files from PostgreSQL's device table and asks the broker to reload them
(SIGHUP), which also disconnects a client whose password is gone.

Passwords are stored in Mosquitto 2's own format (PBKDF2-SHA512, 101 rounds, as
`mosquitto_passwd` writes them), so the hub host does not need that tool.
"""
from __future__ import annotations

import base64
import hashlib
import os
import pwd
import signal
from pathlib import Path

from edge.exc import ConfigError
from edge.fleet import names
from edge.gallery.files import write_private

HUB_USER = "hub"
_ROUNDS = 101


def password_line(user: str, password: str, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, _ROUNDS)
    return f"{user}:$7${_ROUNDS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def acl_text(devices: list[tuple[str, str]]) -> str:
    """The ACL for the hub and each active (device, site): the hub reads and writes the whole
    tree; a device only what edge.fleet.names.device_acl allows."""
    lines = ["# written by edge-verify hub; do not edit (rewritten at every add-device/revoke-device)",
             f"user {HUB_USER}", f"topic readwrite {names.ROOT}/#", ""]
    for device, site in sorted(devices):
        lines.append(f"user {device}")
        lines += [f"topic {access} {topic}" for access, topic in names.device_acl(site, device)]
        lines.append("")
    return "\n".join(lines)


def config_text(folder: Path, host: str, port: int, run_as: str | None = None) -> str:
    """mosquitto.conf for the hub's broker (listener on ``host``:``port`` only). ``run_as``: the
    account Mosquitto drops to when started as root (it must own the files of ``folder``)."""
    return "\n".join([
        "# written by `edge-verify hub init`: TLS with the site CA, client certificate and password per device",
        *([f"user {run_as}"] if run_as else []),
        "per_listener_settings false",
        "allow_anonymous false",
        f"password_file {folder / 'passwd'}",
        f"acl_file {folder / 'acl'}",
        "persistence true",
        f"persistence_location {folder / 'data'}/",
        "autosave_interval 10",
        "max_queued_messages 10000",
        "max_inflight_messages 100",
        f"listener {int(port)} {host}",
        f"cafile {folder / 'ca.pem'}",
        f"certfile {folder / 'broker.pem'}",
        f"keyfile {folder / 'broker.key'}",
        "require_certificate true",
        "use_identity_as_username false",
        "tls_version tlsv1.2",
        "",
    ])


def write_credentials(folder: Path, passwords: dict[str, str], devices: list[tuple[str, str]],
                      run_as: str | None = None) -> None:
    """Rewrite passwd (``passwords``: user -> hashed line) and acl atomically (mode 0600)."""
    folder.mkdir(parents=True, exist_ok=True)
    write_private(folder / "passwd", ("\n".join(passwords[user] for user in sorted(passwords)) + "\n").encode())
    write_private(folder / "acl", acl_text(devices).encode())
    hand_over(folder, run_as)


def hand_over(folder: Path, run_as: str | None) -> None:
    """As root, give the broker's folder to the account Mosquitto runs as (mode 0600 files it must read).

    Mosquitto started as root drops to that account before reading its password file."""
    if not run_as or os.geteuid() != 0:
        return
    try:
        account = pwd.getpwnam(run_as)
    except KeyError:
        raise ConfigError(f"the broker's account {run_as!r} does not exist on this host; install mosquitto "
                          "(it creates it) or set [broker] user in hub.toml") from None
    for path in [folder, *folder.rglob("*")]:
        os.chown(path, account.pw_uid, account.pw_gid, follow_symlinks=False)


def reload(pid_file: str | None) -> bool:
    """SIGHUP the broker named by ``pid_file``; False when there is none to tell (not running here)."""
    if not pid_file:
        return False
    try:
        pid = int(Path(pid_file).read_text().split()[0])
    except FileNotFoundError:
        return False
    except (OSError, ValueError, IndexError) as error:
        raise ConfigError(f"cannot read the broker's pid file {pid_file} ({error}); reload it by hand "
                          "(`systemctl reload mosquitto`)") from None
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        return False
    return True
