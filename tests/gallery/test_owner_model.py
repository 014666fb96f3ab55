"""Issue 12 item 5: one owner model, working end to end as root and as the service user.

The model: on an installed kiosk (/etc/edge-verify/config.toml exists) the CLI and the
daemon find the same gallery, key and token from that file, whatever the environment
(sudo drops EDGE_VERIFY_HOME). The service user owns /var/lib/edge-verify and every file
in it, whoever runs the CLI: files root makes there are handed to the folder's owner.
The admin token lives in /etc/edge-verify (root's, readable by the service group), so
only root sets the first token, and the daemon's account can neither delete nor replace
it. Every permission problem is one line saying what to run.

Played out for real: a throwaway system user, root with a sudo-like environment, and
`runuser -u`, inside a private mount namespace (installed_kiosk.py).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

KIT = Path(__file__).resolve().parent / "installed_kiosk.py"
SERVICE = "evkiosk-svc"

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not all(shutil.which(tool) for tool in
                                ("unshare", "runuser", "useradd", "userdel")),
                                reason="needs root, unshare, runuser, useradd and userdel")


@pytest.fixture(scope="module")
def kiosk(tmp_path_factory, models_ready):
    work = tmp_path_factory.mktemp("kiosk")
    os.chmod(work, 0o755)
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", sys.executable, str(KIT), str(work)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def one_line(step: dict) -> bool:
    return "Traceback" not in step["err"] and step["err"].strip().count("\n") == 0


def test_root_and_the_service_user_share_one_gallery(kiosk):
    for step in ("root set-token", "root enroll", "service enroll", "service verify", "root backup", "root remove",
                 "service list"):
        assert kiosk[step]["rc"] == 0, (step, kiosk[step]["err"])
    assert [person["name"] for person in json.loads(kiosk["service list"]["out"])] == ["Colin"]
    assert kiosk["root home"] == []  # nothing went to /root because sudo dropped EDGE_VERIFY_HOME


def test_files_keep_the_service_users_ownership(kiosk):
    owners = kiosk["owners"]
    for name in ("gallery.sqlite", "gallery.key", "gallery.audit.jsonl"):
        assert owners[f"/var/lib/edge-verify/{name}"] == f"{SERVICE}:{SERVICE} 0600", owners
    assert not [path for path, owner in owners.items() if path.startswith("/var/lib/") and not path.endswith("models")
                and not owner.startswith(f"{SERVICE}:")], owners
    assert owners["/etc/edge-verify/admin-token"] == f"root:{SERVICE} 0640"


def test_the_service_account_cannot_take_over_the_token(kiosk):
    assert kiosk["service deletes token"]["rc"] != 0
    assert kiosk["service first token"]["rc"] != 0 and one_line(kiosk["service first token"])
    assert kiosk["service change token"]["rc"] != 0 and one_line(kiosk["service change token"])
    assert "root" in kiosk["service change token"]["err"]


def test_permission_problems_are_one_line_saying_what_to_run(kiosk):
    step = kiosk["nobody list"]
    assert step["rc"] != 0 and one_line(step), step["err"]
    assert "permission denied" in step["err"] and "sudo" in step["err"]


def test_the_daemon_runs_as_the_service_user_on_what_root_enrolled(kiosk):
    step = kiosk["service run"]
    assert step["rc"] == 0, step["err"]
    assert "1 person" in step["err"]
