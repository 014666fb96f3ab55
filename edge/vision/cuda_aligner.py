"""The CUDA aligner: face chips made on the GPU, straight into a TensorRT engine's input.

What FacePipeline uses when the embedding engine is TensorRT (edge.pipeline.aligner_for).
Same interface and same chips as edge.vision.aligner.CpuAligner:

* ``align(image, faces)``: the chip matrices are computed on the CPU (five
  landmarks, a least-squares fit: microseconds); the frame goes up once through a
  page-locked buffer; the kernels (dlib's pyramid for large faces, then the
  fused sample-and-normalise) write the chips - and, with flip averaging, their
  mirror images - into the engine's device input buffer, on the engine's own
  CUDA stream. The chips also come back to the host (the liveness check and the
  event log read them).
* ``embed(engine, chips, flip)``: when ``chips`` is what ``align`` just returned,
  the engine runs on its device input as it stands (``run_device``): no upload.
  Any other chips (an enrollment photo's, a test's) take the ordinary host path.

Importing this module needs no GPU; building a CudaAligner does (pycuda, the
precompiled kernel next to the engine).
"""
from __future__ import annotations

import numpy as np

from edge.exc import EngineError
from edge.verify.api import average_with_flip
from edge.vision import align
from edge.vision.aligner import CpuAligner
from edge.vision.cuda_preprocess import KERNEL_IMAGE, CudaPreprocessor


class CudaAligner:
    def __init__(self, engine, template, weights=None, flip: bool = True, kernel_image=None):
        self.engine = engine
        self.flip = bool(flip)
        # matrices (around the detector's template), and the host path for other chips
        self.cpu = CpuAligner.from_manifest(engine.manifest, template, weights)
        binding = engine.device_input()
        expected = (3, self.cpu.size, self.cpu.size)
        if np.dtype(binding.dtype) != np.float32 or tuple(binding.max_shape[1:]) != expected:
            raise EngineError(f"the embedding engine's input {binding.name} is {np.dtype(binding.dtype)} "
                              f"{tuple(binding.max_shape)}; the CUDA aligner writes float32 (N, {', '.join(map(str, expected))})")
        device = (engine.manifest.get("device") or {}).get("compute_capability")
        self.preprocessor = CudaPreprocessor(
            self.cpu.size, self.cpu.mean, self.cpu.std, bgr=False,  # the pipeline's images are RGB
            kernel_image=kernel_image or engine.path.parent / KERNEL_IMAGE, stream=engine.stream,
            capability=str(device) if device else None,
        )
        self._staged: tuple[np.ndarray, int] | None = None  # (chips handed out, batch left in the engine)

    # The pipeline reads these, as it reads them from a CpuAligner.
    size = property(lambda self: self.cpu.size)
    padding = property(lambda self: self.cpu.padding)
    mean = property(lambda self: self.cpu.mean)
    std = property(lambda self: self.cpu.std)
    template = property(lambda self: self.cpu.template)
    weights = property(lambda self: self.cpu.weights)

    def batch_matrices(self, faces) -> np.ndarray:
        """The chip matrices the engine's batch is made of: the faces, then (flip) their mirror images."""
        matrices = [self.cpu.matrix(face) for face in faces]
        if self.flip:
            matrices += [align.mirror_matrix(matrix, self.cpu.size) for matrix in matrices]
        return np.stack(matrices)

    def align(self, image: np.ndarray, faces) -> np.ndarray:
        """Aligned, normalised (N, 3, size, size) float32 chips; the engine's input holds them too."""
        self._staged = None
        if not faces:
            return self.cpu.empty()
        align.check_image(image)
        matrices = self.batch_matrices(faces)
        if not self.engine.min_batch <= len(matrices) <= self.engine.max_batch:
            # More faces than one engine batch holds (or fewer than a fixed-batch DLA engine
            # takes): make the chips on the GPU and let embed() upload them in batches.
            return self.preprocessor.run(image, matrices[: len(faces)])
        chips = self.preprocessor.run(image, matrices, out=self.engine.device_input().device, keep=len(faces))
        self._staged = (chips, len(matrices))
        return chips

    def embed(self, engine, chips: np.ndarray, flip: bool) -> np.ndarray:
        """(N, D) raw embeddings; straight from the engine's input buffer when it holds ``chips``."""
        staged, self._staged = self._staged, None
        if staged is None or staged[0] is not chips or engine is not self.engine or flip != self.flip:
            return self.cpu.embed(engine, chips, flip)
        out = engine.run_device(staged[1])[0]
        if flip:
            return average_with_flip(out[: len(chips)], out[len(chips):])
        return out
