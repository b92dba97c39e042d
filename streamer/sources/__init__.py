"""Sources: async iterators of `Frame`s, decoded in threads (see base.py for the contract).

`open_source(text)` picks the source from what the user typed:

    rtsp://user:pass@cam/stream  (also rtsps, rtmp, srt, udp, http)  -> RtspSource
    synthetic://1920x1080@30     (size and rate optional)            -> SyntheticSource
    world://384@15               (side and rate optional)            -> WorldSource
    /dev/video0, v4l2:///dev/video0                                  -> WebcamSource
    clip.mp4, file:///videos/clip.mkv                                -> FileSource
    - (stdin), /tmp/video.fifo                                       -> FileSource, read once
"""

from __future__ import annotations

import re
from dataclasses import replace
from urllib.parse import urlsplit

from protocols.credentials import redact_url
from streamer.sources.base import Source, SourceError, SourceStats
from streamer.sources.file import FileConfig, FileSource
from streamer.sources.handoff import HandoffPolicy
from streamer.sources.rtsp import NETWORK_SCHEMES, RtspConfig, RtspSource
from streamer.sources.synthetic import SyntheticConfig, SyntheticSource
from streamer.sources.webcam import WebcamConfig, WebcamSource
from streamer.sources.world import WorldSource, WorldSourceConfig

__all__ = [
    "FileConfig",
    "FileSource",
    "HandoffPolicy",
    "RtspConfig",
    "RtspSource",
    "Source",
    "SourceError",
    "SourceStats",
    "SyntheticConfig",
    "SyntheticSource",
    "WebcamConfig",
    "WebcamSource",
    "WorldSource",
    "WorldSourceConfig",
    "open_source",
]

_SYNTHETIC = re.compile(r"^synthetic://(?:(\d+)x(\d+))?(?:@(\d+(?:\.\d+)?))?/?$")
_WORLD = re.compile(r"^world://(\d+)?(?:@(\d+(?:\.\d+)?))?/?$")


def open_source(
    url_or_path: str,
    *,
    stream_id: str = "0",
    size: tuple[int, int] | None = None,
    realtime: bool = False,
    loop: bool = False,
    rtsp: RtspConfig | None = None,
) -> Source:
    """Build the source for `url_or_path`; raises SourceError (credential-free) if it cannot be one.

    `size` (width, height) scales frames while converting them; `realtime` and `loop` apply to files
    (the synthetic source is always paced); `rtsp` configures network streams.
    """
    text = url_or_path.strip()
    try:
        scheme = urlsplit(text).scheme.lower() if "://" in text else ""
    except ValueError as e:  # an unbalanced '[' in the host
        raise SourceError(f"{redact_url(text)}: not a valid URL ({e})") from None
    if scheme in NETWORK_SCHEMES:
        config = rtsp or RtspConfig()
        if size is not None:
            config = replace(config, size=size)
        return RtspSource(text, stream_id=stream_id, config=config)
    if scheme == "synthetic":
        return SyntheticSource(_synthetic_config(text, size), stream_id=stream_id)
    if scheme == "world":
        return WorldSource(_world_config(text, size), stream_id=stream_id)
    if scheme == "v4l2" or text.startswith("/dev/video"):
        device = text.removeprefix("v4l2://") or "/dev/video0"
        return WebcamSource(device, stream_id=stream_id, config=WebcamConfig(size=size))
    if scheme in ("", "file"):
        path = text.removeprefix("file://")
        return FileSource(
            path, stream_id=stream_id, config=FileConfig(realtime=realtime, loop=loop, size=size)
        )
    raise SourceError(
        f"unsupported source {scheme}://...: expected rtsp://..., a video file, /dev/videoN "
        "synthetic://WIDTHxHEIGHT@FPS or world://SIDE@FPS"
    )


def _synthetic_config(text: str, size: tuple[int, int] | None) -> SyntheticConfig:
    match = _SYNTHETIC.match(text)
    if match is None:
        raise SourceError(f"bad synthetic source {text!r}: expected synthetic://WIDTHxHEIGHT@FPS")
    w, h, fps = match.groups()
    width, height = size or ((int(w), int(h)) if w else (1280, 720))
    try:
        return SyntheticConfig(width=width, height=height, fps=float(fps) if fps else 30.0)
    except ValueError as e:
        raise SourceError(f"bad synthetic source {text!r}: {e}") from None


def _world_config(text: str, size: tuple[int, int] | None) -> WorldSourceConfig:
    match = _WORLD.match(text)
    if match is None:
        raise SourceError(f"bad world source {text!r}: expected world://SIDE@FPS (square frames)")
    side, fps = match.groups()
    if size is not None and size[0] != size[1]:
        raise SourceError(f"world frames are square; got a {size[0]} x {size[1]} size")
    try:
        return WorldSourceConfig(
            size=size[0] if size else int(side) if side else 384, fps=float(fps) if fps else 15.0
        )
    except ValueError as e:
        raise SourceError(f"bad world source {text!r}: {e}") from None
