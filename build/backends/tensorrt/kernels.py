"""Stage: the CUDA alignment kernels -> a fatbin next to the TensorRT engines.

Run with every TensorRT build, on the device (JetPack ships nvcc in
/usr/local/cuda/bin), so the runtime loads machine code with pycuda's
``module_from_buffer`` and needs no compiler. The fatbin holds SASS for each
Jetson GPU the local nvcc can target, sm_72 (Xavier, JetPack 5) and sm_87 (Orin),
plus PTX for sm_87 so a newer GPU can still JIT it; the build's own GPU must be
among them. A JSON sidecar records the kernel source's sha256 (the runtime refuses
a fatbin from another version of the .cu), the architectures and nvcc's version.

    python -m edge_build.backends.tensorrt.kernels DIR      # compile into DIR by hand
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from edge.exc import BuildError
from edge.vision.cuda_preprocess import KERNEL_IMAGE, find_nvcc, kernel_source, kernel_source_sha256
from edge_build.stages import stage

JETSON_ARCHS = ("sm_72", "sm_87")  # Xavier, Orin
PTX_ARCH = "sm_87"


def nvcc_version(nvcc: str) -> str:
    done = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=60, check=False)
    lines = [line for line in done.stdout.splitlines() if "release" in line]
    return lines[-1].strip() if lines else done.stdout.strip()


def nvcc_archs(nvcc: str) -> set[str]:
    """The sm_XY this nvcc can generate code for (``--list-gpu-code``, CUDA 11 and later)."""
    done = subprocess.run([nvcc, "--list-gpu-code"], capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise BuildError(f"{nvcc} --list-gpu-code failed: {done.stderr.strip() or done.stdout.strip()}")
    return {token for token in done.stdout.split() if token.startswith("sm_")}


def gencode_flags(archs, ptx_arch: str | None) -> list[str]:
    flags = []
    for arch in archs:
        number = arch.removeprefix("sm_")
        codes = f"sm_{number},compute_{number}" if arch == ptx_arch else f"sm_{number}"
        flags.append(f"-gencode=arch=compute_{number},code=[{codes}]")
    return flags


@stage("cuda kernels")
def compile_kernels(out_dir: str | os.PathLike, archs=JETSON_ARCHS, required: str | None = None,
                    nvcc: str | None = None) -> Path:
    """Compile kernels/align_preprocess.cu into ``out_dir``/align_preprocess.fatbin (+ .json).

    Architectures the local nvcc cannot target are left out and named in the sidecar
    (CUDA 13 dropped sm_72, for instance); ``required`` (this device's "sm_87") must
    be built, or BuildError.
    """
    nvcc = nvcc or find_nvcc()
    available = nvcc_archs(nvcc)
    built = [arch for arch in archs if arch in available]
    skipped = {arch: f"{nvcc_version(nvcc)} cannot generate {arch}" for arch in archs if arch not in available}
    if required is not None and required not in built:
        raise BuildError(f"the CUDA kernels must be built for this GPU ({required}), and {nvcc} "
                         f"({nvcc_version(nvcc)}) cannot target it; use JetPack's own CUDA toolkit")
    if not built:
        raise BuildError(f"{nvcc} can target none of {', '.join(archs)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / KERNEL_IMAGE
    with tempfile.TemporaryDirectory() as scratch:
        source = Path(scratch) / "align_preprocess.cu"
        source.write_text(kernel_source(), encoding="utf-8")
        partial = Path(scratch) / KERNEL_IMAGE
        ptx = PTX_ARCH if PTX_ARCH in built else None
        command = [nvcc, "-fatbin", "-O3", *gencode_flags(built, ptx), str(source), "-o", str(partial)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
        if done.returncode != 0:
            raise BuildError(f"nvcc failed on align_preprocess.cu: {done.stderr.strip() or done.stdout.strip()}")
        sidecar = {"kernel_source_sha256": kernel_source_sha256(), "archs": built, "ptx": ptx,
                   "skipped": skipped, "nvcc": nvcc_version(nvcc), "command": " ".join(command[1:-3])}
        # The fatbin first, its sidecar last: a half-written pair is refused by the runtime's check.
        os.replace(partial, target)
        Path(f"{target}.json.tmp").write_text(json.dumps(sidecar, indent=2) + "\n", encoding="utf-8")
        os.replace(f"{target}.json.tmp", f"{target}.json")
    return target


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m edge_build.backends.tensorrt.kernels OUT_DIR", file=sys.stderr)
        return 2
    try:
        print(compile_kernels(args[0]))
    except BuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
