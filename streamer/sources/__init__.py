"""Sources: async iterators of `Frame`s, decoded in threads (see base.py for the contract).

`open_source(text)` picks the source from what the user typed (`resolve_source(text)` says which,
and with what config, without opening it: the CLI checks its sources so before loading a model):

    rtsp://user:pass@cam/stream  (also rtsps, rtmp, srt, udp, http)  -> RtspSource
    synthetic://1920x1080@30     (size and rate optional)            -> SyntheticSource
    world://384@15               (side and rate optional)            -> WorldSource
    /dev/video0, v4l2:///dev/video0                                  -> WebcamSource
    clip.mp4, file:///videos/clip.mkv                                -> FileSource
    - (stdin), /tmp/video.fifo                                       -> FileSource, read once
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from protocols.credentials import redact_url
from streamer.sources.base import Source, SourceError, SourceStats
from streamer.sources.file import FileConfig, FileSource
from streamer.sources.handoff import HandoffPolicy
from streamer.sources.rtsp import NETWORK_SCHEMES, RtspConfig, RtspSource, network_url
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
    "SourceConfig",
    "SourceError",
    "SourcePlan",
    "SourceStats",
    "SyntheticConfig",
    "SyntheticSource",
    "WebcamConfig",
    "WebcamSource",
    "WorldSource",
    "WorldSourceConfig",
    "open_source",
    "resolve_source",
]

_SYNTHETIC = re.compile(r"^synthetic://(?:(\d+)x(\d+))?(?:@(\d+(?:\.\d+)?))?/?$")
_WORLD = re.compile(r"^world://(\d+)?(?:@(\d+(?:\.\d+)?))?/?$")


SourceConfig = RtspConfig | SyntheticConfig | WorldSourceConfig | WebcamConfig | FileConfig


@dataclass(frozen=True, slots=True)
class SourcePlan:
    """What `open_source` would open for a text: decided from the text alone (`resolve_source`)."""

    target: str  # the URL (network), device (webcam) or path (file) to open; the text otherwise
    config: SourceConfig


def resolve_source(
    url_or_path: str,
    *,
    size: tuple[int, int] | None = None,
    realtime: bool = False,
    loop: bool = False,
    rtsp: RtspConfig | None = None,
) -> SourcePlan:
    """Which source `url_or_path` names, with its config, from its text alone: nothing is opened
    or connected to (a file may be missing, a host unknown). Raises SourceError (credential-free)
    if it can be no source: an unknown scheme, a malformed URL, a bad synthetic:// or world://."""
    text = url_or_path.strip()
    try:
        scheme = urlsplit(text).scheme.lower() if "://" in text else ""
    except ValueError as e:  # an unbalanced '[' in the host
        raise SourceError(f"{redact_url(text)}: not a valid URL ({e})") from None
    if scheme in NETWORK_SCHEMES:
        network_url(text)  # the URL's syntax; RtspSource checks it again for direct callers
        config = rtsp or RtspConfig()
        return SourcePlan(text, replace(config, size=size) if size is not None else config)
    if scheme == "synthetic":
        return SourcePlan(text, _synthetic_config(text, size))
    if scheme == "world":
        return SourcePlan(text, _world_config(text, size))
    if scheme == "v4l2" or text.startswith("/dev/video"):
        return SourcePlan(text.removeprefix("v4l2://") or "/dev/video0", WebcamConfig(size=size))
    if scheme in ("", "file"):
        files = FileConfig(realtime=realtime, loop=loop, size=size)
        return SourcePlan(text.removeprefix("file://"), files)
    raise SourceError(
        f"unsupported source {scheme}://...: expected rtsp://..., a video file, /dev/videoN, "
        "synthetic://WIDTHxHEIGHT@FPS or world://SIDE@FPS"
    )


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
    plan = resolve_source(url_or_path, size=size, realtime=realtime, loop=loop, rtsp=rtsp)
    match plan.config:
        case RtspConfig():
            return RtspSource(plan.target, stream_id=stream_id, config=plan.config)
        case SyntheticConfig():
            return SyntheticSource(plan.config, stream_id=stream_id)
        case WorldSourceConfig():
            return WorldSource(plan.config, stream_id=stream_id)
        case WebcamConfig():
            return WebcamSource(plan.target, stream_id=stream_id, config=plan.config)
        case FileConfig():
            return FileSource(plan.target, stream_id=stream_id, config=plan.config)


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
