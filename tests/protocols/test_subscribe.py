"""The subscriber SDK against real servers: a tiny aiohttp WebSocket server sending encoded events,
and a local nats-server (core subjects and JetStream resume) when the binary is installed."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest
from aiohttp import WSCloseCode, web

from protocols import codec, dump
from protocols.errors import ProtocolError
from protocols.events import FrameResult, Hello, ObjectEnded
from protocols.subscribe import SubscriptionError, events_subject, stream_id_from_path, subscribe
from tests.protocols.golden_events import EXPECTED, _mask

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "s3cret"
STREAM = [EXPECTED[n] for n in ("hello", "stream_started", "frame_result", "object_ended")]


# --- WebSocket -------------------------------------------------------------------------------


async def _events(request: web.Request) -> web.WebSocketResponse:
    if request.headers.get("Authorization") != f"Bearer {TOKEN}":
        raise web.HTTPUnauthorized()
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    for event in STREAM:
        await ws.send_bytes(codec.encode(event))
    await ws.close()
    return ws


async def _no_hello(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.send_bytes(codec.encode(EXPECTED["frame_result"]))
    await ws.close()
    return ws


async def _text(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.send_bytes(codec.encode(EXPECTED["hello"]))
    await ws.send_str('{"t": "frame_result"}')
    await ws.close()
    return ws


async def _aborts(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.send_bytes(codec.encode(EXPECTED["hello"]))
    await ws.close(code=WSCloseCode.INTERNAL_ERROR)
    return ws


@pytest.fixture
async def ws_server() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/v1/streams/{id}/events", _events)
    app.router.add_get("/v1/events", _no_hello)
    app.router.add_get("/v1/streams/text/events/", _text)
    app.router.add_get("/v1/streams/abort/events/", _aborts)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"ws://{host}:{port}"
    finally:
        await runner.cleanup()


async def test_websocket_yields_hello_then_every_event(ws_server: str) -> None:
    async with subscribe(f"{ws_server}/v1/streams/cam1/events", token=TOKEN) as events:
        received = [event async for event in events]
        assert events.hello == EXPECTED["hello"]
    assert received == STREAM
    frame = received[2]
    assert isinstance(frame, FrameResult)
    np.testing.assert_array_equal(frame.objects[0].mask(), _mask())  # decoded on demand


async def test_websocket_can_stop_early_and_close_twice(ws_server: str) -> None:
    events = subscribe(f"{ws_server}/v1/streams/cam1/events", token=TOKEN)
    assert isinstance(await anext(events), Hello)
    await events.aclose()
    await events.aclose()
    with pytest.raises(StopAsyncIteration):
        await anext(events)


@pytest.mark.parametrize(
    ("path", "token", "error", "message"),
    [
        ("/v1/streams/cam1/events", "wrong", SubscriptionError, "HTTP 401"),
        ("/v1/nope", TOKEN, ValueError, "expected /v1/streams/<id>/events"),
        ("/v1/streams/x/y/events", TOKEN, ValueError, "expected /v1/streams"),
        ("/v1/events", None, ProtocolError, "first message must be Hello, got FrameResult"),
        ("/v1/streams/text/events/", None, ProtocolError, "text WebSocket message"),
        ("/v1/streams/abort/events/", None, SubscriptionError, "code 1011"),
    ],
)
async def test_websocket_failures_are_clear(
    ws_server: str, path: str, token: str | None, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        async with subscribe(ws_server + path, token=token) as events:
            async for _ in events:
                pass


async def test_unreachable_server_and_bad_scheme() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    with pytest.raises(SubscriptionError, match="cannot connect"):
        async for _ in subscribe(f"ws://user:pw@127.0.0.1:{port}/v1/events"):
            pass
    with pytest.raises(ValueError, match="unsupported URL scheme 'http'"):
        subscribe("http://host/v1/events")


async def test_credentials_never_appear_in_errors() -> None:
    with pytest.raises(SubscriptionError) as info:
        async for _ in subscribe("ws://admin:hunter2@127.0.0.1:9/v1/events"):
            pass
    assert "hunter2" not in str(info.value)


async def test_dump_reads_a_websocket(ws_server: str, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"{ws_server}/v1/streams/cam1/events"
    assert await asyncio.to_thread(dump.main, [url, "--token", TOKEN, "--limit", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split('"type":"')[1].split('"')[0] for line in lines] == [
        "hello",
        "stream_started",
        "frame_result",
    ]


def test_paths_and_subjects() -> None:
    assert stream_id_from_path("/v1/streams/cam-1/events") == "cam-1"
    assert stream_id_from_path("") is None and stream_id_from_path("/v1/events") is None
    assert events_subject("cam-1") == "streams.cam-1.events"
    assert events_subject(None) == "streams.*.events"
    with pytest.raises(ValueError, match="NATS subject token"):
        events_subject("a.b")


# --- NATS ------------------------------------------------------------------------------------


def _nats_binary() -> str | None:
    found = shutil.which("nats-server")
    if found is None and os.access("/usr/sbin/nats-server", os.X_OK):
        found = "/usr/sbin/nats-server"
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def nats_url(tmp_path: Path) -> Iterator[str]:
    binary = _nats_binary()
    # `make test` installs Debian's nats-server: a missing binary is a broken set-up, not a skip.
    assert binary is not None, "nats-server is not installed (scripts/bootstrap.sh dev installs it)"
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(tmp_path / "js")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError(f"nats-server exited: {proc.stderr.read()}") from None
                time.sleep(0.1)
        yield f"nats://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def _collect(events: AsyncIterator[object], n: int) -> list[object]:
    out = []
    async for event in events:
        out.append(event)
        if len(out) == n:
            break
    return out


async def test_nats_core_subject(nats_url: str) -> None:
    import nats

    publisher = await nats.connect(nats_url)
    events = subscribe(f"{nats_url}/v1/streams/cam1/events")
    consumer = asyncio.create_task(_collect(events, 3))
    try:
        # Core NATS only delivers to subscribers that exist when a message is published, and the
        # subscription starts with the consumer task: publish numbered events until 3 arrive.
        seq = 0
        while not consumer.done():
            ended = ObjectEnded(
                stream_id="cam1", object_id=seq, seq=seq, reason=EXPECTED["object_ended"].reason
            )
            await publisher.publish("streams.cam1.events", codec.encode(ended))
            await publisher.publish("streams.cam2.events", codec.encode(EXPECTED["hello"]))
            seq += 1
            await asyncio.wait({consumer}, timeout=0.05)
            assert seq < 200, "the subscriber never received anything"
        received = consumer.result()
    finally:
        await events.aclose()
        await publisher.close()
    assert all(isinstance(e, ObjectEnded) and e.stream_id == "cam1" for e in received)
    first = received[0].seq  # type: ignore[attr-defined]
    assert [e.seq for e in received] == [first, first + 1, first + 2]  # type: ignore[attr-defined]


async def test_nats_jetstream_start_sequence_and_durable_resume(nats_url: str) -> None:
    import nats

    publisher = await nats.connect(nats_url)
    js = publisher.jetstream()
    await js.add_stream(name="EVENTS", subjects=["streams.*.events"])
    sent = list(EXPECTED.values())[:5]
    sequences = []
    for event in sent:
        sequences.append((await js.publish("streams.cam1.events", codec.encode(event))).seq)
        await js.publish("streams.cam2.events", codec.encode(EXPECTED["error"]))
    await publisher.close()
    url = f"{nats_url}/v1/streams/cam1/events"

    async with subscribe(url, start_sequence=sequences[2]) as events:
        assert await _collect(events, 3) == sent[2:5]
        assert events.last_sequence == sequences[4]

    async with subscribe(url, durable="viewer") as events:
        assert await _collect(events, 2) == sent[:2]  # the second one is handed out, never acked
    async with subscribe(url, durable="viewer") as events:
        resumed = await asyncio.wait_for(_collect(events, 4), timeout=20)
        assert resumed == sent[1:5]  # at-least-once: the unfinished event comes again
        assert events.last_sequence == sequences[4]


async def test_example_script_prints_objects(ws_server: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "examples" / "subscribe.py"),
        f"{ws_server}/v1/streams/cam1/events",
        "--token",
        TOKEN,
        "--masks",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert lines[0] == "connected: engine 0.1.0, protocol 1"
    assert (
        "[cam1 #42] object 7 concept 1 score 0.88 confirmed box (0,0)-(7,6) area 10 mask (6, 8)"
        in lines
    )
    assert "[cam1 #42] object 9 concept None score 0.50 tentative" in lines[2]
    assert lines[-1] == "[cam1 #95] - object 7 (lost)"
