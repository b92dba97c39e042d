"""Fuzzed request bodies (hypothesis) against the real API: never a 5xx, the engine keeps serving.

The server runs on its own event loop in a thread (hypothesis drives plain synchronous examples);
a live stream runs the whole time, and must still be producing frames at the end.
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamer.api import ApiConfig, create_app
from streamer.engine import Engine, EngineConfig, StreamSpec
from tests.fakes import FakeSource, FakeSources, FakeTracker

pytestmark = pytest.mark.timeout(300)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)  # fmt: skip
field_names = st.sampled_from(["source", "stream_id", "concepts", "text", "exemplars", "box", "points",
                               "xy", "positive", "thresholds", "detection", "redaction", "live", "loop"])  # fmt: skip
near_valid = st.dictionaries(field_names, json_values, max_size=5)  # mutations of real bodies
bodies = st.one_of(json_values, near_valid).map(json.dumps).map(str.encode) | st.binary(max_size=64)
paths = st.sampled_from(["/v1/streams", "/v1/streams/cam/concepts", "/v1/streams/cam/objects",
                         "/v1/streams/cam/objects/1", "/v1/streams/nope/concepts"])  # fmt: skip
methods = st.sampled_from(["POST", "PATCH"])


class ServerThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.stop: asyncio.Event | None = None
        self.engine: Engine | None = None
        self.port = 0
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._main(),))

    async def _main(self) -> None:
        self.stop = asyncio.Event()
        camera = FakeSource(frames=10**9, paced=True, live=True, fps=20)
        engine = Engine(FakeTracker, config=EngineConfig(status_interval_s=0.2),
                        source_factory=FakeSources(cam=camera))  # fmt: skip
        async with engine:
            self.engine = engine
            await engine.add_stream(StreamSpec("cam", stream_id="cam"))
            runner = web.AppRunner(create_app(engine, ApiConfig(max_body_bytes=4096)))
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.port = runner.addresses[0][1]
            self.ready.set()
            await self.stop.wait()
            await runner.cleanup()

    def request(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=body, method=method,
                                     headers={"Content-Type": "application/json"})  # fmt: skip
        try:
            with urllib.request.urlopen(req, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    thread = ServerThread()
    thread.thread.start()
    assert thread.ready.wait(30)
    yield thread
    assert thread.stop is not None
    thread.loop.call_soon_threadsafe(thread.stop.set)
    thread.thread.join(30)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(method=methods, path=paths, body=bodies)
def test_fuzzed_bodies_never_break_the_api(
    server: ServerThread, method: str, path: str, body: bytes
) -> None:
    status, payload = server.request(method, path, body)
    assert status < 500, payload
    if status >= 400:
        assert (
            payload["status"] == status and isinstance(payload["error"], str) and payload["error"]
        )
    else:
        assert status in (200, 201)  # the fuzzer found a valid body: it must have been applied


def test_engine_still_serves_after_the_fuzzing(server: ServerThread) -> None:
    assert server.engine is not None
    session = server.engine.get("cam")
    before = session.stats.frames_out
    status, health = server.request("GET", "/v1/health", b"")
    assert status == 200 and health["status"] == "ok"
    threading.Event().wait(0.5)
    assert session.stats.frames_out > before and session.state.value == "live"
