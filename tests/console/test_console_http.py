"""The console's security, over HTTPS without a browser: login rate limit, CSRF, no change over GET,
only the configured interface, cookie flags, the CSP on every answer, TLS only, off by default."""
from __future__ import annotations

import json
import socket
import ssl

import pytest
from consolekit import TOKEN, Client, kiosk_settings, serve_console

from edge.cli import main
from edge.console.settings import listen_address
from edge.exc import ConfigError


@pytest.fixture
def console(tmp_path, gallery_files):
    gallery, key = gallery_files
    running = serve_console(tmp_path, kiosk_settings(tmp_path, gallery, key))
    yield running
    running.close()


def audit_actions(gallery_path) -> list:
    lines = gallery_path.with_suffix(".audit.jsonl").read_text().splitlines()
    return [json.loads(line)["action"] for line in lines]


def test_cookies_are_secure_httponly_samesite_strict(console):
    client = Client(console)
    response, _ = client.login()
    assert response.status == 303 and response.headers["Location"] == "/live"
    cookies = [header for header in response.headers.get_all("Set-Cookie") if not "Max-Age=0" in header]
    assert len(cookies) == 1
    session = cookies[0]
    assert session.startswith("__Host-edge-console=")
    for flag in ("Secure", "HttpOnly", "SameSite=Strict", "Path=/"):
        assert flag in [part.strip() for part in session.split(";")]
    assert "Domain" not in session
    page, _ = client.request("GET", "/people")
    assert page.status == 200


def test_every_answer_carries_the_content_security_policy(console):
    client = Client(console)
    answers = [client.request("GET", "/login")[0], client.request("GET", "/static/console.js")[0],
               client.request("GET", "/no-such-page")[0], client.request("GET", "/api/enroll")[0]]
    client.login()
    answers += [client.request("GET", "/people")[0], client.request("GET", "/api/live/frame")[0]]
    for response in answers:
        policy = response.headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "no-store"
    assert [response.status for response in answers[:4]] == [200, 200, 404, 401]


def test_wrong_tokens_are_throttled_and_audited(console, gallery_files):
    gallery, _ = gallery_files
    client = Client(console)
    response, page = client.login("not-the-token")
    assert response.status == 403 and "the admin token is wrong" in page
    # The next try, even with the right token, must wait: refused without being checked.
    response, page = client.login(TOKEN)
    assert response.status == 429 and "too many wrong logins" in page
    assert int(response.headers["Retry-After"]) >= 1
    assert "__Host-edge-console" not in client.cookies
    actions = audit_actions(gallery)
    assert actions.count("console-login-refused") == 1 and actions.count("console-login-throttled") == 1
    assert actions.count("token-refused") == 1  # the admin token's own count, shared with the command line
    assert "console-login" not in actions
    assert json.loads(gallery.with_suffix(".admin-failures").read_text())["failures"] == 1


def test_a_change_without_the_csrf_token_is_refused(console, gallery_files):
    gallery, _ = gallery_files
    client = Client(console)
    client.login()
    for form in ({"old": "Colin_Powell", "new": "Colin Powell"},
                 {"old": "Colin_Powell", "new": "Colin Powell", "csrf": "forged"}):
        response, page = client.request("POST", "/people/rename", form)
        assert response.status == 403 and "security token" in page
    token = client.page_csrf()
    response, _ = client.request("POST", "/people/rename", {"old": "Colin_Powell", "new": "Colin Powell",
                                                            "csrf": token},
                                 headers={"Origin": "https://evil.example"})
    assert response.status == 403  # the right token from another site's page is refused too
    response, _ = client.request("POST", "/people/rename", {"old": "Colin_Powell", "new": "Colin Powell", "csrf": token})
    assert response.status == 303
    assert audit_actions(gallery).count("rename") == 1
    _, page = client.request("GET", "/people")
    assert '<span class="person">Colin Powell</span>' in page
    assert '<span class="person">Colin_Powell</span>' not in page


def test_login_form_needs_its_own_token(console):
    client = Client(console)
    response, page = client.request("POST", "/login", {"token": TOKEN, "csrf": "guessed"})
    assert response.status == 403 and "security token" in page


def test_no_change_over_get(console, gallery_files):
    gallery, _ = gallery_files
    client = Client(console)
    client.login()
    for path in ("/people/remove?name=Colin_Powell&confirm=yes", "/people/rename?old=Colin_Powell&new=X",
                 "/door/pulse?confirm=yes", "/enroll/cancel", "/logout", "/selftest?run=1"):
        response, _ = client.request("GET", path)
        assert response.status in (405, 200), path
        if response.status == 405:
            assert "POST" in response.headers["Allow"]
    response, _ = client.request("PUT", "/people")
    assert response.status == 405
    assert "remove" not in audit_actions(gallery) and "rename" not in audit_actions(gallery)
    _, page = client.request("GET", "/people")
    assert '<span class="person">Colin_Powell</span>' in page


