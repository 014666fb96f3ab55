"""Source URIs, in the spirit of jetson-utils' videoSource.

==========================  ==============================================================
``csi://0``                 MIPI CSI camera ``sensor-id=0`` through GStreamer's nvarguscamerasrc
``v4l2:///dev/video0``      USB/V4L2 camera (``v4l2://0`` is the same device)
``rtsp://host/stream``      network camera (``rtsps://`` too)
``file://clip.mp4``         a video file; relative to the working folder, ``file:///abs/clip.mp4``
``dir://folder``            still images in a folder, read in name order
``clip.mp4`` / ``folder``   a bare path: ``dir://`` if it is a folder, else ``file://``
==========================  ==============================================================

Camera options go in the query string: ``csi://0?width=1280&height=720&fps=30&flip=0``
and ``v4l2:///dev/video0?width=640&height=480&fps=30&fourcc=MJPG``. An RTSP URI is
passed to the backend untouched (its query belongs to the camera).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl

from edge.exc import SourceError

SCHEMES = ("csi", "v4l2", "rtsp", "rtsps", "file", "dir")
LIVE_SCHEMES = ("csi", "v4l2", "rtsp", "rtsps")

CSI_DEFAULTS = {"width": 1280, "height": 720, "fps": 30, "flip": 0}
CSI_OPTIONS = set(CSI_DEFAULTS)
V4L2_OPTIONS = {"width", "height", "fps", "fourcc"}


@dataclass(frozen=True)
class SourceSpec:
    """A parsed URI: ``scheme`` (one of SCHEMES), ``target`` (what the backend opens)."""

    uri: str
    scheme: str
    target: str
    options: dict = field(default_factory=dict)

    @property
    def live(self) -> bool:
        return self.scheme in LIVE_SCHEMES


def parse_uri(uri: str) -> SourceSpec:
    if not isinstance(uri, (str, os.PathLike)):
        raise SourceError(f"a source must be a URI or a path, got {uri!r}")
    uri = os.fspath(uri)
    if not uri.strip():
        raise SourceError("the source URI is empty; try csi://0, v4l2:///dev/video0, file://clip.mp4 or dir://folder")
    match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$", uri)
    if not match:
        return _bare_path(uri)
    scheme, rest = match.group(1).lower(), match.group(2)
    if scheme not in SCHEMES:
        raise SourceError(
            f"unsupported source {uri!r}: the scheme must be one of "
            + ", ".join(f"{name}://" for name in SCHEMES)
        )
    if scheme in ("rtsp", "rtsps"):
        if not rest:
            raise SourceError(f"{uri!r} names no host")
        return SourceSpec(uri, scheme, uri)
    if scheme in ("file", "dir"):
        if not rest:
            raise SourceError(f"{uri!r} names no path")
        return SourceSpec(uri, scheme, rest)
    path, _, query = rest.partition("?")
    options = _options(uri, query, CSI_OPTIONS if scheme == "csi" else V4L2_OPTIONS)
    if scheme == "csi":
        if not path.isdigit():
            raise SourceError(f"{uri!r}: csi:// takes a sensor number, e.g. csi://0")
        return SourceSpec(uri, scheme, path, {**CSI_DEFAULTS, **options})
    return SourceSpec(uri, scheme, _v4l2_device(uri, path), options)


def _bare_path(text: str) -> SourceSpec:
    path = Path(text).expanduser()
    scheme = "dir" if path.is_dir() else "file"
    return SourceSpec(text, scheme, str(path))


def _v4l2_device(uri: str, path: str) -> str:
    if path.isdigit():
        return f"/dev/video{path}"
    if not path.startswith("/dev/"):
        raise SourceError(f"{uri!r}: v4l2:// takes a device such as v4l2:///dev/video0 or v4l2://0")
    return path


def _options(uri: str, query: str, allowed: set) -> dict:
    options: dict = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key not in allowed:
            raise SourceError(f"{uri!r}: unknown option {key!r} (allowed: {', '.join(sorted(allowed))})")
        if key == "fourcc":
            if len(value) != 4:
                raise SourceError(f"{uri!r}: fourcc must be 4 characters, e.g. MJPG")
            options[key] = value
            continue
        try:
            number = int(value)
        except ValueError:
            raise SourceError(f"{uri!r}: option {key} must be a whole number, got {value!r}") from None
        if number < 0 or (number == 0 and key != "flip"):
            raise SourceError(f"{uri!r}: option {key} must be positive, got {number}")
        options[key] = number
    return options


def csi_pipeline(sensor_id: int, width: int, height: int, fps: int, flip: int = 0) -> str:
    """The GStreamer pipeline for a Jetson CSI camera, ending in BGR frames for OpenCV.

    nvarguscamerasrc delivers NV12 in NVMM (GPU) memory; nvvidconv copies it to
    system memory as BGRx, videoconvert drops the padding byte. ``drop=true
    max-buffers=1`` keeps only the newest frame so a slow pipeline sees the
    present, not a growing queue.
    """
    if not 0 <= flip <= 7:
        raise SourceError(f"csi flip must be 0..7 (nvvidconv flip-method), got {flip}")
    return (
        f"nvarguscamerasrc sensor-id={sensor_id} ! "
        f"video/x-raw(memory:NVMM), width=(int){width}, height=(int){height}, "
        f"framerate=(fraction){fps}/1, format=(string)NV12 ! "
        f"nvvidconv flip-method={flip} ! video/x-raw, format=(string)BGRx ! "
        "videoconvert ! video/x-raw, format=(string)BGR ! "
        "appsink drop=true max-buffers=1 sync=false"
    )
