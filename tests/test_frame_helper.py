"""The frame's helper thread (edge.daemon.loop) changes how long a frame takes, never what it finds.

The detector runs PNet's first pyramid level and half of RNet's crops on the helper; the
embedding runs the mirror image there. Each is compared with the one-thread result to the bit,
on the committed LFW photos and on a camera-sized frame holding several faces (many RNet crops).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from edge.pipeline import FacePipeline
from edge.vision.image import load_image
from edge.vision.mtcnn import MtcnnDetector


class Recording(ThreadPoolExecutor):
    """A one-worker executor that remembers what it was given."""

    def __init__(self):
        super().__init__(max_workers=1)
        self.given = []

    def submit(self, fn, *args, **kwargs):
        self.given.append(getattr(fn, "__qualname__", repr(fn)))
        return super().submit(fn, *args, **kwargs)


@pytest.fixture()
def helper(pipeline):
    executor = Recording()
    yield executor
    pipeline.share_thread(None)  # the pipeline is shared by the whole session
    executor.shutdown()


def images(face_images) -> list:
    photos = [load_image(path) for paths in face_images.values() for path in paths[:2]]
    frame = np.full((480, 640, 3), 90, np.uint8)  # four faces side by side, as a camera might see a queue
    for index, photo in enumerate(photos[:4]):
        frame[140:340, 10 + 155 * index:160 + 155 * index] = photo[25:225, 50:200]  # 250 px LFW photos
    return photos + [frame]


def same_faces(one, other) -> bool:
    return len(one) == len(other) and all(
        a.box == b.box and a.score == b.score and np.array_equal(a.landmarks, b.landmarks) for a, b in zip(one, other))


def test_detection_with_the_helper_finds_exactly_the_faces_found_alone(pipeline, face_images, helper):
    pictures = images(face_images)
    alone = [pipeline.detector.detect(picture) for picture in pictures]
    assert "detector" in pipeline.share_thread(helper)
    helped = [pipeline.detector.detect(picture) for picture in pictures]
    assert all(same_faces(a, b) for a, b in zip(alone, helped))
    assert sum(len(faces) for faces in alone) >= len(pictures)
    # both kinds of work went to the helper: the first pyramid level and half of a large RNet batch
    assert helper.given.count("MtcnnDetector.scan") == len(pictures)
    assert "_Stage.run" in helper.given


def test_the_embedding_with_the_mirror_image_on_the_helper_is_the_same_numbers(pipeline, face_images, helper):
    chip = pipeline.main_face(load_image(next(iter(face_images.values()))[0])).chip
    alone = pipeline.embed(chip)
    pipeline.share_thread(helper)
    assert np.array_equal(pipeline.embed(chip, share=True), alone)
    assert np.array_equal(pipeline.embed(chip), alone) and len(helper.given) == 1  # share=False leaves it alone


class OnTensorRT:
    """A real engine presented as a TensorRT one (its CUDA context would be current on one thread only)."""

    def __init__(self, engine):
        self.engine = engine
        self.manifest = {**engine.manifest, "backend": "tensorrt"}

    def run(self, *inputs):
        return self.engine.run(*inputs)


def test_engines_on_tensorrt_never_run_on_the_helper(pipeline, helper):
    detector = pipeline.detector
    on_gpu = FacePipeline(MtcnnDetector(*(OnTensorRT(stage.engine) for stage in (detector.pnet, detector.rnet,
                                                                                  detector.onet))),
                          OnTensorRT(pipeline.embedder))
    assert on_gpu.share_thread(helper) == [] and on_gpu.detector.helper is None and on_gpu.helper is None


def test_taking_the_helper_back(pipeline, face_images, helper):
    assert pipeline.share_thread(helper) == ["detector", "embedding"]
    pipeline.share_thread(None)
    assert pipeline.detector.helper is None and pipeline.helper is None
    pipeline.detector.detect(load_image(next(iter(face_images.values()))[0]))
    assert helper.given == []
