"""Local cameras through FFmpeg's v4l2 input (Linux `/dev/videoN`).

A webcam is live: the hand-off keeps only the newest frame. A camera that cannot be opened (missing,
busy, no permission) or that stops delivering for `read_timeout_s` fails the source with a
`SourceError`; unplug-and-replug is left to the caller (re-add the stream), since the device node may
come back under another number.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import av
import av.container
import av.error

from streamer.decode import upright_size
from streamer.sources.base import SourceError
from streamer.sources.handoff import HandoffPolicy
from streamer.sources.pyav_io import (
    av_reason,
    decoded_frames,
    frame_to_producer,
    make_info,
    video_stream,
)
from streamer.sources.threaded import Producer, ThreadedSource
from streamer.types import SourceState


@dataclass(frozen=True, slots=True)
class WebcamConfig:
    capture_size: tuple[int, int] | None = None  # ask the camera for (width, height)
    fps: float | None = None  # ask the camera for this rate
    input_format: str | None = None  # e.g. "mjpeg" for high resolutions over USB 2
    open_timeout_s: float = 5.0
    read_timeout_s: float = 2.0
    size: tuple[int, int] | None = None  # (width, height) to scale to while converting


def v4l2_options(config: WebcamConfig) -> dict[str, str]:
    """FFmpeg v4l2 demuxer options for `config` (pure, tested)."""
    options: dict[str, str] = {}
    if config.capture_size is not None:
        options["video_size"] = f"{config.capture_size[0]}x{config.capture_size[1]}"
    if config.fps is not None:
        options["framerate"] = f"{config.fps:g}"
    if config.input_format is not None:
        options["input_format"] = config.input_format
    return options


class WebcamSource(ThreadedSource):
    def __init__(self, device: str = "/dev/video0", *, stream_id: str = "0",
                 config: WebcamConfig | None = None) -> None:  # fmt: skip
        super().__init__(stream_id=stream_id, policy=HandoffPolicy.LATEST, capacity=1)
        self.device = device
        self.config = config or WebcamConfig()

    def _describe(self) -> str:
        return f"webcam {self.device}"

    def _produce(self, out: Producer) -> None:
        cfg = self.config
        out.status(SourceState.CONNECTING)
        try:
            container = av.open(
                self.device,
                format="v4l2",
                options=v4l2_options(cfg),
                timeout=(cfg.open_timeout_s, cfg.read_timeout_s),
            )
        except (av.error.FFmpegError, OSError) as e:
            raise SourceError(f"cannot open {self._describe()}: {av_reason(e)}") from None
        try:
            stream = video_stream(container)
            if stream is None:
                raise SourceError(f"{self._describe()} has no video stream")
            announced = False
            for frame in decoded_frames(container, stream, out):
                if not announced:
                    size = cfg.size or upright_size(frame)
                    out.info(make_info(self.device, stream, size, live=True))
                    out.status(SourceState.LIVE)
                    announced = True
                frame_to_producer(out, frame, cfg.size, stream.time_base or Fraction(1, 1_000_000))
        except av.error.FFmpegError as e:
            raise SourceError(f"{self._describe()} stopped: {av_reason(e)}") from None
        finally:
            container.close()
