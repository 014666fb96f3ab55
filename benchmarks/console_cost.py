"""What the web console costs on this machine, and whether it slows the door.

A real door daemon (`edge-verify run`, relay on gpiozero's mock pins) plays a 640x480
MJPG clip with one face per frame at a camera's rate (--rate, default 15 fps), and
writes its events. A real console (`edge-verify console serve`, HTTPS) runs beside it.
Three phases of --seconds each:

  1. no console process at all              -> the daemon's baseline
  2. console running, nobody looking        -> console idle: RSS and CPU
  3. console streaming the live view        -> a client logged in polls /api/live/frame
                                               the way the browser's script does

For each phase: the daemon's decoded-frame-to-decision latency (its events'
``latency_ms``) p50 and p95 and the frames it judged; for phases 2 and 3 the console's
resident memory (VmRSS, mean and peak of 4 samples a second) and CPU time per wall second
(utime+stime from /proc, in % of one core), and the daemon's CPU too: the JPEG encoding of
the shared frames happens on the daemon's sharing thread. The streaming client runs in
this process. The console loads no models until an enrollment or identify check needs them.

    OMP_NUM_THREADS=1 python benchmarks/console_cost.py --threads 1 --json console_cost.json
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from daemon_latency import machine, write_clip  # noqa: E402

TOKEN = "benchmark-token"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each phase (default 20)")
    parser.add_argument("--rate", default="15", help="the daemon's frames per second (default 15, a camera's)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads per engine (default: ONNX Runtime's)")
    parser.add_argument("--json", type=Path, default=Path("console_cost.json"), help="write the figures here")
    return parser.parse_args(argv)


def edge_verify(*words) -> list[str]:
    return [sys.executable, "-m", "edge", *words]


def write_config(folder: Path, clip: Path, rate: str, threads) -> Path:
    engine = f"threads = {threads}\n" if threads else ""
    text = f"""[source]
uri = "file://{clip}"
rate = {rate}
[door]
pin = "BOARD11"
pulse_s = 1.0
[engine]
{engine}[gallery]
path = "{folder / 'gallery.sqlite'}"
key = "{folder / 'gallery.key'}"
[events]
file = "{folder / 'events.jsonl'}"
stdout = false
[console]
enabled = true
port = 18643
daemon_socket = "{folder / 'd.sock'}"
certificate = "{folder / 'cert.pem'}"
private_key = "{folder / 'key.pem'}"
"""
    path = folder / "config.toml"
    path.write_text(text)
    return path


def prepare(folder: Path, frames: int, rate: str, threads) -> Path:
    from edge.demo import enroll
    from edge.gallery.auth import set_token, token_path
    from edge.pipeline import FacePipeline

    clip = folder / "one_face_640x480.avi"
    write_clip(clip, frames)
    enroll(FacePipeline.load(threads=threads), folder, log=lambda line: None)
    set_token(token_path(folder / "gallery.sqlite"), TOKEN)
    config = write_config(folder, clip, rate, threads)
    subprocess.run(edge_verify("console", "init-cert", "--config", str(config)), check=True, stdout=subprocess.DEVNULL)
    return config


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mib(pid: int) -> float:
    line = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("VmRSS"))
    return int(line.split()[1]) / 1024


def sample(pids: dict, seconds: float) -> dict:
    """{name: CPU % of one core and RSS} of each process over ``seconds``."""
    rss: dict = {name: [] for name in pids}
    started = time.monotonic()
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    while time.monotonic() - started < seconds:
        for name, pid in pids.items():
            rss[name].append(rss_mib(pid))
        time.sleep(0.25)
    wall = time.monotonic() - started
    return {name: {"cpu_percent_of_one_core": round(100 * (cpu_seconds(pid) - before[name]) / wall, 1),
                   "rss_mib_mean": round(float(np.mean(rss[name])), 1),
                   "rss_mib_peak": round(float(np.max(rss[name])), 1)} for name, pid in pids.items()}


class Viewer(threading.Thread):
    """A logged-in browser's live view: fetch the newest frame, draw it, 100 ms, again."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.port = port
        self.stop = threading.Event()
        self.frames = 0
        self.bytes = 0

    def run(self):
        import http.client

        context = ssl._create_unverified_context()
        connection = http.client.HTTPSConnection("127.0.0.1", self.port, context=context, timeout=30)
        cookie = login(connection)
        seq = 0
        while not self.stop.is_set():
            connection.request("GET", f"/api/live/frame?after={seq}", headers={"Cookie": cookie})
            response = connection.getresponse()
            body = response.read()
            if response.headers.get("Content-Type") == "image/jpeg":
                seq = json.loads(response.headers["X-Frame-Info"])["seq"]
                self.frames += 1
                self.bytes += len(body)
            time.sleep(0.1)
        connection.close()


