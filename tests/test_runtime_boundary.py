"""The runtime/build boundary: edge/ never loads torch, onnx or the build package, and
reaches the build side's commands only through the ``edge_verify.build`` entry points."""
from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import subprocess
import sys

import pytest

from edge import extras
from edge.cli import main

BUILD_SIDE = ("torch", "onnx", "edge_build", "edge_calibration")
# What a kiosk loads: the daemon, enrollment, selftest and their commands.
RUNTIME_ENTRY_MODULES = (
    "edge", "edge.cli", "edge.cli.run", "edge.cli.enroll", "edge.cli.selftest", "edge.cli.verify",
    "edge.cli.identify", "edge.cli.gallery", "edge.daemon.loop", "edge.daemon.config", "edge.enroll.capture",
    "edge.enroll.identify", "edge.enroll.quality", "edge.selftest.runner", "edge.pipeline", "edge.verify.api",
    "edge.extras", "edge.demo",
)
COMMANDS = {"build": "building engines", "train-siamese": "training", "train-attributes": "training",
            "train-liveness": "training",
            "models-fetch": "converting the starter models", "starter-models": "converting the starter models"}

# Runs in a fresh interpreter: records which runtime line first imported each build-side
# module, imports the entry modules, then builds the whole command line and prints
# `edge-verify run --help` in-process.
PROBE = """
import contextlib, importlib, io, json, sys, traceback

BUILD_SIDE, MODULES = {build_side!r}, {modules!r}
culprits = {{}}

class Watch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BUILD_SIDE and name not in culprits:
            frames = [f"{{f.filename}}:{{f.lineno}}" for f in traceback.extract_stack()[:-1]
                      if "/edge/" in f.filename.replace("\\\\", "/")]
            culprits[name] = frames[-1] if frames else "(not from edge/)"
        return None

sys.meta_path.insert(0, Watch())
for module in MODULES:
    importlib.import_module(module)
from edge.cli import build_parser
text = io.StringIO()
with contextlib.redirect_stdout(text):
    try:
        build_parser().parse_args(["run", "--help"])
    except SystemExit:
        pass
loaded = sorted(name for name in sys.modules if name.split(".")[0] in BUILD_SIDE)
print(json.dumps({{"loaded": loaded, "culprits": culprits, "help": text.getvalue()}}))
"""


def test_runtime_modules_and_run_help_load_nothing_of_the_build_side():
    script = PROBE.format(build_side=BUILD_SIDE, modules=RUNTIME_ENTRY_MODULES)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert "usage: edge-verify run" in report["help"]
    first_top_level = {name: where for name, where in report["culprits"].items() if "." not in name}
    assert report["loaded"] == [], f"the runtime imported build-side modules: {first_top_level or report['culprits']}"


def test_help_lists_the_build_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    listed = capsys.readouterr().out
    for command in ("build", "train", "models", "demo"):
        assert f"\n    {command} " in listed


def test_every_build_command_is_registered_and_loads():
    registered = {entry.name: entry for entry in importlib.metadata.entry_points(group=extras.GROUP)}
    assert set(registered) == set(COMMANDS), "re-run `pip install -e .` after editing pyproject.toml's entry points"
    for name, needed_for in COMMANDS.items():
        assert callable(extras.build_feature(name, needed_for))


@pytest.mark.parametrize("argv", [["build"], ["train", "siamese", "--data", "x"], ["train", "attributes", "--data", "x"],
                                  ["models", "fetch"]])
def test_without_the_build_extra_a_build_command_says_what_to_install(argv, monkeypatch, capsys):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *rest: None if name == "torch" else real_find_spec(name, *rest))
    assert main(argv) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "needs the build extra (torch is not installed)" in err and "pip install 'edge-verify[build]'" in err


def test_without_the_entry_points_the_error_names_the_extra(monkeypatch, capsys):
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **selection: [])
    assert main(["build"]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install 'edge-verify[build]'" in err and "'build'" in err

