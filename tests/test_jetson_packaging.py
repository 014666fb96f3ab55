"""What a Jetson gets from `pip install -e '.[build,jetson]'`: JetPack 6's Python, no server CUDA torch."""
from __future__ import annotations

import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from edge.engines.device import torch_install_hint

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PROJECT = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())["project"]
JETSON = {"platform_machine": "aarch64", "sys_platform": "linux", "platform_system": "Linux",
          "python_version": "3.10", "python_full_version": "3.10.12", "implementation_name": "cpython"}
DESKTOP = dict(JETSON, platform_machine="x86_64", python_version="3.11", python_full_version="3.11.2")


def installed(extra: str, environment: dict) -> dict:
    requirements = [Requirement(text) for text in PROJECT["optional-dependencies"][extra]]
    return {r.name: str(r.specifier) for r in requirements
            if r.marker is None or r.marker.evaluate(dict(environment, extra=extra))}


def test_the_build_extra_pulls_no_torch_on_a_jetson():
    assert "torch" not in installed("build", JETSON)
    assert installed("build", DESKTOP)["torch"] == "==2.13.0"  # pinned where it is installed


def test_jetpack_6_python_is_the_floor_and_jetpack_5_python_is_below_it():
    supported = SpecifierSet(PROJECT["requires-python"])
    assert "3.10.12" in supported  # JetPack 6 (Ubuntu 22.04)
    assert "3.8.10" not in supported  # JetPack 5 (Ubuntu 20.04): its TensorRT bindings are 3.8-only


def test_the_jetson_extra_has_the_libgpiod_2_binding_and_pycuda():
    jetson = installed("jetson", JETSON)
    assert jetson["gpiod"] == ">=2.0" and "pycuda" in jetson
    assert "tensorrt" not in jetson  # from JetPack (apt), never from the registry


def test_missing_torch_says_what_to_install_on_each_machine():
    assert "NVIDIA's PyTorch wheel for your JetPack" in torch_install_hint("aarch64")
    assert torch_install_hint("x86_64") == "pip install 'edge-verify[build]'"