def login(connection) -> str:
    connection.request("GET", "/login")
    response = connection.getresponse()
    page = response.read().decode()
    login_cookie = response.headers["Set-Cookie"].split(";", 1)[0]
    token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    connection.request("POST", "/login", body=f"csrf={token}&token={TOKEN}",
                       headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": login_cookie})
    response = connection.getresponse()
    response.read()
    return next(header for header in response.headers.get_all("Set-Cookie")
                if header.startswith("__Host-edge-console=")).split(";", 1)[0]


def latencies(events_path: Path, start: float, end: float) -> dict:
    """The daemon's latency over the events whose wall time lies in [start, end]."""
    values = []
    for line in events_path.read_text().splitlines():
        event = json.loads(line)
        if event.get("latency_ms") is None:
            continue
        moment = datetime.datetime.fromisoformat(event["time"].replace("Z", "+00:00")).timestamp()
        if start <= moment <= end:
            values.append(event["latency_ms"])
    values = np.array(values)
    if not len(values):
        return {"frames": 0}
    return {"frames": int(len(values)), "latency_ms_p50": round(float(np.percentile(values, 50)), 2),
            "latency_ms_p95": round(float(np.percentile(values, 95)), 2)}


def wait_for_socket(path: Path, process, what: str) -> None:
    from edge.daemon.share import ShareClient

    for _ in range(600):
        if process.poll() is not None:
            raise SystemExit(f"the {what} exited with {process.returncode}")
        client = ShareClient.running(path)
        if client is not None:
            client.close()
            return
        time.sleep(0.1)
    raise SystemExit(f"the {what} did not start")


def wait_for_port(port: int, process) -> None:
    import socket

    for _ in range(600):
        if process.poll() is not None:
            raise SystemExit(f"the console exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the console did not start")


def main(argv=None) -> int:
    args = parse_args(argv)
    frames = int(float(args.rate) * (3 * args.seconds + 20)) + 60
    env = {**os.environ, "GPIOZERO_PIN_FACTORY": "mock"}
    with tempfile.TemporaryDirectory(prefix="console-cost-") as scratch:
        folder = Path(scratch)
        config = prepare(folder, frames, args.rate, args.threads)
        daemon = subprocess.Popen(edge_verify("run", "--config", str(config), "--quiet"), env=env,
                                  stdout=subprocess.DEVNULL)
        console = None
        try:
            wait_for_socket(folder / "d.sock", daemon, "daemon")
            time.sleep(3)  # warm-up
            phases = {}
            start = time.time()
            alone = sample({"daemon": daemon.pid}, args.seconds)
            phases["no console"] = {**latencies(folder / "events.jsonl", start, time.time()), **alone}
            console = subprocess.Popen(edge_verify("console", "serve", "--config", str(config), "--quiet"), env=env,
                                       stderr=subprocess.DEVNULL)
            wait_for_port(18643, console)
            time.sleep(2)
            start = time.time()
            idle = sample({"daemon": daemon.pid, "console": console.pid}, args.seconds)
            phases["console idle"] = {**latencies(folder / "events.jsonl", start, time.time()), **idle}
            viewer = Viewer(18643)
            viewer.start()
            time.sleep(1)
            start = time.time()
            streaming = sample({"daemon": daemon.pid, "console": console.pid}, args.seconds)
            phases["console streaming"] = {**latencies(folder / "events.jsonl", start, time.time()),
                                           **streaming, "viewer_fps": round(viewer.frames / args.seconds, 1),
                                           "viewer_kib_per_s": round(viewer.bytes / 1024 / args.seconds, 1)}
            viewer.stop.set()
            viewer.join()
        finally:
            for process in (console, daemon):
                if process is not None and process.poll() is None:
                    process.send_signal(signal.SIGTERM)
                    process.wait(timeout=30)
    report = {"machine": machine(), "rate_fps": args.rate, "threads": args.threads, "seconds": args.seconds,
              "phases": phases}
    print(f"{'phase':<20} {'frames':>7} {'p50 ms':>8} {'p95 ms':>8} {'daemon CPU %':>13} {'console CPU %':>14} "
          f"{'console RSS MiB':>16}")
    for name, phase in phases.items():
        console_figures = phase.get("console", {})
        print(f"{name:<20} {phase['frames']:>7} {phase.get('latency_ms_p50', 0):>8.1f} "
              f"{phase.get('latency_ms_p95', 0):>8.1f} {phase['daemon']['cpu_percent_of_one_core']:>13.1f} "
              f"{console_figures.get('cpu_percent_of_one_core', 0):>14.1f} "
              f"{console_figures.get('rss_mib_peak', 0):>16.1f}")
    streaming = phases["console streaming"]
    print(f"live view: {streaming['viewer_fps']} frames/s, {streaming['viewer_kib_per_s']} KiB/s; "
          f"machine: {report['machine']['cpu']}, {report['machine']['cpus']} CPUs")
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
