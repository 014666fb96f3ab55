"""What each `edge-verify hub ...` command does (edge/cli/hub.py only parses and prints)."""
from __future__ import annotations

import getpass
import os
import threading
from pathlib import Path

from edge.enroll.capture import image_shots
from edge.exc import AuthError, ConfigError
from edge.fleet import names
from edge.fleet.metrics import parse_address
from edge.fleet.sitekey import SiteCipher
from edge.hub import admins, home, people
from edge.hub.db import HubDB
from edge.hub.home import HubSettings

ADMIN_ENV = "EDGE_VERIFY_HUB_ADMIN"
NEW_PASSWORD_ENV = "EDGE_VERIFY_HUB_NEW_PASSWORD"


def password_for(name: str) -> str:
    """The admin's password: $EDGE_VERIFY_HUB_PASSWORD, else a prompt on the terminal."""
    password = os.environ.get(admins.PASSWORD_ENV)
    if password:
        return password
    try:
        return getpass.getpass(f"password of hub admin {name}: ")
    except (EOFError, OSError):
        raise AuthError(f"no terminal to ask for the password: set ${admins.PASSWORD_ENV}") from None


def new_password(name: str) -> str:
    password = os.environ.get(NEW_PASSWORD_ENV)
    if password:
        return admins.check_new_password(password)
    try:
        first = getpass.getpass(f"new password for hub admin {name}: ")
        second = getpass.getpass("again: ")
    except (EOFError, OSError):
        raise AuthError(f"no terminal to ask for the new password: set ${NEW_PASSWORD_ENV}") from None
    if first != second:
        raise AuthError("the two passwords differ; nothing was changed")
    return admins.check_new_password(first)


def admin_name(explicit: str | None) -> str:
    name = explicit or os.environ.get(ADMIN_ENV)
    if not name:
        raise AuthError(f"hub commands need an admin account: --admin NAME (or ${ADMIN_ENV})")
    return name


def open_hub(home_dir) -> tuple[HubSettings, HubDB]:
    settings = home.load_settings(home.hub_home(home_dir))
    return settings, HubDB(settings.dsn)


def login(db: HubDB, admin: str | None) -> str:
    name = admin_name(admin)
    return admins.authenticate(db, name, password_for(name))


def init(home_dir, dsn: str | None, site: str, admin: str | None, broker_host: str, broker_port: int,
         server_names: list[str], pid_file: str | None, metrics: str, offline_policy: str,
         max_silence_s: int, broker_user: str | None) -> dict:
    """Make the hub (first run) or add a site to it (later runs, by an admin)."""
    names.check_name("site", site)
    if offline_policy not in home.POLICIES:
        raise ConfigError(f"--offline-policy must be one of {', '.join(home.POLICIES)}")
    parse_address(metrics)
    folder = home.hub_home(home_dir)
    first = not (folder / "hub.toml").exists()
    if first:
        if not dsn:
            raise ConfigError("the first `hub init` needs --dsn (the PostgreSQL database of the hub), e.g. "
                              "postgresql://edge_verify_hub@/edge_verify_hub?host=/run/postgresql")
        settings = HubSettings(folder, dsn, broker_host, broker_port, pid_file, metrics, broker_user)
        home.init_files(settings, tuple(dict.fromkeys([broker_host, *server_names])))
        home.write_settings(settings)
    else:
        settings = home.load_settings(folder)
    db = HubDB(settings.dsn)
    try:
        db.create_schema()
        actor = "hub init"
        if admins.has_admins(db):
            actor = login(db, admin)
        elif not admin:
            raise AuthError("the first `hub init` makes the first admin account: pass --admin NAME "
                            f"(its password from ${NEW_PASSWORD_ENV} or asked twice)")
        else:
            admins.add_admin(db, admin, new_password(admin), actor)
            actor = f"hub admin {admin}"
        known = {item["name"] for item in db.sites()}
        if site not in known:
            key = home.create_site_key(settings.home, site)
            db.add_site(site, SiteCipher(site, key).key_check(), actor, offline_policy, max_silence_s)
        home.sync_broker(settings, db)
        return {"home": str(settings.home), "site": site, "new_site": site not in known, "first": first,
                "broker_config": str(settings.home / "broker" / "mosquitto.conf")}
    finally:
        db.close()


def serve(home_dir, stop: threading.Event | None = None, heartbeat_s: float | None = None) -> int:
    from edge.hub.service import HEARTBEAT_S, HubService  # paho and its threads only for the service

    settings = home.load_settings(home.hub_home(home_dir))
    service = HubService(settings, heartbeat_s or HEARTBEAT_S, metrics_address=parse_address(settings.metrics))
    return service.run(stop or threading.Event())


def add_device(home_dir, admin, name: str, site: str, out: Path, broker_host: str | None) -> dict:
    settings, db = open_hub(home_dir)
    with db:
        actor = login(db, admin)
        if out.exists():
            raise ConfigError(f"{out} exists; a bundle is never written over another file")
        bundle = home.add_device(settings, db, name, site, actor, broker_host)
        home.write_bundle(out, bundle)
    return {"device": name, "site": site, "bundle": str(out)}


def revoke_device(home_dir, admin, name: str) -> dict:
    settings, db = open_hub(home_dir)
    with db:
        actor = login(db, admin)
        told = home.revoke_device(settings, db, name, actor)
    return {"device": name, "broker_reloaded": told}


def enroll(home_dir, admin, name: str, site: str, images: list[Path], force: bool, pipeline_loader, report) -> dict:
    settings, db = open_hub(home_dir)
    with db:
        actor = login(db, admin)
        return people.enroll_photos(settings.home, db, site, name, image_shots(images), actor, pipeline_loader(),
                                    force=force, report=report)


def rename(home_dir, admin, old: str, new: str, site: str) -> dict:
    settings, db = open_hub(home_dir)
    with db:
        actor = login(db, admin)
        return people.rename_person(settings.home, db, site, old, new, actor)


def remove(home_dir, admin, name: str, site: str) -> dict:
    _, db = open_hub(home_dir)
    with db:
        actor = login(db, admin)
        return people.remove_person(db, site, name, actor)


def listing(home_dir, admin, site: str | None, devices: bool, audit: int) -> dict:
    _, db = open_hub(home_dir)
    with db:
        login(db, admin)
        result: dict = {"sites": db.sites()}
        if site:
            result["people"] = db.people(site)
        if devices:
            result["devices"] = db.devices(site)
        if audit:
            result["audit"] = db.audit_records(audit)
    return result


def add_admin(home_dir, admin, name: str) -> dict:
    _, db = open_hub(home_dir)
    with db:
        actor = login(db, admin)
        admins.add_admin(db, name, new_password(name), actor)
    return {"admin": name}


def unlock_admin(home_dir, admin, name: str) -> dict:
    _, db = open_hub(home_dir)
    with db:
        actor = login(db, admin)
        admins.unlock_admin(db, name, actor)
    return {"admin": name, "unlocked": True}


def set_policy(home_dir, admin, site: str, offline_policy: str, max_silence_s: int) -> dict:
    if offline_policy not in home.POLICIES:
        raise ConfigError(f"--offline-policy must be one of {', '.join(home.POLICIES)}")
    _, db = open_hub(home_dir)
    with db:
        actor = login(db, admin)
        db.set_policy(site, offline_policy, max_silence_s, actor)
    return {"site": site, "offline_policy": offline_policy, "max_silence_s": max_silence_s}
