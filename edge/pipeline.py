"""Photo in, faces and embeddings out: detect → align → embed.

This is the one place that joins the detector, the alignment and the embedding
engine, so the CLI, the benchmarks, calibration, enrollment and the daemon all
see exactly the same faces.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.engines import load_engine
from edge.engines.manifest import check_input_contract
from edge.exc import NoFaceError
from edge.models import registry
from edge.verify.api import l2_normalize
from edge.vision.aligner import CpuAligner
from edge.vision.cuda_aligner import CudaAligner


@dataclass
class Described:
    """Faces found in one image, their aligned chips' embeddings, and stage times in ms."""

    faces: list
    embeddings: np.ndarray
    ms: dict = field(default_factory=dict)


def primary_face_index(faces, shape) -> int | None:
    """The face a kiosk (or an LFW pair) is about: among faces at least half as
    large as the largest, the one nearest the image centre. Bystanders in the
    background are smaller; a large face at the edge is usually a passer-by."""
    if not faces:
        return None
    sizes = np.array([(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]) for f in faces])
    centre = np.array([shape[1] / 2.0, shape[0] / 2.0])
    best, best_distance = None, np.inf
    for index, face in enumerate(faces):
        if sizes[index] < 0.25 * sizes.max():  # area ratio 1/4 = side ratio 1/2
            continue
        middle = np.array([(face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2])
        distance = float(np.linalg.norm(middle - centre))
        if distance < best_distance:
            best, best_distance = index, distance
    return best


class FacePipeline:
    """Detector + aligner + embedding engine, with the embedding's contract.

    ``flip`` averages each face's embedding with that of its mirror image
    (about +0.3 LFW points for one more embedding per face). ``aligner`` makes the
    chips (edge.vision.aligner): the CPU one by default, the CUDA one when the
    embedding engine is TensorRT (see ``load``).
    """

    def __init__(self, detector, embedder, flip: bool = True, aligner=None):
        self.detector = detector
        self.embedder = embedder
        self.flip = flip
        manifest = embedder.manifest
        self.aligner = aligner or CpuAligner.from_manifest(manifest)
        self.size = self.aligner.size
        self.padding = self.aligner.padding
        self.mean = self.aligner.mean
        self.std = self.aligner.std
        self.template = self.aligner.template
        self.weights = self.aligner.weights
        # The dlib descriptor is compared after scaling to unit length when the
        # manifest says so: it separates strangers better at low false-accept rates.
        self.normalize = manifest.get("embedding_normalization") == "l2"
        self.threshold = float(manifest["threshold"])
        self.manifest = manifest

    @classmethod
    def load(cls, precision: str = "fp32", backend: str = "onnxruntime", threads: int | None = None,
             models_dir: Path | None = None, flip: bool = True, detector_precision: str = "fp32",
             detector_backend: str = "onnxruntime", embedding_path: Path | None = None) -> "FacePipeline":
        """``embedding_path`` picks an embedding engine file; its manifest then says
        precision and backend, and ``precision``/``backend`` are not used."""
        from edge.vision.detect import MtcnnDetector

        nets = [load_engine(registry.require_engine(name, detector_precision, detector_backend, models_dir), threads=threads)
                for name in registry.DETECTOR_NETS]
        path = embedding_path or registry.require_engine(registry.EMBEDDING, precision, backend, models_dir)
        embedder = load_engine(path, threads=threads)
        # The pipeline feeds RGB chips; refuse an engine built for anything else.
        check_input_contract(embedder.manifest, {"name": registry.EMBEDDING, "colour": "RGB", "layout": "NCHW"})
        return cls(MtcnnDetector(*nets), embedder, flip=flip, aligner=aligner_for(embedder, flip))

    def detect(self, image: np.ndarray) -> list:
        return self.detector.detect(image)

    def align(self, image: np.ndarray, faces) -> np.ndarray:
        """Aligned, normalised (N, 3, size, size) float32 chips, one per face."""
        return self.aligner.align(image, faces)

    def primary_chip(self, image: np.ndarray) -> np.ndarray | None:
        """The main face's aligned (1, 3, size, size) chip, or None when no face is found."""
        faces = self.detect(image)
        if not faces:
            return None
        return self.align(image, [faces[primary_face_index(faces, image.shape)]])

    def embed(self, chips: np.ndarray) -> np.ndarray:
        """(N, D) embeddings of aligned chips (flip-averaged when enabled)."""
        if len(chips) == 0:
            return np.zeros((0, int(self.manifest["outputs"][0]["shape"][-1])), dtype=np.float32)
        embeddings = self.aligner.embed(self.embedder, chips, self.flip)
        return l2_normalize(embeddings) if self.normalize else embeddings

    def describe(self, image: np.ndarray, primary_only: bool = True) -> Described:
        """Detect, align and embed; with ``primary_only`` keep just the main face."""
        t0 = time.perf_counter()
        faces = self.detect(image)
        if primary_only and faces:
            faces = [faces[primary_face_index(faces, image.shape)]]
        t1 = time.perf_counter()
        chips = self.align(image, faces)
        t2 = time.perf_counter()
        embeddings = self.embed(chips)
        t3 = time.perf_counter()
        ms = {"detect": (t1 - t0) * 1e3, "align": (t2 - t1) * 1e3, "embed": (t3 - t2) * 1e3, "total": (t3 - t0) * 1e3}
        return Described(faces, embeddings, ms)

    def embed_primary(self, image: np.ndarray, source: str = "image") -> np.ndarray:
        """The main face's embedding, or NoFaceError naming the source."""
        described = self.describe(image)
        if not described.faces:
            raise NoFaceError(f"{source}: no face found")
        return described.embeddings[0]


def aligner_for(embedder, flip: bool):
    """The aligner for this embedding engine: a TensorRT engine gets the CUDA aligner, which
    writes the chips into the engine's input buffer; every other backend the CPU one."""
    if embedder.manifest.get("backend") != "tensorrt":
        return CpuAligner.from_manifest(embedder.manifest)
    return CudaAligner(embedder, flip=flip)
