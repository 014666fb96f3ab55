"""The hub's console over HTTPS: hub admin accounts (wrong passwords audited in the hub's table), the people
of each site with its doors, removal through the same call as `hub remove` (after a confirm step, with the
CSRF token), the devices with their status, the decisions; enrollment from uploaded photos and renaming, through
the calls of `hub enroll` and `hub rename`, every door following a rename."""
from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import pytest
from fleetkit import ADMIN, PASSWORD, unit_vectors, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "console"))

from browserkit import Screens, browser, chromium, playwright_api, watched_page  # noqa: E402,F401 (fixtures)
from consolekit import Client, certificate  # noqa: E402

from edge.cli import main  # noqa: E402
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


FACES = Path(__file__).resolve().parent.parent / "fixtures" / "faces"


def upload(client: Client, path: str, fields: dict, photos: list[Path]):
    """A multipart/form-data POST as a browser's file form sends it."""
    boundary = "----edge-verify-test-boundary"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
             for name, value in fields.items()]
    parts += [f'--{boundary}\r\nContent-Disposition: form-data; name="photos"; filename="{photo.name}"\r\n'
              f"Content-Type: image/jpeg\r\n\r\n".encode() + photo.read_bytes() + b"\r\n" for photo in photos]
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return client.request("POST", path, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
                          body=body)


@pytest.fixture
def enrolling_console(hub, tmp_path, pipeline):
    cert, key = certificate(tmp_path)
    running = RunningConsole(HubConsole(hub.home, idle_s=600, pipeline=pipeline),
                             ConsoleSettings(True, "127.0.0.1", 0, cert, key, 600))
    yield running.start()
    running.close()


def test_hub_console_enrolls_from_uploaded_photos_through_the_hub_enroll_call(hub, enrolling_console):
    client = Client(enrolling_console)
    assert hub_login(client, PASSWORD)[0].status == 303
    photos = [FACES / f"Colin_Powell_{number:04d}.jpg" for number in (1, 2, 3)]
    fields = {"site": "main", "name": "Colin Powell"}
    response, page = upload(client, "/people/enroll", fields, photos)
    assert response.status == 403 and "security token" in page  # no CSRF token: refused before anything is read
    response, _ = upload(client, "/people/enroll", {**fields, "csrf": "forged"}, photos)
    assert response.status == 403
    with hub.db() as db:
        assert db.people("main") == []
    token = client.page_csrf("/people")
    assert 'enctype="multipart/form-data"' in client.request("GET", "/people")[1]
    response, _ = upload(client, "/people/enroll", {**fields, "csrf": token}, photos)
    assert response.status == 303
    _, page = client.request("GET", "/people")
    assert "enrolled Colin Powell at site main: 3 templates from 3 photos" in page
    assert '<span class="person">Colin Powell</span>' in page
    with hub.db() as db:
        enrolled = db.people("main")
        records = [record for record in db.audit_records(20) if record["action"] == "enroll"]
    assert [(person["name"], person["templates"]) for person in enrolled] == [("Colin Powell", 3)]
    assert len(records) == 1 and "(console, 127.0.0.1)" in records[0]["actor"]
    # the same face under another name: the door's duplicate check refuses it, as `hub enroll` does
    response, _ = upload(client, "/people/enroll", {"site": "main", "name": "Someone Else", "csrf": token},
                         [FACES / "Colin_Powell_0004.jpg", *photos[1:]])
    assert response.status == 303, (response.status, _)
    _, page = client.request("GET", "/people")
    assert "the door would take this face for Colin Powell" in page, re.findall(r'class="notice[^<]*', page)
    # a body over the upload limit is refused before it is read
    response, page = client.request("POST", "/people/enroll", headers={
        "Content-Type": "multipart/form-data; boundary=x", "Content-Length": str(64 * 1024 * 1024)}, body=b"")
    assert response.status == 413


