"""Photo in, faces and embeddings out: detect → choose the main face → align → embed.

This is the one place that joins the detector, the alignment and the embedding
engine, and the one rule for which face a photo or frame is about
(:func:`choose_main_face`), so the CLI, the benchmarks, calibration, training,
enrollment and the daemon all see exactly the same faces.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from edge.engines import load_engine
from edge.engines.manifest import check_input_contract
from edge.exc import NoFaceError
from edge.models import registry
from edge.verify.api import l2_normalize
from edge.vision.aligner import CpuAligner
from edge.vision.cuda_aligner import CudaAligner
from edge.vision.detector import Detector, Face, iou


def choose_main_face(faces: list[Face], shape, min_face_px: float = 0.0) -> Optional[Face]:
    """The face a kiosk (or an LFW pair) is about, or None.

    Faces whose box is under ``min_face_px`` on its shorter side are not candidates
    (the daemon does not judge far-away faces). Among the rest: of the faces at
    least half as large as the largest, the one nearest the centre of an image of
    ``shape`` (H, W, ...). Bystanders in the background are smaller; a large face
    at the edge is usually a passer-by.
    """
    if min_face_px > 0:
        faces = [face for face in faces if min(face.width, face.height) >= min_face_px]
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
    return None if best is None else faces[best]


@dataclass(frozen=True, eq=False)
class MainFace:
    """The main face of an image and its aligned chip: what gets embedded, scored and judged.

    ``chip`` is the normalised float32 (1, 3, S, S) input of the embedding model
    (and of the attributes model, which shares its chips).
    """

    face: Face
    chip: np.ndarray

    @property
    def box(self) -> tuple[float, float, float, float]:
        return self.face.box

    @property
    def landmarks(self) -> np.ndarray:
        return self.face.landmarks

    @property
    def score(self) -> float:
        """The detector's confidence."""
        return self.face.score

    @property
    def face_px(self) -> float:
        """The box's shorter side in pixels: the size the daemon's min_face_px and the enrollment gates judge."""
        return float(min(self.face.width, self.face.height))


@dataclass(frozen=True, eq=False)
class Scene:
    """What the detector saw in one image: every face, and the main one aligned.

    ``main`` is None when there is no face, or none at least ``min_face_px``.
    ``ms``: milliseconds spent detecting and aligning. ``followed``: the main face of the frame before
    was found again near its box and the rest of the frame was not searched (:class:`Follower`), so
    ``faces`` holds that face alone.
    """

    faces: list
    main: Optional[MainFace]
    ms: dict = field(default_factory=dict)
    followed: bool = False


@dataclass
class Described:
    """The main face found in one image (or none), its embedding, and stage times in ms."""

    faces: list
    embeddings: np.ndarray
    ms: dict = field(default_factory=dict)


