"""An installed kiosk, played out as root and as a throwaway service user, in a private mount namespace.

Run by test_owner_model.py as ``unshare --mount --propagation private python installed_kiosk.py WORK``.
Inside the namespace, a copy of /etc is mounted over /etc and a tmpfs over /var/lib, so the
system user made here with useradd, /etc/edge-verify and /var/lib/edge-verify exist only in
this namespace (the user is deleted again at the end all the same). Prints one JSON object:
{step: {"rc", "out", "err"}} plus "owners" (file -> "user:group mode").
"""
from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
from pathlib import Path

SERVICE = "evkiosk-svc"
TOKEN = "installer-token-1"
ROOT_HOME = Path("/nonexistent")  # root's HOME, a folder of the work dir (set in main): nothing lands in /root
FACES = Path(__file__).resolve().parent.parent / "fixtures" / "faces"
CONFIG = """\
[source]
uri = "csi://0"
[door]
pin = "BOARD11"
[gallery]
path = "/var/lib/edge-verify/gallery.sqlite"
key = "/var/lib/edge-verify/gallery.key"
admin_token = "/etc/edge-verify/admin-token"
"""


def sh(*argv):
    subprocess.run(argv, check=True, capture_output=True)


def private_system(work: Path) -> None:
    shutil.copytree("/etc", work / "etc", symlinks=True)
    sh("mount", "--bind", str(work / "etc"), "/etc")
    sh("mount", "-t", "tmpfs", "tmpfs", "/var/lib")
    open_the_interpreter(work)
    sh("useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE)
    # What systemd-tmpfiles makes from systemd/edge-verify.tmpfiles.conf:
    os.makedirs("/etc/edge-verify", exist_ok=True)
    shutil.chown("/etc/edge-verify", "root", SERVICE)
    os.chmod("/etc/edge-verify", 0o750)
    Path("/etc/edge-verify/config.toml").write_text(CONFIG)
    shutil.chown("/etc/edge-verify/config.toml", "root", SERVICE)
    os.chmod("/etc/edge-verify/config.toml", 0o640)
    os.makedirs("/var/lib/edge-verify")
    shutil.chown("/var/lib/edge-verify", SERVICE, SERVICE)
    os.chmod("/var/lib/edge-verify", 0o750)
    models = Path(os.environ["EDGE_VERIFY_HOME"]) / "models"
    os.symlink(models, "/var/lib/edge-verify/models")


def open_the_interpreter(work: Path) -> None:
    """The service user must run this Python, which may live under root's home (mode 0700, e.g. pyenv):
    in here only, /root becomes a tmpfs that others may traverse, holding just that installation."""
    real = Path(os.path.realpath(sys.executable))
    if not str(real).startswith("/root/"):
        return
    top = Path("/root") / real.relative_to("/root").parts[0]
    staged = work / "interpreter"
    staged.mkdir()
    sh("mount", "--bind", str(top), str(staged))
    sh("mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/root")
    top.mkdir()
    sh("mount", "--bind", str(staged), str(top))


def environment(**extra) -> dict:
    """What sudo leaves: no EDGE_VERIFY_HOME, HOME of the target user, a plain PATH."""
    base = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
            "GPIOZERO_PIN_FACTORY": "mock"}
    return {**base, **extra}


def cli(results: dict, step: str, *argv, user: str | None = None, stdin: str | None = None, **env) -> None:
    command = [sys.executable, "-m", "edge", *map(str, argv)]
    if user is not None:
        command = ["runuser", "-u", user, "--", *command]
    home = str(ROOT_HOME) if user is None else "/"
    done = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=300,
                          env=environment(HOME=home, **env), cwd="/")
    results[step] = {"rc": done.returncode, "out": done.stdout[-2000:], "err": done.stderr[-3000:]}


def owners(paths) -> dict:
    out = {}
    for path in paths:
        if os.path.lexists(path):
            info = os.lstat(path)
            out[str(path)] = (f"{pwd.getpwuid(info.st_uid).pw_name}:{_group(info.st_gid)} "
                              f"{stat.S_IMODE(info.st_mode):04o}")
    return out


def _group(gid: int) -> str:
    import grp

    return grp.getgrgid(gid).gr_name


def clip(work: Path) -> Path:
    import cv2
    import numpy as np

    frames = []
    for _ in range(20):
        frame = np.full((240, 320, 3), 96, np.uint8)
        frame[:, 40:280] = cv2.resize(cv2.imread(str(FACES / "Colin_Powell_0003.jpg")), (240, 240))
        frames.append(frame)
    folder = Path("/var/lib/clips")  # in this namespace's /var/lib: the service user may read it
    folder.mkdir(mode=0o755)
    path = folder / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (320, 240))
    for frame in frames:
        writer.write(frame)
    writer.release()
    os.chmod(path, 0o644)
    return path


def play(work: Path) -> dict:
    results: dict = {}
    token = {"EDGE_VERIFY_ADMIN_TOKEN": TOKEN}
    colin = [FACES / f"Colin_Powell_{n:04d}.jpg" for n in (1, 2, 3)]
    serena = [FACES / f"Serena_Williams_{n:04d}.jpg" for n in (1, 2, 3)]
    cli(results, "root set-token", "admin", "set-token", stdin=TOKEN + "\n")
    cli(results, "root enroll", "enroll", "Colin", "--images", *colin, **token)
    cli(results, "service enroll", "enroll", "Serena", "--images", *serena, user=SERVICE, **token)
    cli(results, "service verify", "gallery", "verify", user=SERVICE)
    cli(results, "root backup", "gallery", "backup", work / "backup.sqlite", **token)
    cli(results, "root remove", "gallery", "remove", "Serena", **token)
    cli(results, "service list", "gallery", "list", "--json", user=SERVICE)
    results["service deletes token"] = {"rc": subprocess.run(
        ["runuser", "-u", SERVICE, "--", "rm", "-f", "/etc/edge-verify/admin-token"], capture_output=True).returncode}
    cli(results, "service first token", "admin", "set-token", user=SERVICE, stdin="service-chosen-token\n")
    cli(results, "service change token", "admin", "set-token", user=SERVICE, stdin="service-chosen-token\n", **token)
    cli(results, "nobody list", "gallery", "list", user="nobody")
    cli(results, "service run", "run", "--config", "/etc/edge-verify/config.toml", "--source", f"file://{clip(work)}",
        "--until-end", "--events", "/var/lib/edge-verify/events.jsonl", "--no-events-stdout", user=SERVICE)
    home = Path("/var/lib/edge-verify")
    results["owners"] = owners([Path("/etc/edge-verify/admin-token"), *sorted(home.iterdir())])
    results["root home"] = sorted(str(path) for path in ROOT_HOME.rglob("*edge-verify*"))
    sh("userdel", SERVICE)
    return results


if __name__ == "__main__":
    work = Path(sys.argv[1])
    ROOT_HOME = work / "root-home"
    ROOT_HOME.mkdir()
    private_system(work)
    print(json.dumps(play(work)))
