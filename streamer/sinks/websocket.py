"""WebSocket subscribers: `/v1/streams/{id}/events` (one stream) and `/v1/events` (all streams).

Each binary message is exactly one encoded event; the first is always `Hello`. Every connection
has its own subscription queue (query `queue=N`, default 256) with its own policy
(`overflow=drop_oldest`, the default, or `overflow=disconnect`): a client that reads slowly loses
its own oldest events, told in the `subscriber_dropped` field of the StreamStatus events it gets,
or is closed with code 1008 ("policy violation") and a reason. The pipeline never waits for it.
Messages from the client are ignored (the channel is one-way); a close from either side ends it.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import WSCloseCode, WSMsgType, web

from streamer.channels import Disconnected, Overflow
from streamer.publish import hello
from streamer.sinks.fanout import Hub, Subscription

log = logging.getLogger(__name__)

MAX_QUEUE = 65536


def subscription_options(request: web.Request) -> tuple[int, Overflow]:
    """Parse `queue` and `overflow` query parameters; raises HTTPBadRequest with the reason."""
    raw_queue = request.query.get("queue", "256")
    raw_overflow = request.query.get("overflow", Overflow.DROP_OLDEST.value)
    try:
        queue = int(raw_queue)
    except ValueError:
        raise web.HTTPBadRequest(text=f"queue must be an integer, got {raw_queue!r}") from None
    if not 1 <= queue <= MAX_QUEUE:
        raise web.HTTPBadRequest(text=f"queue must be within 1..{MAX_QUEUE}, got {queue}")
    if raw_overflow not in (Overflow.DROP_OLDEST.value, Overflow.DISCONNECT.value):
        raise web.HTTPBadRequest(
            text=f"overflow must be 'drop_oldest' or 'disconnect', got {raw_overflow!r}"
        )
    return queue, Overflow(raw_overflow)


async def serve_events(
    request: web.Request, hub: Hub, stream_id: str | None
) -> web.WebSocketResponse:
    """Upgrade to a WebSocket and forward the hub's events for `stream_id` (None: all streams)."""
    queue, overflow = subscription_options(request)
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=64 * 1024)
    await ws.prepare(request)
    subscription = hub.subscribe(stream_id, maxsize=queue, overflow=overflow)
    try:
        await ws.send_bytes(hello().data)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(_read_until_closed(ws, subscription))
            tg.create_task(_forward(ws, subscription))
    except* (ConnectionResetError, ConnectionError):
        pass  # the client went away mid-send: nothing left to tell it
    finally:
        subscription.close()
        await ws.close()
    return ws


async def _forward(ws: web.WebSocketResponse, subscription: Subscription) -> None:
    try:
        async for envelope in subscription:
            if ws.closed:
                return
            await ws.send_bytes(envelope.data)
    except Disconnected as error:
        await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=f"too slow: {error}".encode())
        return
    await ws.close()


async def _read_until_closed(ws: web.WebSocketResponse, subscription: Subscription) -> None:
    async for message in ws:
        if message.type is WSMsgType.ERROR:
            break
    subscription.close()  # ends _forward after what is queued (the socket is gone anyway)
