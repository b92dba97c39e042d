"""Push H.264 to an RTSP server (ANNOUNCE/RECORD, e.g. mediamtx) for players to pull.

Live: the input queue drops the oldest frame rather than letting latency build up, the encoder runs
`zerolatency` without B-frames, and every keyframe repeats SPS/PPS so a player can join at any time.
The URL may carry credentials; only `redact_url(url)` appears in messages.

Known limit (PyAV 18): the RTSP handshake runs inside avformat_write_header at the first frame, with
the GIL held and no interrupt callback. A refused or unreachable server fails at once, but a server
that accepts the TCP connection and never answers freezes the process until TCP gives up. No
pre-connect probe is made, since one-shot ingest listeners (`ffmpeg -rtsp_flags listen`) would take
the probe for the publisher.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal
from urllib.parse import urlsplit

import av
import av.container
import av.error

from protocols.credentials import redact_url
from streamer.outputs.base import EncoderConfig, OutputError, OverflowPolicy
from streamer.outputs.encoder import EncodingOutput

LIVE_ENCODER = EncoderConfig(
    preset="ultrafast", tune="zerolatency", b_frames=0, gop=30,
    extra=(("x264-params", "repeat-headers=1"),),
)  # fmt: skip


class RtspOutput(EncodingOutput):
    def __init__(
        self,
        url: str,
        *,
        encoder: EncoderConfig | None = None,
        transport: Literal["tcp", "udp"] = "tcp",
        queue_size: int = 2,
    ) -> None:
        safe = redact_url(url)
        if urlsplit(url).scheme.lower() not in ("rtsp", "rtsps"):
            raise OutputError(f"{safe}: an RTSP push target must start with rtsp:// or rtsps://")
        super().__init__(
            name=safe, encoder=encoder or LIVE_ENCODER, policy=OverflowPolicy.DROP_OLDEST,
            queue_size=queue_size,
        )  # fmt: skip
        self._url = url
        self._transport = transport

    def _open_container(self) -> av.container.OutputContainer:
        options: dict[str, str] = {"rtsp_transport": self._transport}
        try:
            return av.open(self._url, "w", format="rtsp", options=dict(options))
        except av.error.FFmpegError as e:
            raise OutputError(f"{self.name}: cannot connect ({e.strerror})") from None


def live_encoder(fps: float) -> EncoderConfig:
    """LIVE_ENCODER with a keyframe every second at `fps`."""
    return replace(LIVE_ENCODER, fps=fps, gop=max(1, round(fps)))
