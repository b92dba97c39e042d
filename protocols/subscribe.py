"""Subscriber SDK: `async for event in subscribe(url)` over WebSocket or NATS, no torch needed.

    async with subscribe("ws://host:8080/v1/streams/cam1/events", token="...") as events:
        async for event in events:
            if isinstance(event, FrameResult):
                for obj in event.objects:
                    print(obj.object_id, obj.box_xyxy, obj.mask().sum())  # mask decoded on demand

URLs:
* `ws://host:port/v1/streams/{id}/events` (one stream) or `ws://host:port/v1/events` (all): each
  binary WebSocket message is exactly one encoded event and the first is `Hello`; `token` is sent
  as `Authorization: Bearer <token>`.
* `nats://host:port/v1/streams/{id}/events` or `nats://host:port[/v1/events]`: subject
  `streams.<id>.events` (`streams.*.events` for all); each payload is the same encoded bytes. NATS
  has no connection-level Hello (every event carries its protocol version anyway). With `durable`
  or `start_sequence` it reads from JetStream instead: a durable consumer resumes where the last
  subscriber with that name stopped; `start_sequence` starts a new consumer at a stream sequence.
  `Subscription.last_sequence` is the JetStream sequence of the last event (keep it to resume).
  JetStream events are acknowledged when the next one is requested; an event handed out but not
  acknowledged when the subscription closes is redelivered at once (at-least-once).

Transport failures raise `SubscriptionError`; bad bytes raise `ProtocolError` and end the
subscription. aiohttp and nats-py are imported only when a URL needs them.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, AsyncIterator
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from protocols.codec import DEFAULT_MAX_SIZE, decode
from protocols.credentials import redact_url
from protocols.errors import ProtocolError
from protocols.events import Event, Hello

_STREAM_PATH = re.compile(r"^/v1/streams/(?P<id>[^/]+)/events/?$")
_ALL_PATHS = ("", "/", "/v1/events", "/v1/events/")
_SUBJECT_TOKEN = re.compile(r"^[^.*>\s]+$")  # one NATS subject token: no dots, wildcards, spaces
_NORMAL_CLOSE = (1000, 1001)  # normal closure, going away
_FETCH_WAIT_S = 5.0  # how long one JetStream fetch waits for a new event before asking again


class SubscriptionError(ConnectionError):
    """The transport failed: refused, unreachable, or closed abnormally. One line, no secrets."""


def events_subject(stream_id: str | None) -> str:
    """The NATS subject of a stream's events (`streams.<id>.events`); None: every stream's."""
    if stream_id is None:
        return "streams.*.events"
    if not _SUBJECT_TOKEN.match(stream_id):
        raise ValueError(f"stream id {stream_id!r} cannot be a NATS subject token")
    return f"streams.{stream_id}.events"


def stream_id_from_path(path: str) -> str | None:
    """`/v1/streams/{id}/events` -> id; `/v1/events` (or no path) -> None (all streams)."""
    if path in _ALL_PATHS:
        return None
    match = _STREAM_PATH.match(path)
    if match is None:
        raise ValueError(f"expected /v1/streams/<id>/events or /v1/events, got {path!r}")
    return match["id"]


def subscribe(
    url: str,
    *,
    token: str | None = None,
    max_size: int = DEFAULT_MAX_SIZE,
    durable: str | None = None,
    start_sequence: int | None = None,
    max_pending: int = 4096,
    heartbeat_s: float | None = 20.0,
) -> Subscription:
    """Events from `url` (ws://, wss://, nats://, tls://), as an async iterator.

    `max_pending` bounds the client-side buffer of a core NATS subscription: beyond it, NATS drops
    messages for this slow consumer. JetStream events are fetched one at a time, so nothing piles
    up on the client; a slow subscriber falls behind in the stream instead. `heartbeat_s` pings a WebSocket so a dead
    peer is noticed.
    """
    return Subscription(
        url,
        token=token,
        max_size=max_size,
        durable=durable,
        start_sequence=start_sequence,
        max_pending=max_pending,
        heartbeat_s=heartbeat_s,
    )


class Subscription:
    """An async iterator of events that is also an async context manager; `aclose()` is idempotent."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None,
        max_size: int,
        durable: str | None,
        start_sequence: int | None,
        max_pending: int,
        heartbeat_s: float | None,
    ) -> None:
        self.url = redact_url(url)
        self.hello: Hello | None = None  # the WebSocket's first message, once received
        self.last_sequence: int | None = None  # JetStream stream sequence of the last event
        self._max_size = max_size
        parts = urlsplit(url)
        stream_id = stream_id_from_path(parts.path)
        self._events: AsyncGenerator[Event, None]
        if parts.scheme in ("ws", "wss"):
            if durable is not None or start_sequence is not None:
                raise ValueError("durable / start_sequence need a nats:// URL (JetStream)")
            self._events = self._websocket(url, token, heartbeat_s)
        elif parts.scheme in ("nats", "tls"):
            server = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
            subject = events_subject(stream_id)
            self._events = self._nats(server, subject, token, durable, start_sequence, max_pending)
        else:
            raise ValueError(f"unsupported URL scheme {parts.scheme!r} in {self.url}")

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        return await self._events.__anext__()

    async def aclose(self) -> None:
        await self._events.aclose()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # --- WebSocket -------------------------------------------------------------------------

    async def _websocket(
        self, url: str, token: str | None, heartbeat_s: float | None
    ) -> AsyncGenerator[Event, None]:
        import aiohttp

        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with aiohttp.ClientSession() as session:
            try:
                ws = await session.ws_connect(
                    url, headers=headers, max_msg_size=self._max_size, heartbeat=heartbeat_s
                )
            except aiohttp.WSServerHandshakeError as exc:
                raise SubscriptionError(
                    f"{self.url}: WebSocket refused (HTTP {exc.status})"
                ) from None
            except (aiohttp.ClientError, OSError) as exc:
                raise SubscriptionError(f"{self.url}: cannot connect ({exc})") from None
            async with ws:
                async for message in ws:
                    if message.type == aiohttp.WSMsgType.BINARY:
                        yield self._check_first(decode(message.data, max_size=self._max_size))
                    elif message.type == aiohttp.WSMsgType.TEXT:
                        raise ProtocolError("got a text WebSocket message; events are binary")
                    elif message.type == aiohttp.WSMsgType.ERROR:
                        error = ws.exception()
                        if isinstance(error, aiohttp.WebSocketError) and error.code == 1009:
                            raise ProtocolError(f"WebSocket message over {self._max_size} bytes")
                        raise SubscriptionError(f"{self.url}: WebSocket failed ({error})")
            if ws.close_code is not None and ws.close_code not in _NORMAL_CLOSE:
                raise SubscriptionError(f"{self.url}: closed by the server (code {ws.close_code})")

    def _check_first(self, event: Event) -> Event:
        if self.hello is None:
            if not isinstance(event, Hello):
                raise ProtocolError(f"first message must be Hello, got {type(event).__name__}")
            self.hello = event
        return event

    # --- NATS ------------------------------------------------------------------------------

    async def _nats(
        self,
        server: str,
        subject: str,
        token: str | None,
        durable: str | None,
        start_sequence: int | None,
        max_pending: int,
    ) -> AsyncGenerator[Event, None]:
        import nats
        from nats.js.api import ConsumerConfig, DeliverPolicy

        try:
            nc = await nats.connect(
                servers=[server], token=token, connect_timeout=5, max_reconnect_attempts=3
            )
        except Exception as exc:  # nats-py raises its own errors, OSError or TimeoutError
            raise SubscriptionError(f"{self.url}: cannot connect ({exc!r})") from None
        unacked: Any = None  # a JetStream message handed out and not yet acknowledged
        try:
            messages: AsyncIterator[Any]  # nats.aio.msg.Msg
            jetstream = durable is not None or start_sequence is not None
            if jetstream:
                config = None
                if start_sequence is not None:
                    config = ConsumerConfig(
                        deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start_sequence
                    )
                pull = await nc.jetstream().pull_subscribe(subject, durable=durable, config=config)
                messages = _fetch_one_by_one(pull)
            else:
                messages = (await nc.subscribe(subject, pending_msgs_limit=max_pending)).messages
            async for message in messages:
                event = decode(message.data, max_size=self._max_size)
                if jetstream:
                    self.last_sequence = message.metadata.sequence.stream
                    unacked = message
                yield event
                if unacked is not None:
                    await unacked.ack()
                    unacked = None
        finally:
            if unacked is not None and not nc.is_closed:
                await unacked.nak()  # redeliver now, not after the consumer's ack wait
            await nc.close()


async def _fetch_one_by_one(pull: Any) -> AsyncIterator[Any]:
    """JetStream messages of a pull consumer, fetched one at a time.

    A push consumer (or a batched fetch) hands the client messages it has not asked for yet;
    those stay unacknowledged until the consumer's ack wait (30 s) when the subscriber closes.
    Fetching one at a time costs a round trip per event but leaves at most one message in flight,
    the one `Subscription` naks on close, so a resumed subscriber gets it back at once.
    """
    import nats.errors

    while True:
        try:
            (message,) = await pull.fetch(1, timeout=_FETCH_WAIT_S)
        except (TimeoutError, nats.errors.TimeoutError):
            continue  # nothing new yet: ask again
        yield message
