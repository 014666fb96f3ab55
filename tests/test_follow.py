"""Following the main face between full searches (edge.pipeline.Follower, MtcnnDetector.follow).

Real weights on the committed LFW photos, moved about inside a camera-sized frame as a person
at the door moves between two frames. A followed face must be the face a full search finds, a
face that is gone must not be followed, and the whole frame must still be searched on schedule.
"""
from __future__ import annotations

import numpy as np
import pytest

from edge.pipeline import FacePipeline, Follower, Scene
from edge.vision.image import load_image


def placed(photo: np.ndarray, left: int, top: int, grey: int = 90) -> np.ndarray:
    """A 640x480 frame with the 250 px photo's middle at (left, top)."""
    frame = np.full((480, 640, 3), grey, np.uint8)
    crop = photo[25:225, 25:225]
    frame[top:top + 200, left:left + 200] = crop
    return frame


def eye_distance(face) -> float:
    return float(np.linalg.norm(face.landmarks[1] - face.landmarks[0]))


@pytest.fixture(scope="module")
def photos(face_images) -> list:
    return [load_image(paths[0]) for paths in face_images.values()]


def test_a_face_that_moved_a_few_pixels_is_followed_where_a_full_search_puts_it(pipeline, face_images):
    """As close to the full search's face as two full searches of the same picture moved by those
    pixels are to each other (measured: a mean point 2.3 % vs 2.1 % of the eye distance apart)."""
    followed_gaps, search_gaps = [], []
    for path in (path for paths in face_images.values() for path in paths):
        photo = load_image(path)
        before = pipeline.detect(placed(photo, 200, 120), 80)
        after_frame = placed(photo, 206, 116)
        searched = pipeline.detect(after_frame, 80)
        if not before or not searched:
            continue
        followed = pipeline.detector.follow(after_frame, before[0].box)
        assert len(followed) == 1 and followed[0].score > 0.7
        scale = eye_distance(searched[0])
        followed_gaps.append(np.linalg.norm(followed[0].landmarks - searched[0].landmarks, axis=1).mean() / scale)
        moved_back = before[0].landmarks + np.array([6, -4], np.float32)
        search_gaps.append(np.linalg.norm(moved_back - searched[0].landmarks, axis=1).mean() / scale)
    assert len(followed_gaps) >= 24
    assert np.median(followed_gaps) <= 1.5 * np.median(search_gaps), (np.median(followed_gaps), np.median(search_gaps))
    assert max(followed_gaps) < 0.2


def test_a_face_that_left_is_not_followed(pipeline, photos):
    before = pipeline.detect(placed(photos[0], 200, 120), 80)
    assert before
    empty = np.full((480, 640, 3), 90, np.uint8)
    assert pipeline.detector.follow(empty, before[0].box) == []
    # nor one far from where it was: a follow only looks near the last box
    moved_away = placed(photos[0], 420, 260)
    assert pipeline.detector.follow(moved_away, before[0].box) == []


class Counting:
    """The real pipeline, counting full searches and follows."""

    def __init__(self, pipeline: FacePipeline):
        self.pipeline = pipeline
        self.calls = []

    def look(self, image, min_face_px=0.0) -> Scene:
        self.calls.append("search")
        return self.pipeline.look(image, min_face_px)

    def follow(self, image, face, min_face_px=0.0):
        self.calls.append("follow")
        return self.pipeline.follow(image, face, min_face_px)


def test_the_whole_frame_is_searched_every_n_frames_and_when_the_face_is_lost(pipeline, photos):
    counting = Counting(pipeline)
    follower = Follower(counting, min_face_px=80, search_every=3)

    def judge(frame) -> Scene:  # as the daemon does: look, judge, then the search when one is due
        scene = follower.look(frame)
        follower.search_if_due()
        return scene

    frames = [placed(photos[1], 200 + 3 * i, 120) for i in range(7)]
    scenes = [judge(frame) for frame in frames]
    assert counting.calls == ["search", "follow", "follow", "follow", "search", "follow", "follow", "follow", "search"]
    # the frames whose search was due were judged on their followed face: the search came after
    assert [scene.followed for scene in scenes] == [False] + [True] * 6
    assert all(scene.main is not None for scene in scenes)
    # a followed scene holds the followed face alone, aligned like a searched one
    assert len(scenes[1].faces) == 1 and scenes[1].main.chip.shape == scenes[0].main.chip.shape

    counting.calls.clear()
    empty = np.full((480, 640, 3), 90, np.uint8)
    assert judge(frames[0]).followed
    assert judge(empty).main is None  # lost: followed in vain, then searched at once
    assert counting.calls == ["follow", "follow", "search"]
    counting.calls.clear()
    judge(frames[0])  # nothing to follow: searched
    follower.forget()  # a gap in the frames
    judge(frames[0])
    assert counting.calls == ["search", "search"]
    assert not follower.search_if_due()  # nothing due twice
    counting.calls.clear()
    assert not follower.look(frames[1], search=True).followed  # searched whatever the schedule (a held door)
    assert follower.look(frames[1]).followed
    assert counting.calls == ["search", "follow"]


