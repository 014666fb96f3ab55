"""Camera sources: real clips written with cv2.VideoWriter and read back through cv2.VideoCapture."""
from __future__ import annotations

import os
import socket
import time

import cv2
import numpy as np
import pytest

from edge.exc import ConfigError, SourceError
from edge.sources import FILE_RECONNECT, FrameStatus, Reconnect, open_source, parse_uri
from edge.sources.opencv import VideoSource, opencv_has_gstreamer
from edge.sources.uri import SourceSpec, csi_pipeline

SIZE = (160, 120)  # width, height of the test clips
MAX_READS = 200  # every loop here is bounded: a source that never ends must fail the test, not hang it


def _photos(face_images, count=8):
    paths = [path for person in sorted(face_images) for path in face_images[person][:1]][:count]
    return [cv2.resize(cv2.imread(str(path)), SIZE) for path in paths]


def _write_clip(path, images, fourcc="MJPG", fps=10.0):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, SIZE)
    assert writer.isOpened(), f"OpenCV cannot write {fourcc} here"
    for image in images:
        writer.write(image)
    writer.release()
    return path


@pytest.fixture
def photos(face_images):
    return _photos(face_images) * 2  # 16 frames


@pytest.fixture
def clip(tmp_path, photos):
    return _write_clip(tmp_path / "clip.avi", photos)


def _read_all(source):
    frames = []
    for _ in range(MAX_READS):
        frame = source.read()
        frames.append(frame)
        if frame.status is FrameStatus.END:
            return frames
    raise AssertionError(f"{source!r} did not end within {MAX_READS} reads")


@pytest.mark.parametrize("fourcc,suffix", [("MJPG", ".avi"), ("mp4v", ".mp4")])
def test_clip_gives_every_frame_in_order_then_end(tmp_path, photos, fourcc, suffix):
    path = _write_clip(tmp_path / f"clip{suffix}", photos, fourcc)
    with open_source(f"file://{path}") as source:
        frames = _read_all(source)
        again = source.read()
    good = [frame for frame in frames if frame.status is FrameStatus.OK]
    assert len(good) == len(photos) and frames[-1].status is FrameStatus.END
    assert [frame.index for frame in good] == list(range(len(photos)))
    assert all(a.timestamp <= b.timestamp for a, b in zip(frames, frames[1:]))
    for frame, photo in zip(good, photos):
        assert frame.image.dtype == np.uint8 and frame.image.shape == (SIZE[1], SIZE[0], 3)
        # Lossy codecs: close to the photo written at this position, far from the others.
        assert np.abs(frame.image.astype(int) - photo).mean() < 12
    assert np.abs(good[0].image.astype(int) - photos[1]).mean() > 20
    assert again.status is FrameStatus.END and source.reconnects == 0


def test_relative_and_bare_paths(tmp_path, clip, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "stills").mkdir()
    cv2.imwrite(str(tmp_path / "stills" / "a.png"), np.zeros((8, 8, 3), np.uint8))
    assert parse_uri("file://clip.avi").target == "clip.avi"
    assert parse_uri("clip.avi").scheme == "file"
    assert parse_uri("stills").scheme == "dir"
    for uri in ("file://clip.avi", "clip.avi"):
        with open_source(uri) as source:
            assert source.read().status is FrameStatus.OK
    with open_source("stills") as source:
        assert source.read().status is FrameStatus.OK


def test_truncated_clip_reconnects_then_reports_a_clear_error(tmp_path, clip, photos):
    data = clip.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    with open_source(f"file://{cut}") as source:
        frames = _read_all(source)  # never raises
    statuses = [frame.status for frame in frames]
    ok = statuses.count(FrameStatus.OK)
    errors = [frame for frame in frames if frame.status is FrameStatus.ERROR]
    assert 0 < ok < len(photos)
    assert source.reconnects == FILE_RECONNECT.max_attempts == 3
    assert len(errors) == source.reconnects + 1  # one per failed attempt, then the final one
    assert all("truncated or corrupt" in frame.detail for frame in errors)
    assert "reconnect attempt 1 of 3" in errors[0].detail
    assert "gave up after 3 reconnect attempts" in errors[-1].detail
    assert source.failure == errors[-1].detail
    assert statuses[-1] is FrameStatus.END and "gave up" in frames[-1].detail


def test_truncated_clip_without_reconnect_fails_on_first_bad_read(tmp_path, clip):
    data = clip.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    with open_source(cut, reconnect=False) as source:
        frames = _read_all(source)
    errors = [frame for frame in frames if frame.status is FrameStatus.ERROR]
    assert len(errors) == 1 and source.reconnects == 0
    assert "gave up after 0 reconnect attempts" in errors[0].detail


