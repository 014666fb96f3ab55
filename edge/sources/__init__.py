"""Camera and video sources behind one interface, chosen by URI.

    from edge.sources import open_source, FrameStatus

    with open_source("file://clip.mp4") as source:
        for frame in source.frames():          # stops at `end`
            if frame.status is FrameStatus.OK:
                handle(frame.image)            # BGR uint8
            else:
                log(frame.status.value, frame.detail)

See ``edge.sources.uri`` for the URI forms and ``edge.sources.base`` for what
each status means. Opening raises SourceError (with what to do) when the source
cannot work at all; reads never raise for stream problems.
"""
from __future__ import annotations

import os
from typing import Union

from edge.exc import SourceError
from edge.sources.base import (
    FILE_RECONNECT,
    LIVE_RECONNECT,
    Frame,
    FrameStatus,
    Reconnect,
    Source,
    reconnect_policy,
)
from edge.sources.opencv import VideoSource
from edge.sources.still import StillSource
from edge.sources.uri import SourceSpec, parse_uri

__all__ = [
    "open_source",
    "parse_uri",
    "Frame",
    "FrameStatus",
    "Reconnect",
    "Source",
    "SourceError",
    "SourceSpec",
    "LIVE_RECONNECT",
    "FILE_RECONNECT",
]


def open_source(
    uri: Union[str, os.PathLike],
    timeout: float = 2.0,
    reconnect: Union[bool, Reconnect] = True,
    rate: Union[float, str, None] = None,
) -> Source:
    """Open the source named by ``uri``.

    ``timeout``: the longest a read waits for a frame (seconds) before returning
    ``timeout``; also the connect/read timeout given to RTSP.
    ``reconnect``: True for the defaults (live: for ever, backoff 0.5 s doubling
    to 30 s; files: 3 quick attempts), False for none, or a ``Reconnect``.
    ``rate``: file and folder sources only; None reads as fast as possible,
    ``"realtime"`` paces a video at its own frame rate, a number paces at that
    many frames per second.
    """
    spec = parse_uri(uri)
    policy = reconnect_policy(reconnect, spec.live)
    if spec.scheme == "dir":
        if rate == "realtime":
            raise SourceError(f"{spec.uri}: still images have no frame rate of their own; give rate as frames per second")
        return StillSource(spec.uri, spec.target, timeout=timeout, rate=rate)
    return VideoSource(spec, timeout=timeout, reconnect=policy, rate=rate)
