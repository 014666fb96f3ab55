"""The hub's folder and its settings, and the set-up steps that write files into it.

    HOME/hub.toml              [database] dsn, [broker] host/port/pid_file, [metrics] listen
    HOME/ca/ca.pem, ca.key     the site CA (key mode 0600, never leaves this folder)
    HOME/broker/               mosquitto.conf, the broker's certificate, passwd, acl, data/
    HOME/client/               the hub's own broker credentials
    HOME/sites/SITE.key        each site's template key (32 bytes, mode 0600)

HOME is --home, else $EDGE_VERIFY_HUB_HOME, else /var/lib/edge-verify-hub.
"""
from __future__ import annotations

import json
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

from edge.exc import ConfigError
from edge.fleet import names
from edge.fleet.sitekey import KEY_BYTES, SiteCipher, b64, new_site_key, new_wrap_key, wrap
from edge.gallery.files import write_private
from edge.hub import broker, pki
from edge.hub.db import HubDB

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

HOME_ENV = "EDGE_VERIFY_HUB_HOME"
DEFAULT_HOME = Path("/var/lib/edge-verify-hub")
BUNDLE_FORMAT = "edge-verify-device-bundle/1"
POLICIES = ("keep", "lock")


def hub_home(explicit: str | os.PathLike | None = None) -> Path:
    if explicit is not None:
        return Path(explicit).expanduser()
    return Path(os.environ[HOME_ENV]).expanduser() if os.environ.get(HOME_ENV) else DEFAULT_HOME


@dataclass(frozen=True)
class HubSettings:
    home: Path
    dsn: str
    broker_host: str
    broker_port: int
    pid_file: str | None
    metrics: str
    broker_user: str | None = "mosquitto"

    @property
    def metrics_address(self) -> tuple[str, int]:
        host, _, port = self.metrics.rpartition(":")
        return host, int(port)


def load_settings(home: Path) -> HubSettings:
    path = home / "hub.toml"
    try:
        document = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"no hub at {home} (no hub.toml): run `edge-verify hub init --home {home} --dsn DSN` "
                          f"first, or pass --home / set ${HOME_ENV}") from None
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"cannot read {path}: {error}") from None
    try:
        return HubSettings(home, str(document["database"]["dsn"]), str(document["broker"]["host"]),
                           int(document["broker"]["port"]), document["broker"].get("pid_file") or None,
                           str(document.get("metrics", {}).get("listen", "127.0.0.1:9101")),
                           document["broker"].get("user", "mosquitto") or None)
    except (KeyError, TypeError, ValueError) as error:
        raise ConfigError(f"{path} lacks or mistypes {error}; see `edge-verify hub init --help`") from None


def write_settings(settings: HubSettings) -> None:
    def quoted(text: str) -> str:
        return json.dumps(text)
    lines = ["# edge-verify hub settings (written by `edge-verify hub init`)", "[database]",
             f"dsn = {quoted(settings.dsn)}", "", "[broker]", f"host = {quoted(settings.broker_host)}",
             f"port = {settings.broker_port}"]
    if settings.pid_file:
        lines.append(f"pid_file = {quoted(settings.pid_file)}")
    lines.append(f"user = {quoted(settings.broker_user or '')}")
    lines += ["", "[metrics]", f"listen = {quoted(settings.metrics)}", ""]
    write_private(settings.home / "hub.toml", "\n".join(lines).encode())


# ---- init ------------------------------------------------------------------------------------------

def init_files(settings: HubSettings, server_names: tuple[str, ...]) -> None:
    """CA, the broker's certificate and config, the hub's own broker credentials (kept if present)."""
    home = settings.home
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o711)  # the broker's account may pass through to broker/, not list or read the rest
    ca_dir, broker_dir, client_dir = home / "ca", home / "broker", home / "client"
    if not (ca_dir / "ca.key").exists():
        ca = pki.make_ca(f"edge-verify site CA ({home.name})")
        write_private(ca_dir / "ca.key", ca.key_pem)
        write_private(ca_dir / "ca.pem", ca.cert_pem)
    ca = load_ca(home)
    if not (broker_dir / "broker.key").exists():
        server = pki.issue(ca, "edge-verify broker", server_names=server_names, client=False)
        write_private(broker_dir / "broker.key", server.key_pem)
        write_private(broker_dir / "broker.pem", server.cert_pem)
    write_private(broker_dir / "ca.pem", ca.cert_pem)
    (broker_dir / "data").mkdir(parents=True, exist_ok=True)
    write_private(broker_dir / "mosquitto.conf",
                  broker.config_text(broker_dir, settings.broker_host, settings.broker_port,
                                     settings.broker_user if os.geteuid() == 0 else None).encode())
    if not (client_dir / "password").exists():
        client = pki.issue(ca, broker.HUB_USER)
        write_private(client_dir / "hub.key", client.key_pem)
        write_private(client_dir / "hub.pem", client.cert_pem)
        write_private(client_dir / "password", secrets.token_urlsafe(32).encode())
    write_private(client_dir / "ca.pem", ca.cert_pem)
    broker.hand_over(broker_dir, settings.broker_user)


