"""NATS JetStream sink: every stream's events on `streams.<id>.events`, stored and replayable.

Each message's payload is the event's encoded bytes, exactly what a WebSocket subscriber gets (no
Hello: NATS has no connection to greet, and every event carries its protocol version). The
JetStream stream (`NatsConfig.stream`, subjects `streams.*.events`) is created if it is missing,
with the configured age and size limits, so a subscriber can replay a stream from any sequence or
resume a durable consumer (protocols/subscribe.py: `subscribe("nats://host/v1/streams/<id>/events",
durable="me")`).

The sink is an ordinary hub subscriber with a deep DROP_OLDEST queue: a slow or unreachable broker
costs the sink its oldest events (counted, reported in StreamStatus like any subscriber), never the
pipeline. Each publish waits for JetStream's ack (stored, at most `publish_timeout_s`); a publish
that fails is counted in `NatsSink.failed` and logged, and the sink goes on. If the broker is down
at start the sink retries the connection with backoff; once connected, nats-py reconnects on its own.
Stream ids with a '.' cannot be a subject token; their events are skipped and counted.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from protocols.credentials import redact_url
from protocols.subscribe import events_subject
from streamer.sinks.fanout import Subscription

log = logging.getLogger(__name__)

SUBJECTS = "streams.*.events"


@dataclass(frozen=True)
class NatsConfig:
    url: str = "nats://127.0.0.1:4222"
    token: str | None = None
    stream: str = "SAM3_EVENTS"  # the JetStream stream that stores every events subject
    max_age_s: float = 24 * 3600.0  # events older than this are discarded by JetStream
    max_bytes: int = 1 << 30  # ... and the oldest beyond this size
    queue: int = 8192  # events the sink may fall behind before losing its oldest
    publish_timeout_s: float = 5.0
    connect_backoff_s: tuple[float, float] = (0.5, 10.0)  # first and longest wait between connects

    def __post_init__(self) -> None:
        if self.queue < 1 or self.publish_timeout_s <= 0 or self.max_age_s <= 0:
            raise ValueError("NATS queue, publish_timeout_s and max_age_s must be > 0")


class NatsSink:
    """Publishes a hub subscription to JetStream until the subscription ends (engine shutdown)."""

    def __init__(self, subscription: Subscription, config: NatsConfig) -> None:
        self.subscription = subscription
        self.config = config
        self.published = 0  # events stored by JetStream (acknowledged)
        self.failed = 0  # publishes that timed out or were refused
        self.unroutable = 0  # events of streams whose id cannot be a subject token
        self._subjects: dict[str, str | None] = {}

    async def run(self) -> None:
        try:
            nc = await self._connect()
            if nc is None:
                return  # the engine stopped before the broker came up
            try:
                js = nc.jetstream(timeout=self.config.publish_timeout_s)
                await self._ensure_stream(js)
                async for envelope in self.subscription:
                    subject = self._subject(envelope.stream_id)
                    if subject is not None:
                        await self._publish(js, subject, envelope.data)
            finally:
                await nc.close()
        finally:
            self.subscription.close()

    async def _connect(self) -> Any:
        import nats

        delay, longest = self.config.connect_backoff_s
        safe = redact_url(self.config.url)
        while not self.subscription.queue.closed:
            try:
                return await nats.connect(
                    servers=[self.config.url], token=self.config.token, connect_timeout=5,
                    allow_reconnect=True, max_reconnect_attempts=-1,
                )  # fmt: skip
            except Exception as error:  # nats-py raises its own errors, OSError or TimeoutError
                log.warning("NATS %s: cannot connect (%r); retry in %.1f s", safe, error, delay)
            await asyncio.sleep(delay)
            delay = min(longest, delay * 2)
        return None

    async def _ensure_stream(self, js: Any) -> None:
        from nats.js.api import StreamConfig
        from nats.js.errors import NotFoundError

        try:
            await js.stream_info(self.config.stream)
            return
        except NotFoundError:
            pass
        await js.add_stream(
            StreamConfig(
                name=self.config.stream,
                subjects=[SUBJECTS],
                max_age=self.config.max_age_s,
                max_bytes=self.config.max_bytes,
            )
        )
        log.info("created JetStream stream %s for %s", self.config.stream, SUBJECTS)

    async def _publish(self, js: Any, subject: str, data: bytes) -> None:
        from nats.errors import Error as NatsError

        try:
            await js.publish(subject, data, stream=self.config.stream)
        except (NatsError, TimeoutError) as error:
            self.failed += 1
            if self.failed == 1 or self.failed % 1000 == 0:
                log.warning(
                    "NATS publish on %s failed (%r); %d failures so far",
                    subject,
                    error,
                    self.failed,
                )
            return
        self.published += 1

    def _subject(self, stream_id: str | None) -> str | None:
        if stream_id is None:
            return None  # engine-wide events have no stream subject
        if stream_id not in self._subjects:
            try:
                self._subjects[stream_id] = events_subject(stream_id)
            except ValueError as error:
                log.warning("NATS: events of stream %r are not published: %s", stream_id, error)
                self._subjects[stream_id] = None
        subject = self._subjects[stream_id]
        if subject is None:
            self.unroutable += 1
        return subject