def test_cut_mp4_cannot_be_opened_and_says_why(tmp_path, photos):
    path = _write_clip(tmp_path / "clip.mp4", photos, "mp4v")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(path.read_bytes()[:-4000])  # the index ('moov') is written last
    with pytest.raises(SourceError, match="cannot open .*cut.mp4 as a video"):
        open_source(cut)


def test_missing_and_garbage_files(tmp_path):
    with pytest.raises(SourceError, match="no such video file"):
        open_source(f"file://{tmp_path}/nope.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(SourceError, match="cannot open"):
        open_source(junk)


def test_black_frames_pass_through_as_ok(tmp_path):
    black = [np.zeros((SIZE[1], SIZE[0], 3), np.uint8)] * 5
    path = _write_clip(tmp_path / "black.avi", black)
    with open_source(path) as source:
        frames = _read_all(source)
    good = [frame for frame in frames if frame.ok]
    assert len(good) == 5 and all(frame.image.max() <= 8 for frame in good)


def test_folder_of_stills_reports_the_corrupt_one_and_goes_on(tmp_path, face_images):
    folder = tmp_path / "stills"
    folder.mkdir()
    images = _photos(face_images, 3)
    cv2.imwrite(str(folder / "01.jpg"), images[0])
    (folder / "02_corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg" + os.urandom(200))
    cv2.imwrite(str(folder / "03.png"), images[1])
    (folder / "04_empty.jpg").write_bytes(b"")
    cv2.imwrite(str(folder / "05.JPG"), images[2])
    (folder / "notes.txt").write_text("not an image, not listed")
    with open_source(f"dir://{folder}") as source:
        frames = _read_all(source)
    assert [frame.status for frame in frames] == [
        FrameStatus.OK, FrameStatus.ERROR, FrameStatus.OK, FrameStatus.ERROR, FrameStatus.OK, FrameStatus.END,
    ]
    assert [frame.index for frame in frames[:5]] == [0, 1, 2, 3, 4]
    assert "02_corrupt.jpg" in frames[1].detail and "not a decodable image" in frames[1].detail
    assert "04_empty.jpg" in frames[3].detail and "empty" in frames[3].detail
    assert np.array_equal(frames[2].image, cv2.imread(str(folder / "03.png")))
    assert frames[0].image.shape == (SIZE[1], SIZE[0], 3)


def test_empty_folder_is_refused(tmp_path):
    with pytest.raises(SourceError, match="no images in"):
        open_source(f"dir://{tmp_path}")
    with pytest.raises(SourceError, match="no such folder"):
        open_source(f"dir://{tmp_path}/absent")


@pytest.mark.skipif(opencv_has_gstreamer(), reason="this OpenCV has GStreamer; the no-GStreamer message cannot show")
def test_csi_without_gstreamer_says_what_to_install():
    with pytest.raises(SourceError) as caught:
        open_source("csi://0")
    message = str(caught.value)
    assert "GStreamer" in message and "python3-opencv" in message and "JetPack" in message


def test_gstreamer_detection_reads_the_build_information():
    assert opencv_has_gstreamer("  Video I/O:\n    GStreamer:                   YES (1.16.3)\n")
    assert not opencv_has_gstreamer("  Video I/O:\n    GStreamer:                   NO\n")
    assert not opencv_has_gstreamer("nothing about it")


def test_uri_parsing():
    spec = parse_uri("csi://1?width=640&height=480&fps=15")
    assert (spec.scheme, spec.target, spec.options["width"], spec.options["flip"]) == ("csi", "1", 640, 0)
    assert spec.live
    assert "sensor-id=1" in csi_pipeline(1, 640, 480, 15) and "appsink" in csi_pipeline(1, 640, 480, 15)
    assert parse_uri("v4l2://0").target == "/dev/video0"
    assert parse_uri("v4l2:///dev/video2?fourcc=MJPG").options == {"fourcc": "MJPG"}
    assert parse_uri("rtsp://cam.local:554/s?x=1").target == "rtsp://cam.local:554/s?x=1"
    assert not parse_uri("file:///a/b.mp4").live and parse_uri("file:///a/b.mp4").target == "/a/b.mp4"
    for bad, why in [
        ("http://x/y.mjpg", "scheme must be one of"),
        ("csi://front", "sensor number"),
        ("csi://0?zoom=2", "unknown option"),
        ("csi://0?width=wide", "whole number"),
        ("v4l2://camera", "v4l2:// takes a device"),
        ("", "empty"),
    ]:
        with pytest.raises(SourceError, match=why):
            parse_uri(bad)


def test_missing_v4l2_device_is_a_clear_error():
    with pytest.raises(SourceError, match="no such camera device /dev/video97"):
        open_source("v4l2:///dev/video97")


def test_unreachable_rtsp_camera_is_a_clear_error():
    with socket.socket() as probe:  # a local port that nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(SourceError, match="cannot connect"):
        open_source(f"rtsp://127.0.0.1:{port}/stream", timeout=1.0)


def _live(clip, policy, timeout=2.0):
    """A live source over a real stream that ends: a camera whose stream drops after the clip."""
    spec = SourceSpec(uri="rtsp://camera.test/stream", scheme="rtsp", target=str(clip))
    return VideoSource(spec, timeout=timeout, reconnect=policy)


def test_lost_live_stream_reconnects_and_frames_resume(clip, photos):
    with _live(clip, Reconnect(initial_s=0.01, max_delay_s=0.01)) as source:
        first = [source.read() for _ in photos]
        lost = source.read()
        resumed = source.read()
    assert all(frame.ok for frame in first)
    assert lost.status is FrameStatus.ERROR and "camera stream lost" in lost.detail
    assert "reconnect attempt 1 in" in lost.detail
    assert resumed.ok and resumed.index == len(photos) and source.reconnects == 1
    assert np.abs(resumed.image.astype(int) - photos[0]).mean() < 12  # a reopened stream starts afresh


def test_reads_return_timeout_while_waiting_to_reconnect(clip, photos):
    with _live(clip, Reconnect(initial_s=0.3, max_delay_s=0.3), timeout=0.05) as source:
        for _ in photos:
            assert source.read().ok
        assert source.read().status is FrameStatus.ERROR
        waits = []
        for _ in range(MAX_READS):
            frame = source.read()
            if frame.ok:
                break
            waits.append(frame)
    assert waits and all(frame.status is FrameStatus.TIMEOUT for frame in waits)
    assert "next reconnect attempt in" in waits[0].detail
    assert frame.ok and source.reconnects == 1


def test_live_source_gives_up_after_max_attempts(tmp_path, photos):
    path = _write_clip(tmp_path / "gone.avi", photos[:3])
    with _live(path, Reconnect(initial_s=0.01, max_delay_s=0.01, max_attempts=2)) as source:
        assert all(source.read().ok for _ in range(3))
        path.unlink()  # the camera is gone for good
        frames = _read_all(source)
    assert [frame.status for frame in frames] == [FrameStatus.ERROR] * 3 + [FrameStatus.END]
    assert "reopening failed" in frames[1].detail
    assert "gave up after 2 reconnect attempts" in frames[2].detail
    assert source.reconnects == 2 and source.failure == frames[2].detail


def test_backoff_doubles_up_to_the_cap():
    policy = Reconnect(initial_s=0.5, factor=2.0, max_delay_s=4.0, max_attempts=None)
    assert [policy.delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert policy.allows(10**6) and not Reconnect(max_attempts=2).allows(3)
    for bad in (dict(initial_s=-1), dict(factor=0.5), dict(max_attempts=-1), dict(max_delay_s=float("nan"))):
        with pytest.raises(ConfigError):
            Reconnect(**bad)


def test_rate_paces_playback(clip, tmp_path):
    with open_source(clip, rate=50) as source:
        started = time.monotonic()
        for _ in range(6):
            assert source.read().ok
        elapsed = time.monotonic() - started
    assert elapsed >= 5 / 50 * 0.95  # frame 5 may not come before 5/50 s
    with pytest.raises(SourceError, match="no frame rate of their own"):
        open_source(f"dir://{tmp_path}", rate="realtime")
    with pytest.raises(ConfigError):
        open_source(clip, rate=-3)
    with open_source(clip, rate="realtime") as source:
        assert source.fps == pytest.approx(10.0)
    spec = SourceSpec(uri="rtsp://camera.test/stream", scheme="rtsp", target=str(clip))
    with pytest.raises(SourceError, match="a camera sets its own pace"):
        VideoSource(spec, timeout=1.0, reconnect=Reconnect(), rate=10)


def test_close_is_idempotent_and_later_reads_say_closed(clip):
    source = open_source(clip)
    with source:
        assert source.read().ok
    source.close()
    frame = source.read()
    assert source.closed and frame.status is FrameStatus.ERROR and "closed" in frame.detail


def test_frames_iterator_stops_at_end(clip, photos):
    with open_source(clip) as source:
        assert sum(1 for frame in source.frames() if frame.ok) == len(photos)