def load_ca(home: Path) -> pki.Issued:
    return pki.Issued((home / "ca" / "ca.pem").read_bytes(), (home / "ca" / "ca.key").read_bytes())


def hub_password(home: Path) -> str:
    return (home / "client" / "password").read_text().strip()


def site_key_path(home: Path, site: str) -> Path:
    return home / "sites" / f"{names.check_name('site', site)}.key"


def create_site_key(home: Path, site: str) -> bytes:
    path = site_key_path(home, site)
    if path.exists():
        raise ConfigError(f"site key {path} already exists; refusing to replace it (every template of the site "
                          "is sealed with it)")
    key = new_site_key()
    write_private(path, key)
    return key


def load_site_key(home: Path, site: str) -> bytes:
    path = site_key_path(home, site)
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"no key for site {site!r} at {path}; the hub folder is incomplete (restore it from its "
                          "backup)") from None
    if len(key) != KEY_BYTES:
        raise ConfigError(f"site key {path} holds {len(key)} bytes, not {KEY_BYTES}: it is damaged")
    return key


def site_cipher(home: Path, db: HubDB, site: str) -> SiteCipher:
    cipher = SiteCipher(site, load_site_key(home, site))
    if cipher.key_check() != db.site(site)["key_check"]:
        raise ConfigError(f"the key file for site {site!r} does not match the hub's database (another hub's "
                          "folder?); nothing was decrypted")
    return cipher


def sync_broker(settings: HubSettings, db: HubDB) -> bool:
    """Rewrite the broker's passwd and acl from the active devices and tell the broker (SIGHUP)."""
    passwords, devices = db.broker_users()
    passwords[broker.HUB_USER] = broker.password_line(broker.HUB_USER, hub_password(settings.home))
    broker.write_credentials(settings.home / "broker", passwords, devices, settings.broker_user)
    return broker.reload(settings.pid_file)


# ---- devices ---------------------------------------------------------------------------------------

def add_device(settings: HubSettings, db: HubDB, name: str, site: str, actor: str,
               broker_host: str | None = None) -> dict:
    """Register a kiosk and return its provisioning bundle (write it with write_bundle, mode 0600)."""
    names.check_name("device", name)
    if name == broker.HUB_USER:
        raise ConfigError(f"{name!r} is the hub's own broker account; choose another device name")
    info = db.site(site)
    cipher = site_cipher(settings.home, db, site)
    password = secrets.token_urlsafe(32)
    wrap_private, wrap_public = new_wrap_key()
    wrapped = wrap(load_site_key(settings.home, site), wrap_public, site, name)
    client = pki.issue(load_ca(settings.home), name)
    db.add_device(name, site, broker.password_line(name, password), wrap_public, wrapped, actor)
    sync_broker(settings, db)
    return {"format": BUNDLE_FORMAT, "site": site, "device": name,
            "broker": {"host": broker_host or settings.broker_host, "port": settings.broker_port},
            "ca": load_ca(settings.home).cert_pem.decode(), "cert": client.cert_pem.decode(),
            "key": client.key_pem.decode(), "username": name, "password": password,
            "wrap_private": b64(wrap_private), "wrapped_site_key": b64(wrapped), "key_check": cipher.key_check(),
            "policy": {"offline_policy": info["offline_policy"], "max_silence_s": info["max_silence_s"]}}


def revoke_device(settings: HubSettings, db: HubDB, name: str, actor: str) -> bool:
    """Mark revoked, drop its broker password and ACL and make the broker reload (which disconnects it)."""
    db.revoke_device(name, actor)
    return sync_broker(settings, db)


def write_bundle(path: str | os.PathLike, bundle: dict) -> Path:
    path = Path(path)
    if path.exists():
        raise ConfigError(f"{path} exists; a bundle is never written over another file (choose a new name)")
    return write_private(path, (json.dumps(bundle, indent=2) + "\n").encode())
