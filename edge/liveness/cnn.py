"""CNN cue: a small grey network reads the texture cue's chip and says print/screen or real.

The hand-made texture features catch almost nothing on cameras they were not
fitted on; a network trained on both liveness folders under camera shifts
separates better (README, "Liveness"). It reads the texture cue's own grey chip
(edge.liveness.texture.grey_chip: aligned on the five landmarks, area-shrunk
first, so every camera resolution gives the same scale), rounded to whole grey
levels as training cached it, then standardised per chip (mean 0, deviation 1)
so that gain and offset cannot drive it. Its one output is an attack logit.

The network is an ONNX file beside the liveness model, named with its SHA-256
in the model's ``cnn`` entry together with its tensor names: a runtime finding
another file, or other names, refuses it (ManifestMismatch) rather than
scoring with a network the threshold was not chosen for. It runs on ONNX
Runtime's CPU provider with one thread (about 0.3 ms a chip): small enough
that a Jetson needs no TensorRT engine for it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.engines.manifest import file_sha256
from edge.exc import ManifestMismatch
from edge.liveness import texture

FEATURES = "grey-chip-cnn-v1"  # the chip, its rounding and standardisation, one attack logit
INPUT, OUTPUT = "chip", "attack_logit"
CHIP_SIZE = texture.CHIP_SIZE
FILE_NAME = "liveness-cnn.onnx"


def face_chip(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """(64, 64) uint8 grey chip of the face with these landmarks in an RGB (or grey) image."""
    return chip_of(texture.grey_chip(image, landmarks))


def chip_of(grey_chip: np.ndarray) -> np.ndarray:
    """The texture cue's float chip rounded to whole grey levels, as the training cache stores it."""
    return np.clip(np.rint(grey_chip), 0, 255).astype(np.uint8)


def standardise(chips: np.ndarray) -> np.ndarray:
    """(n, 1, 64, 64) float32 network input from (n, 64, 64) chips: each chip to mean 0, deviation 1."""
    x = np.asarray(chips, dtype=np.float32)
    mean, deviation = x.mean(axis=(1, 2), keepdims=True), x.std(axis=(1, 2), keepdims=True) + 1e-3
    return ((x - mean) / deviation)[:, None]


class Network:
    """The cue's ONNX network, checked against the liveness model's entry."""

    def __init__(self, path: Path, entry: dict, threads: int = 1):
        from edge.engines.onnxrt import cpu_session

        path = Path(path)
        if not path.is_file():
            raise ManifestMismatch(f"the liveness model's cnn cue needs {path}, which is missing; train the model "
                                   "again with `edge-verify train liveness --cnn` (the file and the model go together)")
        if file_sha256(path) != entry.get("sha256"):
            raise ManifestMismatch(f"{path} is not the network the liveness model's cnn threshold was chosen for "
                                   "(SHA-256 differs); train again with `edge-verify train liveness --cnn`")
        self.session = cpu_session(path, threads)
        inputs = [(i.name, list(i.shape)[1:]) for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        if inputs != [(INPUT, [1, CHIP_SIZE, CHIP_SIZE])] or outputs != [OUTPUT]:
            raise ManifestMismatch(f"{path} takes {inputs} and gives {outputs}; the cnn cue feeds "
                                   f"{INPUT!r} [batch, 1, {CHIP_SIZE}, {CHIP_SIZE}] and reads {OUTPUT!r}")
        self.path = path

    def logits(self, chips: np.ndarray) -> np.ndarray:
        """Attack logits of (n, 64, 64) uint8 chips."""
        return self.session.run([OUTPUT], {INPUT: standardise(chips)})[0].reshape(-1)

    def attack_score(self, chip: np.ndarray) -> float:
        """The attack logit of one (64, 64) uint8 chip (higher: more like an attack)."""
        return float(self.logits(chip[None])[0])
