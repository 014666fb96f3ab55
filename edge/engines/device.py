"""Which GPU this is, and what it can do fast.

``describe_device()`` answers with the GPU's name and compute capability, or
None on a machine without a CUDA GPU (the CPU path). It asks pycuda first (the
driver's own answer), then ``nvidia-smi``, then, on a Jetson without either, the
device tree's model string. Nothing here imports pycuda or TensorRT at import
time: they exist only on the device.

Fast precisions by compute capability (TensorRT's hardware precision matrix; see
shared/notes/tensorrt-pycuda-on-jetson.md, section 2):

    cc    example               fast FP16   fast INT8
    5.3   Jetson Nano, TX1      yes         no
    6.0   P100                  yes         no   (no dp4a)
    6.1   GTX 10xx, P4/P40      no          yes  (dp4a; FP16 runs at 1/64 rate)
    6.2   Jetson TX2            yes         no
    7.0+  V100, Xavier (7.2),   yes         yes
          Turing, Ampere, Orin (8.7)

Anything below 5.3 (and 5.0/5.2) has neither.
"""
from __future__ import annotations

import platform
import shutil
import subprocess
from pathlib import Path

FP16_ONLY = {(5, 3), (6, 0), (6, 2)}
INT8_ONLY = {(6, 1)}

# Jetson boards report no nvidia-smi compute capability; their SoC fixes it.
JETSON_MODELS = (
    ("orin", "Orin", (8, 7)),
    ("xavier", "Xavier", (7, 2)),
    ("tx2", "TX2", (6, 2)),
    ("nano", "Nano", (5, 3)),  # after "orin": "Jetson Orin Nano" contains both
    ("tx1", "TX1", (5, 3)),
)
DEVICE_TREE_MODEL = Path("/proc/device-tree/model")


def torch_install_hint(machine: str | None = None) -> str:
    """How to get PyTorch for the build side on this machine (one line, for error messages).

    On aarch64 the build extra leaves torch out: the registry's aarch64 wheel drags in
    server-GPU CUDA libraries a Jetson cannot use (pyproject.toml, README "On Jetson")."""
    if (machine or platform.machine()).lower() in ("aarch64", "arm64"):
        return ("on a Jetson install NVIDIA's PyTorch wheel for your JetPack (or the CPU-only aarch64 "
                "wheel), then pip install -e '.[build,jetson]'")
    return "pip install 'edge-verify[build]'"


def parse_capability(value) -> tuple[int, int]:
    """(major, minor) from "8.7", 8.7, (8, 7) or [8, 7]."""
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return int(value[0]), int(value[1])
    text = str(value).strip()
    major, _, minor = text.partition(".")
    if not major.isdigit() or not minor.isdigit():
        raise ValueError(f"compute capability {value!r} is not of the form MAJOR.MINOR")
    return int(major), int(minor)


def capability_text(value) -> str:
    major, minor = parse_capability(value)
    return f"{major}.{minor}"


def fast_fp16(cc) -> bool:
    capability = parse_capability(cc)
    return capability in FP16_ONLY or capability >= (7, 0)


def fast_int8(cc) -> bool:
    capability = parse_capability(cc)
    return capability in INT8_ONLY or capability >= (7, 0)


def fast_precision(cc, precision: str) -> bool:
    """True when ``precision`` runs at full speed on a GPU of capability ``cc`` (fp32 always does)."""
    if precision == "fp16":
        return fast_fp16(cc)
    if precision == "int8":
        return fast_int8(cc)
    return True


def describe_device() -> dict | None:
    """{"gpu", "compute_capability": "M.m", "source"} of CUDA device 0, or None without a GPU.

    ``source`` says which probe answered: the same GPU is named differently by
    pycuda ("Orin") and by the device tree ("NVIDIA Jetson AGX Orin ..."), so
    names are only comparable between answers from the same source.
    """
    for probe in (probe_pycuda, probe_nvidia_smi, probe_jetson_model):
        found = probe()
        if found:
            return found
    return None


def probe_pycuda() -> dict | None:
    try:
        import pycuda.driver as cuda
    except ImportError:
        return None
    try:
        cuda.init()
        if cuda.Device.count() == 0:
            return None
        device = cuda.Device(0)
        major, minor = device.compute_capability()
        return {"gpu": device.name(), "compute_capability": f"{major}.{minor}", "source": "pycuda"}
    except cuda.Error:  # driver present but no usable device
        return None


def probe_nvidia_smi() -> dict | None:
    tool = shutil.which("nvidia-smi")
    if not tool:
        return None
    try:
        done = subprocess.run([tool, "--query-gpu=name,compute_cap", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_nvidia_smi(done.stdout) if done.returncode == 0 else None


def parse_nvidia_smi(output: str) -> dict | None:
    """First GPU of ``nvidia-smi --query-gpu=name,compute_cap --format=csv,noheader``."""
    for line in output.splitlines():
        name, _, capability = line.rpartition(",")
        try:
            return {"gpu": name.strip(), "compute_capability": capability_text(capability), "source": "nvidia-smi"}
        except ValueError:
            continue  # "[N/A]" on drivers too old to report it
    return None


def probe_jetson_model(path: Path = DEVICE_TREE_MODEL) -> dict | None:
    try:
        model = path.read_text(errors="replace").strip("\x00\n ")
    except OSError:
        return None
    return jetson_from_model(model)


def jetson_from_model(model: str) -> dict | None:
    """{"gpu", "compute_capability"} from a Jetson device-tree model string, e.g.
    "NVIDIA Jetson AGX Orin Developer Kit" -> Orin, 8.7."""
    lowered = model.lower()
    if "jetson" not in lowered:
        return None
    for key, family, capability in JETSON_MODELS:
        if key in lowered:
            return {"gpu": model, "family": family, "compute_capability": "%d.%d" % capability, "source": "device-tree"}
    return None
