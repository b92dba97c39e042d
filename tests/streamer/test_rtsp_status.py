"""Network sources say what they are doing: 'connecting to', each failed attempt's reason and the
retry time, on the log (stderr) and as events, within 3 s of the stream's start (issue 31, item 2).

Against a closed port (the real CLI and the engine), and a real GStreamer RTSP server with a wrong
mount (404) and with auth (401, without the password anywhere).
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from protocols import events as ev
from protocols.codec import decode
from streamer.engine import Engine, EngineConfig, StreamSpec
from streamer.session import Session, StreamState
from tests.fakes import FakeTracker, eventually
from tests.streamer.conftest import PASSWORD, RtspServer, free_port

pytestmark = pytest.mark.timeout(120)

FIRST_LINE_WITHIN_S = 3.0  # the promise: a user sees what the source does this soon


class Timeline:
    """Every event of the engine, with the monotonic time it was published to this subscriber."""

    def __init__(self) -> None:
        self.events: list[tuple[float, ev.Event]] = []

    def first(self, kind: type, text: str = "") -> tuple[float, ev.Event] | None:
        for at, event in self.events:
            if isinstance(event, kind) and text in getattr(event, "message", ""):
                return at, event
        return None


@asynccontextmanager
async def watched_engine(**config: float) -> AsyncIterator[tuple[Engine, Timeline]]:
    timeline = Timeline()
    async with Engine(FakeTracker, config=EngineConfig(**config)) as engine:  # type: ignore[arg-type]
        subscription = engine.hub.subscribe(maxsize=10_000)

        async def record() -> None:
            async for envelope in subscription:
                timeline.events.append((time.monotonic(), decode(envelope.data)))

        async with asyncio.TaskGroup() as tg:
            reader = tg.create_task(record())
            yield engine, timeline
            reader.cancel()


async def test_a_closed_port_is_named_with_the_retry_time_within_three_seconds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="streamer.sources")
    url = f"rtsp://127.0.0.1:{free_port()}/cam"
    async with watched_engine() as (engine, timeline):
        started = time.monotonic()
        session = await engine.add_stream(StreamSpec(url, stream_id="cam"))
        await eventually(lambda: len(_errors(timeline)) >= 2, within_s=60)
        await engine.remove_stream(session.stream_id, drain_s=0.5)

    status = next((at, e) for at, e in timeline.events if isinstance(e, ev.StreamStatus))
    assert status[1].state is ev.StreamState.CONNECTING
    first_at, first = _errors(timeline)[0]
    assert first.code is ev.ErrorCode.SOURCE_FAILED and first.stream_id == "cam"
    assert first.message.startswith(f"{url}: Connection refused; retrying in ")
    assert first.message.endswith(" s")
    assert first_at - started <= FIRST_LINE_WITHIN_S, first_at - started  # the proof
    assert status[0] - started <= FIRST_LINE_WITHIN_S
    lines = [r.getMessage() for r in caplog.records if r.name == "streamer.sources.rtsp"]
    assert lines[0] == f"connecting to {url}"
    assert lines[1] == first.message
    assert lines[2] == f"connecting to {url} (attempt 2)"
    # backoff: the retry delays announced grow (0.25 s doubling, +-20 % jitter)
    delays = [float(e.message.rsplit("retrying in ", 1)[1][:-2]) for _, e in _errors(timeline)]
    assert delays[1] > delays[0]


def test_the_cli_prints_connecting_and_the_refusal_within_three_seconds() -> None:
    """The real CLI, the embedded model: the first source line comes within 3 s of the stream's
    start (the 'model ...' line, printed as the model is ready and the stream is added)."""
    url = f"rtsp://127.0.0.1:{free_port()}/cam"
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "streamer", "run", url, "--prompt", "shape",
               "--max-reconnects", "3"]  # fmt: skip
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    lines: list[tuple[float, str]] = []

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append((time.monotonic(), line.rstrip("\n")))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        code = process.wait(timeout=100)
    finally:
        process.kill()
    reader.join(timeout=10)

    texts = [text for _, text in lines]
    model_at = next(at for at, text in lines if text.startswith("streamer: model "))
    connecting_at, connecting = next((at, t) for at, t in lines if "connecting to" in t)
    refused_at, refused = next((at, t) for at, t in lines if "Connection refused; retrying" in t)
    assert connecting.endswith(f"connecting to {url}")
    assert f"{url}: Connection refused; retrying in " in refused
    assert connecting_at - model_at <= FIRST_LINE_WITHIN_S, texts
    assert refused_at - model_at <= FIRST_LINE_WITHIN_S, texts  # the proof
    assert code == 1, texts
    assert "gave up after 3 attempts" in texts[-1] or any("gave up after 3" in t for t in texts)
    assert not any("Traceback" in t for t in texts)


@pytest.mark.slow
async def test_a_wrong_mount_on_a_real_server_is_named_404(rtsp_server: RtspServer) -> None:
    url = rtsp_server.url("/no-such-mount")
    async with watched_engine() as (engine, timeline):
        started = time.monotonic()
        session = await engine.add_stream(StreamSpec(url, stream_id="door"))
        await eventually(lambda: bool(_errors(timeline)), within_s=60)
        assert session.state is StreamState.CONNECTING  # a mount may appear later: retried
        await engine.remove_stream(session.stream_id, drain_s=0.5)
    at, error = _errors(timeline)[0]
    assert error.message.startswith(
        f"{url}: 404 Not Found: the server has no stream at '/no-such-mount' (check the mount "
        "path); retrying in "
    ), error.message
    assert at - started <= FIRST_LINE_WITHIN_S


@pytest.mark.slow
@pytest.mark.parametrize("credentials", ["none", "wrong"])
async def test_a_server_asking_for_credentials_is_named_401_without_the_password(
    rtsp_auth_server: RtspServer, credentials: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    if credentials == "none":
        url = rtsp_auth_server.url()
        expected = "the server wants credentials (rtsp://user:password@host/...)"
    else:
        url = rtsp_auth_server.url(user="viewer").replace(PASSWORD, PASSWORD[::-1])
        expected = "the credentials in the URL were refused"
    async with watched_engine() as (engine, timeline):
        session: Session = await engine.add_stream(StreamSpec(url, stream_id="auth"))
        await eventually(lambda: session.state is StreamState.FAILED, within_s=60)
        assert engine.errors["auth"] is session.error
    [(_, error)] = _errors(timeline)
    safe = f"rtsp://127.0.0.1:{rtsp_auth_server.port}/test"
    assert error.message == (
        f"{safe}: authentication failed (401 Unauthorized): {expected}; check the credentials"
    ), error.message
    texts = [repr(e) for _, e in timeline.events] + [str(session.error)]
    texts += [r.getMessage() for r in caplog.records] + [r.exc_text or "" for r in caplog.records]
    for secret in (PASSWORD, PASSWORD[::-1]):
        assert not any(secret in text for text in texts)


def _errors(timeline: Timeline) -> list[tuple[float, ev.Error]]:
    return [(at, e) for at, e in timeline.events if isinstance(e, ev.Error)]
