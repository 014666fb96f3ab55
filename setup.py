"""Package layout only; metadata lives in pyproject.toml.

build/ and calibration/ install as `edge_build` and `edge_calibration`: a top-level
module named `build` would shadow the standard `build` packaging tool.
"""
from setuptools import find_namespace_packages, find_packages, setup

RENAMED = {"edge_build": "build", "edge_calibration": "calibration"}


def renamed_packages():
    packages, package_dir = [], {}
    for name, folder in RENAMED.items():
        package_dir[name] = folder
        packages.append(name)
        for sub in find_packages(folder):
            packages.append(f"{name}.{sub}")
            package_dir[f"{name}.{sub}"] = f"{folder}/{sub.replace('.', '/')}"
    return packages, package_dir


extra_packages, extra_dirs = renamed_packages()
setup(
    # Namespace discovery so data-only folders (edge/vision/kernels, edge/demo_data) ship too.
    packages=find_namespace_packages(include=["edge", "edge.*"], exclude=["*.__pycache__"]) + extra_packages,
    package_dir={"edge": "edge", **extra_dirs},
)
