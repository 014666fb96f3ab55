"""The kind of CPU, as ONNX Runtime's INT8 kernels see it, and which INT8 engines it runs as built.

On x86, ONNX Runtime multiplies uint8 activations by int8 weights. Without VNNI
(AVX2, or AVX-512 without VNNI) its kernel adds pairs of products in 16 bits, which
saturate when both are large: 8-bit weights can overflow them, 7-bit weights
("reduce_range") cannot. With VNNI the products are summed in 32 bits, so the build
gives VNNI machines full 8-bit weights. The build picks the recipe for the CPU it
runs on (edge_build.quantize) and the manifest records it; this module lets the
runtime refuse an engine that would saturate here. Measured on the dlib ResNet, 300
held-out faces, an AVX2 machine: the VNNI recipe's embeddings lay up to 0.437 from
the reference (beyond the 0.409 threshold), the AVX2 recipe's up to 0.086
(benchmarks/int8_choices.py).
"""
from __future__ import annotations

import platform
from pathlib import Path

VNNI_FLAGS = {"avx512_vnni", "avx_vnni", "amx_int8"}


def cpu_flags() -> set:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_kind(machine: str | None = None, flags: set | None = None) -> str:
    """"x86-vnni", "x86", "arm" or the machine name, for choosing (and checking) a CPU recipe."""
    machine = (machine or platform.machine()).lower()
    if machine in ("x86_64", "amd64", "i686", "x86"):
        flags = cpu_flags() if flags is None else flags
        return "x86-vnni" if flags & VNNI_FLAGS else "x86"
    if machine in ("aarch64", "arm64") or machine.startswith("arm"):
        return "arm"
    return machine


def int8_cpu_problem(quantization: dict | None, cpu: str) -> str | None:
    """Why an ONNX Runtime INT8 engine (its manifest's ``quantization``) must not run on ``cpu``; None when it may."""
    if not quantization or quantization.get("target") != "onnxruntime":
        return None
    if cpu == "x86" and quantization.get("activations") == "uint8" and not quantization.get("reduce_range"):
        return (f"this INT8 engine has 8-bit weights, made for a CPU with VNNI (built on {quantization.get('cpu') or 'one'}); "
                "on this CPU (x86 without VNNI) ONNX Runtime's INT8 kernel saturates them and the embeddings drift "
                "beyond the match threshold. Rebuild the engine on this machine (`edge-verify build --precision int8 "
                "--calibration DIR ...`), or use --precision fp32")
    return None