def test_hub_console_renames_a_person_and_every_door_follows(hub, console, capsys):
    hub.enroll_vectors("Ada Lovelace", unit_vectors(2, seed=3))
    kiosk = hub.kiosk("door-1")
    wait_for(lambda: kiosk.position() == 1, 30, what="the kiosk's first sync")
    client = Client(console)
    assert hub_login(client, PASSWORD)[0].status == 303
    form = {"site": "main", "name": "Ada Lovelace", "new": "Ada King"}
    response, page = client.request("POST", "/people/rename", form)
    assert response.status == 403 and "security token" in page
    token = client.page_csrf("/people")
    response, _ = client.request("POST", "/people/rename", {**form, "csrf": token},
                                 headers={"Origin": "https://evil.example"})
    assert response.status == 403
    with hub.db() as db:
        assert [person["name"] for person in db.people("main")] == ["Ada Lovelace"]
    response, _ = client.request("POST", "/people/rename", {**form, "csrf": token})
    assert response.status == 303
    _, page = client.request("GET", "/people")
    assert "renamed Ada Lovelace to Ada King at site main" in page and '<span class="person">Ada King</span>' in page
    wait_for(lambda: kiosk.position() == 3, 30, what="the kiosk follows the rename")
    assert kiosk.people() == ["Ada King"]
    with hub.db() as db:
        assert [(person["name"], person["templates"]) for person in db.people("main")] == [("Ada King", 2)]
        assert "Ada Lovelace" not in str(db.changes_after("main", 0, 100))  # the old name leaves the feed
        renames = [record for record in db.audit_records(20) if record["action"] == "rename"]
    assert len(renames) == 1 and "(console, 127.0.0.1)" in renames[0]["actor"]
    # the command line makes the same call; a name taken is refused
    assert main(["hub", "rename", "Ada King", "Ada Lovelace", "--home", str(hub.home), "--admin", ADMIN]) == 0
    assert "renamed Ada King to Ada Lovelace at site main" in capsys.readouterr().out
    wait_for(lambda: kiosk.position() == 5, 30, what="the kiosk follows the second rename")
    assert kiosk.people() == ["Ada Lovelace"]
    hub.enroll_vectors("Grace Hopper", unit_vectors(2, seed=4))
    response, _ = client.request("POST", "/people/rename", {"site": "main", "name": "Grace Hopper",
                                                            "new": "Ada Lovelace", "csrf": token})
    _, page = client.request("GET", "/people")
    assert "Ada Lovelace is already enrolled at site" in page
    with hub.db() as db:
        assert sorted(person["name"] for person in db.people("main")) == ["Ada Lovelace", "Grace Hopper"]


def test_hub_administrator_enrolls_and_renames_in_a_browser(hub, enrolling_console, browser):
    expect = playwright_api().expect
    kiosk = hub.kiosk("door-1")
    errors: list[str] = []
    context, page = watched_page(browser, errors)
    screens = Screens(page)
    base = enrolling_console.url
    page.goto(f"{base}/login")
    page.fill("input[name=admin]", ADMIN)
    page.fill("input[name=password]", PASSWORD)
    page.click("form.login button")
    page.wait_for_url(f"{base}/people", wait_until="domcontentloaded")
    page.fill("form.enroll input[name=name]", "Colin Powell")
    page.set_input_files("form.enroll input[name=photos]",
                         [str(FACES / f"Colin_Powell_{number:04d}.jpg") for number in (1, 2, 3)])
    page.click("form.enroll button")
    expect(page.locator("p.notice.ok")).to_contain_text("enrolled Colin Powell at site main: 3 templates from 3 "
                                                        "photos", timeout=60000)
    row = page.locator("tr", has=page.locator("span.person", has_text="Colin Powell"))
    row.locator("form.rename input[name=new]").fill("General Colin Powell")
    row.locator("form.rename button").click()
    expect(page.locator("p.notice.ok")).to_contain_text("renamed Colin Powell to General Colin Powell at site main")
    assert page.locator("span.person").all_inner_texts() == ["General Colin Powell"]
    screens.shot("hub-people")
    # enrolled (change 1), renamed (2: the old name removed, 3: the new one added)
    wait_for(lambda: kiosk.position() == 3, 60, what="the door follows the enrollment and the rename")
    assert kiosk.people() == ["General Colin Powell"]
    context.close()
    assert errors == [], f"console errors in the pages: {errors}"
