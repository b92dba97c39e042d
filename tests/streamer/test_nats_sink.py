"""The NATS JetStream sink against a real nats-server on loopback (started by the test)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest

from protocols.codec import decode
from protocols.events import FrameResult, Hello, StreamStatus
from protocols.events import StreamState as WireState
from protocols.subscribe import subscribe
from streamer.engine import Engine, EngineConfig
from streamer.sinks.nats import NatsConfig
from tests.fakes import FakeSource, FakeSources, FakeTracker, running_api

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def nats_url(tmp_path: Path) -> Iterator[str]:
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    if not Path(binary).exists():
        pytest.fail(
            "nats-server is not installed: run scripts/bootstrap.sh dev (Debian nats-server)"
        )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [binary, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(tmp_path / "js")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"nats-server did not start: {proc.stderr.read() if proc.stderr else ''}"
                    ) from None
                time.sleep(0.05)
        yield f"nats://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def engine(nats_url: str, frames: int = 40) -> Engine:
    camera = FakeSource(frames=frames, fps=30)
    config = EngineConfig(
        status_interval_s=0.05, nats=NatsConfig(url=nats_url, stream="TEST_EVENTS")
    )
    return Engine(FakeTracker, config=config, source_factory=FakeSources(cam=camera))


async def _stored(nats_url: str, subject: str) -> list[bytes]:
    """Every message JetStream holds on `subject`, in order, read by a fresh ephemeral consumer."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        info = await js.stream_info("TEST_EVENTS")
        sub = await js.pull_subscribe(subject, durable=None, stream="TEST_EVENTS")
        out: list[bytes] = []
        while len(out) < info.state.messages:
            out += [m.data for m in await sub.fetch(info.state.messages - len(out), timeout=5)]
        return out
    finally:
        await nc.close()


async def test_jetstream_holds_the_websocket_bytes_and_a_durable_subscriber_resumes(
    nats_url: str,
) -> None:
    async with running_api(engine(nats_url)) as (eng, client):
        ws = await client.ws_connect("/v1/events")
        assert isinstance(decode(await ws.receive_bytes()), Hello)
        body = {"source": "cam", "stream_id": "cam", "concepts": [{"text": "red"}]}
        assert (await client.post("/v1/streams", json=body)).status == 201
        ws_bytes: list[bytes] = []
        while True:  # until the stream's final status
            ws_bytes.append(await ws.receive_bytes(timeout=10))
            event = decode(ws_bytes[-1])
            if isinstance(event, StreamStatus) and event.state is WireState.ENDED:
                break
        await ws.close()
    stored = await _stored(nats_url, "streams.cam.events")
    assert stored == ws_bytes  # every event, the very same bytes, in the same order
    assert sum(isinstance(decode(b), FrameResult) for b in stored) == 40

    # A durable subscriber reads 7 events and goes away; a new one with the same name resumes
    # at its last sequence: the 7th (handed out, never acknowledged: at-least-once), then on.
    url = nats_url + "/v1/streams/cam/events"
    first = subscribe(url, durable="reader")
    seen = [await anext(first) for _ in range(7)]
    last = first.last_sequence
    await first.aclose()
    second = subscribe(url, durable="reader")
    rest = [await anext(second) for _ in range(3)]
    assert last == 7 and second.last_sequence == last + 2
    await second.aclose()
    assert rest[0] == seen[-1]
    assert seen + rest[1:] == [decode(b) for b in stored[:9]]
