"""The build side, reached from the runtime by name only.

edge/ never imports the build package (edge_build, which needs torch and onnx).
The features that need it (`edge-verify build`, `train`, `models fetch`, and the
demo's first conversion of the starter models) are registered by the build
package as entry points of the group ``edge_verify.build`` (pyproject.toml), the
way gpiozero finds its pin factories, and loaded here only when one runs. A
kiosk without the build extra still lists those commands in --help; running one
says in one line which extra to install.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
from typing import Callable

from edge.engines.device import torch_install_hint
from edge.exc import ModelError

GROUP = "edge_verify.build"
EXTRA_MODULES = ("torch", "onnx")  # what the build extra adds to the runtime's dependencies
BUILD_PACKAGES = ("edge_build", "edge_calibration")


def build_feature(name: str, needed_for: str, then: str = "") -> Callable:
    """The build package's entry point ``name``, loaded.

    ModelError, one line naming the extra, when the build extra or the entry
    point is missing; ``needed_for`` says what the user asked for, ``then`` what
    to do after installing."""
    after = f", then {then}" if then else ""
    missing = [module for module in EXTRA_MODULES if importlib.util.find_spec(module) is None]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise ModelError(f"{needed_for} needs the build extra ({' and '.join(missing)} {verb} not installed): {torch_install_hint()}{after}")
    entry = next(iter(importlib.metadata.entry_points(group=GROUP, name=name)), None)
    if entry is None:
        raise ModelError(f"{needed_for} needs the build package's {name!r} command, which this installation does not "
                         f"register (its {GROUP} entry points are missing): {torch_install_hint()}{after}")
    try:
        return entry.load()
    except ModuleNotFoundError as error:
        if (error.name or "").split(".")[0] not in EXTRA_MODULES + BUILD_PACKAGES:
            raise
        raise ModelError(f"{needed_for} needs the build extra ({error.name} is missing): {torch_install_hint()}{after}") from error


def build_command(name: str, needed_for: str) -> Callable:
    """A command-line handler that runs the build package's command ``name`` with the parsed arguments."""

    def run(args) -> int:
        return build_feature(name, needed_for)(args)

    return run
