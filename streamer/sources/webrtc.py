"""WHIP ingest as a Source: the video track of a WebRTC publisher -> `Frame`s.

A `WhipSource` belongs to one stream. The WHIP endpoint (streamer/webrtc/whip.py) hands it each
publisher's video track with `attach(publisher)`; iterating the source yields that track's frames.

    waiting --attach--> live --no frame for stall_timeout_s--> stalled --frame--> live (+ on_gap)
                         |
                         | the peer dropped without DELETE (ICE consent lost, connection failed)
                         v
                    reconnecting: wait up to reconnect_window_s for a new publisher (+ on_gap),
                                  else the stream ends
    finish() (WHIP DELETE) or aclose(): iteration ends cleanly

This is the RTSP source's gap handling with the publisher in charge of reconnecting: states and
gaps reach the session through `on_status` / `on_gap`, on the loop, in order with the frames.

aiortc decodes in its own thread; the YUV -> RGB conversion runs in a worker thread, so only the
hand-offs touch the loop. aiortc queues decoded frames for `recv()` without a bound: this source
takes them as they come (conversion is far faster than real time) and the session's latest-wins
slot decides which ones the model sees.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Protocol

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError

from streamer.sources.base import SourceError, SourceStats
from streamer.types import Frame, SourceInfo, SourceState

VIDEO_TIME_BASE = Fraction(1, 90_000)  # RTP video clock


@dataclass(frozen=True, slots=True)
class WhipConfig:
    stall_timeout_s: float = 2.0  # no frame for this long -> STALLED (the session reports a gap)
    first_publisher_s: float = 30.0  # a new stream ends if no publisher delivers a frame in time
    reconnect_window_s: float = 30.0  # after a drop, how long a new publisher may take to return
    size: tuple[int, int] | None = None  # (width, height) to scale to; None keeps the sender's size

    def __post_init__(self) -> None:
        if min(self.stall_timeout_s, self.first_publisher_s, self.reconnect_window_s) <= 0:
            raise ValueError("WHIP timeouts must be > 0")


class VideoTrack(Protocol):
    """The part of aiortc's MediaStreamTrack the source reads."""

    async def recv(self) -> av.VideoFrame | av.AudioFrame | object: ...


class WhipPeer(Protocol):
    """One WHIP peer as the source sees it (streamer/webrtc/peers.Peer)."""

    @property
    def remote(self) -> str: ...  # the publisher's address, for SourceInfo.url

    @property
    def video(self) -> VideoTrack: ...

    async def close(self) -> None: ...


class PublisherBusy(RuntimeError):
    """A second publisher tried to attach while one is live."""