def test_removal_asks_first_then_erases_through_the_gallery(console, gallery_files):
    gallery, _ = gallery_files
    client = Client(console)
    client.login()
    token = client.page_csrf()
    response, page = client.request("POST", "/people/remove", {"name": "Serena_Williams", "csrf": token})
    assert response.status == 200 and "Erase Serena_Williams" in page and 'name="confirm" value="yes"' in page
    assert "remove" not in audit_actions(gallery)
    response, _ = client.request("POST", "/people/remove", {"name": "Serena_Williams", "confirm": "yes",
                                                            "csrf": token})
    assert response.status == 303
    _, page = client.request("GET", "/people")
    assert "removed Serena_Williams: erased 2 templates" in page
    assert audit_actions(gallery).count("remove") == 1


def test_only_the_configured_address_answers(tmp_path, gallery_files):
    gallery, key = gallery_files
    running = serve_console(tmp_path, kiosk_settings(tmp_path, gallery, key), address="127.0.0.1")
    try:
        assert Client(running).request("GET", "/login")[0].status == 200
        for other in ("127.0.0.2", outside_address()):
            if other is None:
                continue
            with pytest.raises(OSError):
                socket.create_connection((other, running.port), timeout=2).close()
    finally:
        running.close()


def outside_address():
    """This machine's address on its default route, when it has one (not loopback)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing interface
        address = probe.getsockname()[0]
    except OSError:
        return None
    finally:
        probe.close()
    return None if address.startswith("127.") else address


def test_listen_refuses_all_interfaces_and_foreign_addresses():
    for address in ("0.0.0.0", "::"):
        with pytest.raises(ConfigError, match="every interface"):
            listen_address(address)
    with pytest.raises(ConfigError, match="not an address of this machine"):
        listen_address("192.0.2.77")
    with pytest.raises(ConfigError, match="no such interface"):
        listen_address("nosuch0")
    assert listen_address("lo") == "127.0.0.1"


def test_plain_http_is_not_served(console):
    with socket.create_connection(("127.0.0.1", console.port), timeout=5) as plain:
        plain.sendall(b"GET /login HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            answer = plain.recv(4096)  # a TLS alert at most
        except ConnectionResetError:
            answer = b""
    assert b"HTTP/1.1 200" not in answer and b"csrf" not in answer


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # TLS 1.1 itself is deprecated: that is the point
def test_tls_1_1_is_refused(console):
    context = ssl._create_unverified_context()
    context.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises((ssl.SSLError, OSError)):
        with socket.create_connection(("127.0.0.1", console.port), timeout=5) as raw:
            context.wrap_socket(raw).close()


def test_pages_need_a_session(console):
    client = Client(console)
    response, _ = client.request("GET", "/people")
    assert response.status == 303 and response.headers["Location"] == "/login"
    response, _ = client.request("POST", "/people/rename", {"old": "a", "new": "b"})
    assert response.status == 401


def test_the_console_is_off_by_default(tmp_path, capsys):
    assert main(["console", "serve", "--no-config"]) == 2
    assert "the console is off: set [console] enabled = true" in capsys.readouterr().err


def test_uploads_are_parsed_strictly():
    from edge.console.web import MAX_PARTS, HTTPError, parse_multipart

    def part(name, value, filename=None):
        file = f'; filename="{filename}"' if filename is not None else ""
        return f'--b\r\nContent-Disposition: form-data; name="{name}"{file}\r\n\r\n'.encode() + value + b"\r\n"

    photo = b"\xff\xd8 a line\r\n--not the boundary\r\n\xff\xd9"
    body = part("csrf", b"t") + part("photos", photo, 'a \\"1\\".jpg') + part("photos", b"", "") + b"--b--\r\n"
    fields, files = parse_multipart(body, "multipart/form-data; boundary=b")
    assert fields == {"csrf": "t"} and [(upload.filename, upload.data) for upload in files] == [('a "1".jpg', photo)]
    for body, kind, status in [(part("csrf", b"t"), "multipart/form-data; boundary=b", 400),  # never closed
                               (b"--b--\r\n", "multipart/form-data", 400),  # no boundary given
                               (b"x" + part("csrf", b"t") + b"--b--", "multipart/form-data; boundary=b", 400),
                               (part("csrf", b"\xff") + b"--b--", "multipart/form-data; boundary=b", 400),
                               (part("x", b"1") * (MAX_PARTS + 1) + b"--b--", "multipart/form-data; boundary=b", 413)]:
        with pytest.raises(HTTPError) as refused:
            parse_multipart(body, kind)
        assert refused.value.status == status
