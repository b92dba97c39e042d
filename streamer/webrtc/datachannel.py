"""A stream's events on a WebRTC DataChannel: the WebSocket contract over SCTP.

Each message is exactly one encoded event (protocols.codec), binary, and the first is `Hello`,
as on `/v1/streams/{id}/events`. The viewer opens the channel (label `events`) in its WHEP offer;
ordered and reliable is what the event order promises need (ObjectStarted before a mask).

Nothing waits on a slow viewer: its events pass through its own DROP_OLDEST subscription (lost
events are counted and reported to it in StreamStatus.subscriber_dropped, like a WebSocket), and
this forwarder takes the next event only while the channel's send buffer is below `high_water`
bytes; aiortc's own buffer has no bound, so this check is what bounds it. An event larger than the
viewer's SCTP max-message-size (a browser says 256 KiB) cannot be sent and is skipped and counted.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiortc import RTCDataChannel

from streamer.publish import hello
from streamer.sinks.fanout import Subscription

log = logging.getLogger(__name__)

EVENTS_LABEL = "events"


@dataclass(frozen=True, slots=True)
class ChannelConfig:
    queue: int = 256  # events waiting for this viewer (DROP_OLDEST)
    high_water: int = 1 << 20  # bytes in the SCTP send buffer before the forwarder waits
    low_water: int = 256 << 10  # ... until the buffer drains below this


class EventChannel:
    """Forwards one subscription to one DataChannel until either side closes."""

    def __init__(self, channel: RTCDataChannel, subscription: Subscription, config: ChannelConfig):
        self.channel = channel
        self.subscription = subscription
        self.config = config
        self.sent = 0
        self.oversized = 0
        self._room = asyncio.Event()  # set while the send buffer is below low_water, or closed
        self._room.set()
        channel.bufferedAmountLowThreshold = config.low_water
        channel.on("bufferedamountlow", self._room.set)
        channel.on("close", self._closed)

    async def run(self) -> None:
        try:
            if self.channel.readyState != "open":
                return
            self._send(hello().data)
            async for envelope in self.subscription:
                if self.channel.readyState != "open":
                    return
                if self.channel.bufferedAmount > self.config.high_water:
                    self._room.clear()
                    await self._room.wait()
                    if self.channel.readyState != "open":
                        return
                self._send(envelope.data)
        finally:
            self.subscription.close()

    def _send(self, data: bytes) -> None:
        try:
            self.channel.send(data)
        except ValueError as error:  # over the viewer's max-message-size
            self.oversized += 1
            if self.oversized == 1:
                log.warning(
                    "DataChannel of stream %s: event skipped (%s)",
                    self.subscription.stream_id,
                    error,
                )
            return
        self.sent += 1

    def _closed(self) -> None:
        self.subscription.close()  # ends `run` after what is queued
        self._room.set()