def test_a_newcomer_nearer_the_centre_becomes_the_main_face_at_the_next_search(pipeline, photos):
    follower = Follower(pipeline, min_face_px=80, search_every=3)
    alone = placed(photos[5], 20, 140)  # at the left edge
    both = alone.copy()
    both[140:340, 220:420] = photos[6][25:225, 25:225]  # someone else steps in, in the middle
    first = follower.look(alone).main
    assert first is not None and first.box[0] < 200
    mains = []
    for _ in range(5):
        mains.append(follower.look(both).main)
        follower.search_if_due()
    # followed while the search was not due; the frame after the search follows the newcomer
    assert [main.box[0] < 200 for main in mains] == [True, True, True, False, False]


def test_confirm_searches_the_frame_and_switches_to_a_newcomer_nearer_the_centre(pipeline, photos):
    """Follower.confirm, what the daemon asks before it opens the door for a followed face: the frame's own
    search must make that face its main one. When it does, the schedule goes on (a search due on that frame is
    the one done); when a newcomer is nearer the centre, the answer is no and the next frame follows the newcomer."""
    counting = Counting(pipeline)
    follower = Follower(counting, min_face_px=80, search_every=3)
    alone = placed(photos[5], 20, 140)  # at the left edge
    both = alone.copy()
    both[140:340, 220:420] = photos[6][25:225, 25:225]  # someone else steps in, in the middle
    follower.look(alone)
    followed = follower.look(alone)
    assert followed.followed
    assert follower.confirm(alone, followed.main.face)  # alone in the frame: the search's main face too
    assert follower.since_search == 1 and follower.last is followed.main.face  # following goes on as scheduled
    follower.look(alone)
    due = follower.look(alone)
    assert due.followed and follower.due is not None  # the 3rd frame since the search: its search is due
    assert follower.confirm(alone, due.main.face)
    assert not follower.search_if_due() and follower.since_search == 0  # that search was this one
    assert follower.last is not due.main.face  # following goes on from the search's face, as after search_if_due
    beside = follower.look(both)
    assert beside.followed and beside.main.box[0] < 200  # still the face at the edge
    assert not follower.confirm(both, beside.main.face)
    assert counting.calls == ["search", "follow", "search", "follow", "follow", "search", "follow", "search"]
    after = follower.look(both)
    assert after.followed and after.main.box[0] > 200  # the newcomer in the middle, followed from the search
    assert not follower.search_if_due()  # the confirming search restarted the schedule
    empty = np.full((480, 640, 3), 90, np.uint8)
    assert not follower.confirm(empty, after.main.face)  # nobody left to confirm
    assert follower.last is None


def test_a_followed_face_smaller_than_min_face_px_sends_the_follower_back_to_searching(pipeline, photos):
    counting = Counting(pipeline)
    follower = Follower(counting, min_face_px=80, search_every=15)
    frame = placed(photos[2], 200, 120)
    first = follower.look(frame).main
    assert first is not None
    assert pipeline.follow(frame, first.face, min_face_px=80) is not None  # it could be followed
    follower.min_face_px = first.face_px + 1  # but it is now just under the size judged
    scene = follower.look(frame)
    assert scene.main is None and not scene.followed
    assert counting.calls == ["search", "follow", "search"]


def test_search_every_1_searches_every_frame_before_judging_it(pipeline, photos):
    counting = Counting(pipeline)
    follower = Follower(counting, search_every=1)
    for i in range(3):
        assert not follower.look(placed(photos[3], 200 + i, 120)).followed
        assert not follower.search_if_due()
    assert counting.calls == ["search"] * 3
    with pytest.raises(ValueError, match="search_every"):
        Follower(counting, search_every=0)


def test_the_benchmarks_followed_faces_are_the_daemons(pipeline, photos, tmp_path):
    """edge_build's follow_all (the liveness benchmarks' frames as the daemon sees them): searching every
    frame gives exactly detect_all's faces; following finds the face in every frame of the sequence."""
    import cv2

    from edge_build.training.liveness_data import Frame, detect_all, follow_all

    frames = []
    for order in range(6):
        path = tmp_path / f"s_{order}.png"
        cv2.imwrite(str(path), cv2.cvtColor(placed(photos[4], 180 + 4 * order, 120 - 2 * order), cv2.COLOR_RGB2BGR))
        frames.append(Frame(path, "fixture", "g", True, "none", "s", float(order)))
    frames.reverse()  # each sequence is followed in time order, whatever the list's order
    searched = detect_all(frames, tmp_path / "cache", pipeline=pipeline, progress=False)
    every = follow_all(frames, tmp_path / "cache", 1, pipeline=pipeline, progress=False)
    assert searched.found.all()
    assert np.array_equal(every.landmarks, searched.landmarks) and np.array_equal(every.boxes, searched.boxes)
    followed = follow_all(frames, tmp_path / "cache", 15, pipeline=pipeline, progress=False)
    assert followed.found.all()
    assert not np.array_equal(followed.landmarks, searched.landmarks)  # followed, not searched (and cached apart)
    scale = np.linalg.norm(searched.landmarks[:, 1] - searched.landmarks[:, 0], axis=1)
    assert (np.abs(followed.landmarks - searched.landmarks).max(axis=(1, 2)) < 0.2 * scale).all()
