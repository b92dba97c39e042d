"""The relay: every worker's events, from NATS into the API process's hub, for its WebSockets.

Workers publish each stream's events on `streams.<id>.events` (the engine's NATS sink); the relay
subscribes to `streams.*.events` once and publishes every message into the local `Hub` as the
engine would (decoded, the same bytes), so a WebSocket subscriber of a stream sees one event
stream wherever the stream runs, across re-placements, without reconnecting.

Nothing here waits on a subscriber: `Hub.publish` never blocks (each subscriber has its own
bounded queue, drop_oldest or disconnect). The NATS subscription itself is bounded
(`pending_msgs`): past it the client drops the newest messages (NATS's slow-consumer policy),
counted in `Relay.dropped`. A message that does not decode is counted in `Relay.undecodable`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from protocols.codec import decode
from protocols.errors import ProtocolError
from protocols.subscribe import events_subject
from streamer.sinks.fanout import Envelope, Hub

log = logging.getLogger(__name__)


class Relay:
    def __init__(
        self, hub: Hub, url: str, *, token: str | None = None, pending_msgs: int = 65536
    ) -> None:
        self.hub = hub
        self.url = url
        self.token = token
        self.pending_msgs = pending_msgs
        self.relayed = 0
        self.dropped = 0  # messages NATS dropped for this slow consumer
        self.undecodable = 0
        self.connected = asyncio.Event()

    async def run(self) -> None:
        """Relay until cancelled; nats-py reconnects on its own after a broker restart."""
        import nats
        from nats.errors import SlowConsumerError

        async def on_error(error: Exception) -> None:
            if isinstance(error, SlowConsumerError):
                self.dropped += 1
            else:
                log.warning("relay: NATS: %r", error)

        nc = await nats.connect(
            servers=[self.url], token=self.token, error_cb=on_error, allow_reconnect=True,
            max_reconnect_attempts=-1, connect_timeout=5,
        )  # fmt: skip
        try:
            await nc.subscribe(
                events_subject(None), cb=self._on_message, pending_msgs_limit=self.pending_msgs
            )
            await nc.flush()
            self.connected.set()
            await asyncio.Event().wait()  # until cancelled
        finally:
            await nc.close()

    async def _on_message(self, message: Any) -> None:
        stream_id = message.subject.split(".")[1]
        try:
            event = decode(message.data)
        except ProtocolError as error:
            self.undecodable += 1
            log.warning("relay: an event of stream %s does not decode: %s", stream_id, error)
            return
        self.relayed += 1
        self.hub.publish(Envelope(stream_id, event, message.data))
