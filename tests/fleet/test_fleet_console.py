"""The hub's console over HTTPS: hub admin accounts (wrong passwords audited in the hub's table), the people
of each site with its doors, removal through the same call as `hub remove` (after a confirm step, with the
CSRF token), the devices with their status, the decisions."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from fleetkit import ADMIN, PASSWORD, unit_vectors

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "console"))

from consolekit import Client, certificate  # noqa: E402

from edge.console.hub import HubConsole  # noqa: E402
from edge.console.serve import RunningConsole  # noqa: E402
from edge.console.settings import ConsoleSettings  # noqa: E402


@pytest.fixture
def console(hub, tmp_path):
    cert, key = certificate(tmp_path)
    running = RunningConsole(HubConsole(hub.home, idle_s=600), ConsoleSettings(True, "127.0.0.1", 0, cert, key, 600))
    yield running.start()
    running.close()


def hub_login(client: Client, password: str):
    _, page = client.request("GET", "/login")
    return client.request("POST", "/login", {"csrf": client.csrf(page), "admin": ADMIN, "password": password})


def test_hub_console_people_devices_and_removal(hub, console):
    hub.add_device("door-1")
    hub.enroll_vectors("Ada Lovelace", unit_vectors(2))
    client = Client(console)
    response, page = hub_login(client, "wrong password!")
    assert response.status == 403 and "wrong password" in page
    with hub.db() as db:
        assert [record["action"] for record in db.audit_records(10)].count("login-failed") == 1
    time.sleep(2.2)  # the account's own wait after one wrong password (2 s), and the console's (1 s)
    response, page = hub_login(client, PASSWORD)
    assert response.status == 303 and response.headers["Location"] == "/people"
    _, page = client.request("GET", "/people")
    assert "Site main" in page and "door-1" in page and '<span class="person">Ada Lovelace</span>' in page
    _, page = client.request("GET", "/devices")
    assert "door-1" in page and "main" in page
    assert client.request("GET", "/decisions")[0].status == 200
    response, _ = client.request("POST", "/people/remove", {"site": "main", "name": "Ada Lovelace"})
    assert response.status == 403  # no CSRF token
    token = client.page_csrf("/people")
    response, page = client.request("POST", "/people/remove", {"site": "main", "name": "Ada Lovelace", "csrf": token})
    assert response.status == 200 and "every door of it" in page
    response, _ = client.request("POST", "/people/remove", {"site": "main", "name": "Ada Lovelace", "csrf": token,
                                                            "confirm": "yes"})
    assert response.status == 303
    _, page = client.request("GET", "/people")
    assert "removed Ada Lovelace at site main" in page
    with hub.db() as db:
        assert db.people("main") == []
        actions = [record["action"] for record in db.audit_records(20)]
    assert "remove" in actions and "console-login" in actions and "console-login-refused" in actions
