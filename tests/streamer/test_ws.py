"""WebSocket subscribers over a real server: one event per binary message, Hello first, and a
slow subscriber that only ever hurts itself."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from aiohttp import ClientSession, ClientWebSocketResponse, TCPConnector, WSMsgType
from aiohttp.test_utils import TestClient

from protocols import events as ev
from protocols.codec import decode
from streamer.engine import Engine, EngineConfig
from tests.fakes import COLOURS, FakeSource, FakeSources, FakeTracker, eventually, running_api

pytestmark = pytest.mark.timeout(90)


def noisy_red(seq: int) -> np.ndarray:
    """160 x 120 frame whose red pixels are random: a large RLE, so events weigh ~10 KB each."""
    rng = np.random.default_rng(seq)
    image = np.full((120, 160, 3), 128, dtype=np.uint8)
    image[rng.random((120, 160)) < 0.5] = COLOURS["red"]
    return image


@contextlib.asynccontextmanager
async def starved_client(client: TestClient, path: str) -> AsyncIterator[ClientWebSocketResponse]:
    """A WebSocket client with a 4 KB receive buffer that does not read until `_resume`."""

    def small_socket(addr_info: Any) -> socket.socket:
        family, kind, proto, _, _ = addr_info
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        return sock

    connector = TCPConnector(socket_factory=small_socket)
    async with ClientSession(connector=connector) as session:
        async with session.ws_connect(client.make_url(path)) as ws:
            ws._response.connection.transport.pause_reading()  # type: ignore[union-attr]
            yield ws


def engine_for(source: FakeSource) -> Engine:
    return Engine(
        FakeTracker,
        config=EngineConfig(status_interval_s=0.05),
        source_factory=FakeSources(cam=source),
    )


async def read_all(ws: object) -> list[object]:
    events = []
    async for message in ws:  # type: ignore[attr-defined]
        assert message.type is WSMsgType.BINARY
        events.append(decode(message.data))
    return events


async def test_hello_first_then_one_event_per_message() -> None:
    late = FakeSource(frames=5, disconnect_at={0: 0.3})  # time to subscribe before the first frame
    async with running_api(engine_for(late)) as (engine, client):
        await client.post(
            "/v1/streams",
            json={"source": "cam", "stream_id": "door", "concepts": [{"text": "red"}]},
        )
        async with client.ws_connect("/v1/streams/door/events") as everything:
            await engine.join()
            engine.hub.close()  # end the subscription as shutdown would
            events = await read_all(everything)
    assert isinstance(events[0], ev.Hello) and events[0].protocol_version == ev.PROTOCOL_VERSION
    assert len([e for e in events if isinstance(e, ev.FrameResult)]) == 5
    assert all(getattr(e, "stream_id", "door") == "door" for e in events[1:])


async def test_unknown_stream_and_bad_options_are_refused_before_upgrade() -> None:
    async with running_api(engine_for(FakeSource(frames=5))) as (_, client):
        r = await client.get("/v1/streams/ghost/events")
        assert r.status == 404
        r = await client.get("/v1/events?queue=0")
        assert r.status == 400 and "queue" in (await r.json())["error"]
        r = await client.get("/v1/events?overflow=block")
        assert r.status == 400


async def test_slow_subscriber_does_not_change_the_fast_ones_event_count() -> None:
    frames = 60
    source = FakeSource(frames=frames, draw=noisy_red)
    async with running_api(engine_for(source), send_buffer=4096) as (engine, client):
        async with (
            client.ws_connect("/v1/events?queue=1024") as fast,
            starved_client(client, "/v1/events?queue=4") as slow,
        ):
            fast_events: list[object] = []
            reader = asyncio.create_task(_collect(fast, fast_events))
            await client.post(
                "/v1/streams",
                json={"source": "cam", "stream_id": "door", "concepts": [{"text": "red"}]},
            )
            session = engine.get("door")
            await engine.join()
            await eventually(
                lambda: sum(isinstance(e, ev.FrameResult) for e in fast_events) == frames
            )
            slow_sub = next(s for s in engine.hub._subscriptions if s.queue.maxsize == 4)
            assert slow_sub.dropped > 0  # the slow one lost events...
            _resume(slow)
            engine.hub.close()
            slow_events = await read_all(slow)
            await reader
    assert session.stats.frames_out == frames  # ...while the pipeline lost none
    assert sum(isinstance(e, ev.FrameResult) for e in fast_events) == frames
    statuses = [e for e in slow_events if isinstance(e, ev.StreamStatus)]
    assert statuses and 0 < statuses[-1].subscriber_dropped <= slow_sub.dropped  # ...and was told
    assert all(s.subscriber_dropped == 0 for s in fast_events if isinstance(s, ev.StreamStatus))


async def test_disconnect_policy_closes_a_slow_subscriber_with_a_reason() -> None:
    source = FakeSource(frames=60, draw=noisy_red)
    async with running_api(engine_for(source), send_buffer=4096) as (engine, client):
        async with starved_client(client, "/v1/events?queue=2&overflow=disconnect") as slow:
            await client.post("/v1/streams", json={"source": "cam", "concepts": [{"text": "red"}]})
            await engine.join()
            assert engine.hub.subscribers == 0  # cut off by the hub, not by shutdown
            _resume(slow)
            messages = [m async for m in slow]
            assert slow.close_code == 1008
            assert messages == [] or messages[-1].type in (WSMsgType.CLOSE, WSMsgType.BINARY)


async def _collect(ws: object, into: list[object]) -> None:
    async for message in ws:  # type: ignore[attr-defined]
        into.append(decode(message.data))


def _resume(ws: object) -> None:
    ws._response.connection.transport.resume_reading()  # type: ignore[attr-defined]