class FacePipeline:
    """Detector + aligner + embedding engine, with the embedding's contract.

    ``detector`` is any edge.vision.detector.Detector; its landmark template is the
    alignment target. ``flip`` averages each face's embedding with that of its
    mirror image (about +0.3 LFW points for one more embedding per face).
    ``aligner`` makes the chips (edge.vision.aligner): the CPU one by default, the
    CUDA one when the embedding engine is TensorRT (see ``load``).
    """

    def __init__(self, detector: Detector, embedder, flip: bool = True, aligner=None):
        self.detector = detector
        self.embedder = embedder
        self.flip = flip
        manifest = embedder.manifest
        self.aligner = aligner or CpuAligner.from_manifest(manifest, detector.template, detector.template_weights)
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
        self.helper = None  # a spare thread the embedding may use (share_thread)

    @classmethod
    def load(cls, precision: str = "fp32", backend: str = "onnxruntime", threads: int | None = None,
             models_dir: Path | None = None, flip: bool = True, detector_precision: str = "fp32",
             detector_backend: str = "onnxruntime", embedding_path: Path | None = None,
             detector: str = registry.DETECTOR) -> "FacePipeline":
        """``embedding_path`` picks an embedding engine file; its manifest then says
        precision and backend, and ``precision``/``backend`` are not used. ``detector``
        names a detector in edge.models.registry.DETECTORS."""
        found = open_detector(detector, detector_precision, detector_backend, threads, models_dir)
        path = embedding_path or registry.require_engine(registry.EMBEDDING, precision, backend, models_dir)
        embedder = load_engine(path, threads=threads)
        # The pipeline feeds RGB chips; refuse an engine built for anything else.
        check_input_contract(embedder.manifest, {"name": registry.EMBEDDING, "colour": "RGB", "layout": "NCHW"})
        return cls(found, embedder, flip=flip, aligner=aligner_for(embedder, found, flip))

    def detect(self, image: np.ndarray, smallest: float = 0.0) -> list[Face]:
        return self.detector.detect(image, smallest)

    def align(self, image: np.ndarray, faces) -> np.ndarray:
        """Aligned, normalised (N, 3, size, size) float32 chips, one per face."""
        return self.aligner.align(image, faces)

    def look(self, image: np.ndarray, min_face_px: float = 0.0) -> Scene:
        """Detect the faces of an RGB image, choose the main one (:func:`choose_main_face`) and align it.
        Faces much smaller than ``min_face_px`` are not searched for (they could not be the main one)."""
        started = time.perf_counter()
        return self._scene(image, self.detect(image, min_face_px), min_face_px, started)

    def follow(self, image: np.ndarray, face: Face, min_face_px: float = 0.0) -> Optional[Scene]:
        """This image's scene when ``face``, the main face of the frame before, is found again near its
        box (Detector.follow) at least ``min_face_px`` large, aligned as :meth:`look` aligns; None when it
        is not, or the detector cannot follow: then the whole image must be searched."""
        started = time.perf_counter()
        found = self.detector.follow(image, face.box)
        if not found:
            return None
        scene = self._scene(image, list(found), min_face_px, started, followed=True)
        return scene if scene.main is not None else None

    def _scene(self, image: np.ndarray, faces: list, min_face_px: float, started: float,
               followed: bool = False) -> Scene:
        """The scene of ``faces``, found since ``started`` (time.perf_counter): the main one chosen and aligned."""
        detected = time.perf_counter()
        face = choose_main_face(faces, image.shape, min_face_px)
        main = None if face is None else MainFace(face, self.align(image, [face]))
        aligned = time.perf_counter()
        return Scene(faces, main, {"detect": (detected - started) * 1e3, "align": (aligned - detected) * 1e3},
                     followed=followed)

    def main_face(self, image: np.ndarray, min_face_px: float = 0.0) -> Optional[MainFace]:
        """The main face of an RGB image with its aligned chip, or None when there is none."""
        return self.look(image, min_face_px).main

    def share_thread(self, helper) -> list[str]:
        """Give the pipeline a spare thread (a concurrent.futures Executor with one worker) for part of
        each frame: the detector's (Detector.share_thread) and, in ``embed(chips, share=True)``, the
        mirror images. Only engines on ONNX Runtime use it: a TensorRT engine's CUDA context is current
        only on the thread that loaded it. Returns the stages that took it; None takes it back. The
        results are the same numbers as without it (tests/test_frame_helper.py)."""
        takers = ["detector"] if self.detector.share_thread(helper) else []
        if self.manifest.get("backend") == "onnxruntime" and isinstance(self.aligner, CpuAligner):
            self.helper = helper
            takers.append("embedding")
        return takers

    def embed(self, chips: np.ndarray, share: bool = False) -> np.ndarray:
        """(N, D) embeddings of aligned chips (flip-averaged when enabled). ``share``: run the mirror
        images on the spare thread (share_thread), which must then be idle."""
        if len(chips) == 0:
            return np.zeros((0, int(self.manifest["outputs"][0]["shape"][-1])), dtype=np.float32)
        helper = self.helper if share else None
        if helper is not None:
            embeddings = self.aligner.embed(self.embedder, chips, self.flip, helper=helper)
        else:
            embeddings = self.aligner.embed(self.embedder, chips, self.flip)
        return l2_normalize(embeddings) if self.normalize else embeddings

    def describe(self, image: np.ndarray) -> Described:
        """The main face's embedding (none when no face is found), with stage times."""
        scene = self.look(image)
        t2 = time.perf_counter()
        if scene.main is None:
            faces, embeddings = [], self.embed(np.zeros((0, 3, self.size, self.size), dtype=np.float32))
        else:
            faces, embeddings = [scene.main.face], self.embed(scene.main.chip)
        embed_ms = (time.perf_counter() - t2) * 1e3
        ms = {**scene.ms, "embed": embed_ms, "total": scene.ms["detect"] + scene.ms["align"] + embed_ms}
        return Described(faces, embeddings, ms)

    def embed_primary(self, image: np.ndarray, source: str = "image") -> np.ndarray:
        """The main face's embedding, or NoFaceError naming the source."""
        described = self.describe(image)
        if not described.faces:
            raise NoFaceError(f"{source}: no face found")
        return described.embeddings[0]


SEARCH_EVERY = 15  # frames: the whole frame searched at least once a second at 15 fps (Follower)
# One face found twice in one frame, followed and searched, has boxes overlapping by far more than this;
# two faces side by side do not overlap at all (Follower.confirm). On the LFW door clips' 38,959 followed
# frames (benchmarks/door_frames.py --search-every 15) the followed face and the search's main face
# overlapped by 0.83 at the 5th percentile and 0.95 at the median; 3.3 % overlapped by less than 0.5,
# nearly all of them (1,224 of 1,297) by 0: another face.
SAME_FACE_IOU = 0.5


