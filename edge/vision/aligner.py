"""Aligners: faces in a photo -> the embedding engine's input chips, and those chips -> embeddings.

FacePipeline talks to one of these and never to the alignment maths directly:

* :class:`CpuAligner` (here): numpy, for every backend; what runs on a CPU.
* ``edge.vision.cuda_aligner.CudaAligner``: the same chips made by the CUDA kernel
  straight into a TensorRT engine's input buffer; what runs with the TensorRT backend.

Both follow the maths of :mod:`edge.vision.align` (its docstring), including dlib's
anti-alias pyramid for faces much larger than the chip, so the two give the same
chips to within float rounding (tests/test_align.py, tests/test_cuda_aligner.py).

The interface: ``align(image_rgb, faces) -> (N, 3, size, size) float32`` and
``embed(engine, chips, flip) -> (N, D)`` raw embeddings (flip-averaged when asked).
"""
from __future__ import annotations

import numpy as np

from edge.vision import align
from edge.verify.api import average_with_flip


class CpuAligner:
    """Five landmarks -> chip matrix -> pyramid (large faces) -> bilinear sample -> normalise."""

    def __init__(self, size: int, padding: float, mean, std, template=None, weights=None):
        # template/weights: the detector's landmark template (edge.vision.detector); an
        # aligner without one can still make the black chip, but not align a face.
        self.size = int(size)
        self.padding = float(padding)
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        self.template = template
        self.weights = weights

    @classmethod
    def from_manifest(cls, manifest: dict, template, weights=None) -> "CpuAligner":
        """The embedding engine's chip (size, padding, mean, std) around the detector's landmark template."""
        pre = manifest["preprocess"]
        return cls(int(pre["size"][0]), float(pre["chip_padding"]), pre["mean"], pre["std"], template, weights)

    def matrix(self, face) -> np.ndarray:
        """The chip matrix of one detected face (its five landmarks)."""
        return align.chip_matrix(face.landmarks, self.template, self.size, self.padding, self.weights)

    def empty(self) -> np.ndarray:
        return np.zeros((0, 3, self.size, self.size), dtype=np.float32)

    def black(self) -> np.ndarray:
        """The normalised chip of an all-black source: what a face entirely off the image gives."""
        return np.broadcast_to((-self.mean / self.std).astype(np.float32)[:, None, None],
                               (3, self.size, self.size))

    def align(self, image: np.ndarray, faces) -> np.ndarray:
        """Aligned, normalised (N, 3, size, size) float32 chips, one per face."""
        if not faces:
            return self.empty()
        align.check_image(image)
        out = np.empty((len(faces), 3, self.size, self.size), dtype=np.float32)
        for index, face in enumerate(faces):
            # A face much larger than the chip would alias; dlib samples such faces from
            # a downsampled copy, and so do we, so chips match what the model was trained on.
            source, matrix = align.pyramid_source(image, self.matrix(face), self.size)
            if source.shape[0] < 2 or source.shape[1] < 2:
                out[index] = self.black()  # the pyramid left nothing to sample (dlib: a black chip)
                continue
            align.preprocess_cpu(source, matrix[None], self.size, self.mean, self.std, out=out[index:index + 1])
        return out

    def embed(self, engine, chips: np.ndarray, flip: bool, helper=None) -> np.ndarray:
        """(N, D) embeddings of host chips; with ``flip`` each averaged with its mirror image's. With
        ``helper`` (an Executor with an idle worker) the mirror images run there meanwhile: each chip
        is embedded on its own, so the numbers are those of one batch."""
        if flip and helper is not None:
            mirrored = helper.submit(engine.run, align.flip_chips(chips))
            own = engine.run(chips)[0]
            return average_with_flip(own, mirrored.result()[0])
        if flip:
            both = engine.run(np.concatenate([chips, align.flip_chips(chips)]))[0]
            return average_with_flip(both[: len(chips)], both[len(chips):])
        return engine.run(chips)[0]