class WhipSource:
    """A stream's frames from whichever WHIP publisher is attached (see module docstring)."""

    def __init__(self, stream_id: str, config: WhipConfig | None = None) -> None:
        self.stream_id = stream_id
        self.config = config or WhipConfig()
        self.info: SourceInfo | None = None
        self.on_gap: Callable[[float], None] | None = None
        self.on_status: Callable[[SourceState], None] | None = None
        self._publisher: WhipPeer | None = None
        self._attached = asyncio.Event()
        self._finished = False
        self._closed = False
        self._seq = 0
        self._reconnects = 0
        self._last_frame_at: float | None = None  # monotonic time of the newest frame

    # --- what the WHIP endpoint calls --------------------------------------------------------

    @property
    def accepting(self) -> bool:
        """True when `attach` would succeed: no live publisher and the stream has not ended."""
        return self._publisher is None and not self._ending

    def attach(self, publisher: WhipPeer) -> None:
        if not self.accepting:
            raise PublisherBusy(f"stream {self.stream_id!r} already has a WHIP publisher")
        self._publisher = publisher
        self._attached.set()

    def detach(self, publisher: WhipPeer) -> None:
        """The peer is gone; its track ends and the source waits for the next one."""
        if self._publisher is publisher:
            self._publisher = None
            self._attached.clear()

    def finish(self) -> None:
        """The publisher said goodbye (WHIP DELETE): end iteration once its track stops."""
        self._finished = True
        self._attached.set()

    @property
    def stats(self) -> SourceStats:
        return SourceStats(self._seq, 0, self._reconnects, 0)

    # --- the Source contract -----------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[Frame]:
        return self._frames()

    async def aclose(self) -> None:
        """End the stream and hang up on the publisher, if any. Idempotent."""
        self._closed = True
        self._attached.set()
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            await publisher.close()

    async def _frames(self) -> AsyncIterator[Frame]:
        self._status(SourceState.CONNECTING)
        wait_s = self.config.first_publisher_s
        while True:
            publisher = await self._next_publisher(wait_s)
            if publisher is None:
                self._status(SourceState.ENDED)
                return
            async for frame in self._read(publisher):
                yield frame
            self.detach(publisher)
            if self._ending:
                self._status(SourceState.ENDED)
                return
            self._status(SourceState.RECONNECTING)
            wait_s = self.config.reconnect_window_s

    async def _next_publisher(self, wait_s: float) -> WhipPeer | None:
        """The attached publisher, waiting up to `wait_s` for one; None when the stream ends."""
        try:
            async with asyncio.timeout(wait_s):
                while self._publisher is None and not self._ending:
                    self._attached.clear()
                    await self._attached.wait()  # set by attach, finish and aclose
        except TimeoutError:
            return None
        return None if self._ending else self._publisher

    @property
    def _ending(self) -> bool:
        return self._finished or self._closed

    async def _read(self, publisher: WhipPeer) -> AsyncIterator[Frame]:
        """Frames of one publisher until its track ends (hang-up, failure or DELETE)."""
        first = True
        stalled = False
        while True:
            try:
                async with asyncio.timeout(self.config.stall_timeout_s):
                    received = await publisher.video.recv()
            except TimeoutError:
                if not stalled and not first:
                    stalled = True
                    self._status(SourceState.STALLED)
                continue
            except MediaStreamError:
                return
            if not isinstance(received, av.VideoFrame):
                raise SourceError(
                    f"whip {self.stream_id}: expected video frames, got {type(received).__name__}"
                )
            rgb = await asyncio.to_thread(_to_rgb, received, self.config.size)  # H x W x 3 uint8
            now = time.monotonic()
            if first or stalled:
                self._resume(
                    publisher, rgb, now, reconnected=first and self._last_frame_at is not None
                )
                first = stalled = False
            elif self.info is not None and (rgb.shape[1], rgb.shape[0]) != (
                self.info.width,
                self.info.height,
            ):
                self.info = self._info(publisher, rgb)  # the sender changed resolution
            self._last_frame_at = now
            yield Frame(
                self.stream_id,
                self._seq,
                received.pts,
                received.time_base or VIDEO_TIME_BASE,
                time.time_ns(),
                rgb,
            )
            self._seq += 1

    def _resume(
        self, publisher: WhipPeer, rgb: np.ndarray, now: float, *, reconnected: bool
    ) -> None:
        """First frame of a publisher, or after a stall: info, then the gap, then LIVE."""
        self.info = self._info(publisher, rgb)
        if reconnected:
            self._reconnects += 1
        if self._last_frame_at is not None and self.on_gap is not None:
            self.on_gap(now - self._last_frame_at)
        self._status(SourceState.LIVE)

    def _info(self, publisher: WhipPeer, rgb: np.ndarray) -> SourceInfo:
        return SourceInfo(
            url=f"whip://{publisher.remote}/{self.stream_id}",
            width=int(rgb.shape[1]),
            height=int(rgb.shape[0]),
            fps=0.0,  # WebRTC senders adapt their rate; the stream's status reports what arrives
            time_base=VIDEO_TIME_BASE,
            live=True,
        )

    def _status(self, state: SourceState) -> None:
        if self.on_status is not None:
            self.on_status(state)


def _to_rgb(frame: av.VideoFrame, size: tuple[int, int] | None) -> np.ndarray:
    if size is None:
        return frame.to_ndarray(format="rgb24")
    return frame.to_ndarray(format="rgb24", width=size[0], height=size[1])