class Follower:
    """The main face of each frame of one camera, searching the whole frame only every ``search_every``
    frames while a face is followed.

    Why: a full search runs PNet over an image pyramid of the whole frame, 12-15 ms of a 640x480
    frame on one core of this 2-core machine, most of the detector's work and the largest step on
    the daemon's own thread. The person at the door moves a few pixels between two frames, and
    MTCNN's last two stages find them again from the last box in about 2 ms (Detector.follow). So
    while the main face of the frame before is found again, near its box and still ``min_face_px``
    large, it is this frame's main face. The whole frame is searched at once when no face was
    followed or the followed face is lost; and every ``search_every`` frames it is searched for
    anyone else, after the frame is judged (:meth:`search_if_due`): the daemon does that search
    once the door has its decision, so the person at the door does not wait for it, and the next
    frame follows whichever face that search makes the main one (a newcomer nearer the centre, see
    :func:`choose_main_face`). What that costs: a second person beside a followed face is seen within
    ``search_every`` + 1 frames (about 1 s at 15 fps), not at once. ``search_every`` 1 searches
    every frame before judging it, as :meth:`FacePipeline.look` alone does.
    """

    def __init__(self, pipeline: FacePipeline, min_face_px: float = 0.0, search_every: int = SEARCH_EVERY) -> None:
        if search_every < 1:
            raise ValueError(f"search_every must be 1 or more frames, got {search_every}")
        self.pipeline = pipeline
        self.min_face_px = float(min_face_px)
        self.search_every = int(search_every)
        self.last: Optional[Face] = None
        self.since_search = 0  # frames looked at since the whole frame was last searched
        self.due: Optional[np.ndarray] = None  # a followed frame whose search is due (search_if_due)

    def look(self, image: np.ndarray, search: bool = False) -> Scene:
        """The scene of the next frame (RGB): its followed face, or the whole frame searched; ``search``
        searches it whatever the schedule."""
        self.due = None
        scene = None
        if self.last is not None and self.search_every > 1 and not search:
            scene = self.pipeline.follow(image, self.last, self.min_face_px)
        if scene is None:
            scene = self.pipeline.look(image, self.min_face_px)
            self._searched(scene)
            return scene
        self.since_search += 1
        if self.since_search >= self.search_every:
            self.due = image
        self.last = None if scene.main is None else scene.main.face
        return scene

    def search_if_due(self) -> bool:
        """Search the whole of the last frame looked at when its search is due (every ``search_every``
        frames while following), and follow its main face from the next frame on; True when it did."""
        if self.due is None:
            return False
        self._searched(self.pipeline.look(self.due, self.min_face_px))
        return True

    def confirm(self, image: np.ndarray, face: Face) -> bool:
        """Search the whole of ``image`` (RGB), whose followed main face is ``face``, before the door opens
        for that face: True when the search's main face is the same face (their boxes overlapping by IoU
        ``SAME_FACE_IOU`` or more), and following goes on as scheduled (a search due on this frame is
        this one); False when another face is now the main one, and the next frame follows that face.

        Why: following keeps the face it started with until the next scheduled search, also when
        someone else has stepped nearer the centre meanwhile, the face a search would judge
        (:func:`choose_main_face`). Measured on the LFW door clips (benchmarks/door_measure.py), that
        let an enrolled person beside a stranger at the centre open the door at the 3rd frame, where
        searching every frame let nobody in. The daemon asks this only on a frame that would open the
        door (a whole-frame search, 12-15 ms, once per unlock), so the door opens for the face a search
        of that very frame makes the main one, as when every frame is searched."""
        scene = self.pipeline.look(image, self.min_face_px)
        searched = None if scene.main is None else scene.main.face
        same = searched is not None and iou(searched.box, face.box) >= SAME_FACE_IOU
        if not same or self.due is not None:  # this frame's scheduled search (search_if_due), done now
            self._searched(scene)
        return same

    def _searched(self, scene: Scene) -> None:
        """The whole frame was searched: its main face is followed from the next frame on, and the schedule
        of searches starts again."""
        self.last = None if scene.main is None else scene.main.face
        self.due, self.since_search = None, 0

    def forget(self) -> None:
        """Search the whole of the next frame (after a gap in the frames, the face may be anywhere)."""
        self.last = None
        self.due = None


def open_detector(name: str = registry.DETECTOR, precision: str = "fp32", backend: str = "onnxruntime",
                  threads: int | None = None, models_dir: Path | None = None) -> Detector:
    """The registry's detector ``name`` over its engines (each must exist; the error says which command makes it)."""
    kind = registry.detector_class(name)
    engines = [load_engine(registry.require_engine(net, precision, backend, models_dir), threads=threads)
               for net in kind.nets]
    return kind(*engines)


def aligner_for(embedder, detector: Detector, flip: bool):
    """The aligner for this embedding engine: a TensorRT engine gets the CUDA aligner, which
    writes the chips into the engine's input buffer; every other backend the CPU one."""
    if embedder.manifest.get("backend") != "tensorrt":
        return CpuAligner.from_manifest(embedder.manifest, detector.template, detector.template_weights)
    return CudaAligner(embedder, detector.template, detector.template_weights, flip=flip)
