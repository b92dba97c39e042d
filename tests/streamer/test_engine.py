"""Engine: streams are isolated from each other; shutdown is ordered and bounded in time."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import av
import pytest

from model.types import Concept
from protocols import events as ev
from protocols.codec import decode
from protocols.log import read_log
from streamer.engine import Engine, EngineConfig, StreamNotFound, StreamSpec
from streamer.session import StreamState
from streamer.sinks.redaction import RedactionSpec
from streamer.sources.base import SourceError
from streamer.status import print_summary
from tests.fakes import FakeSource, FakeSources, FakeTracker, eventually
from tests.streamer.conftest import encode_clip, free_port

pytestmark = pytest.mark.timeout(60)


async def test_bad_source_fails_alone_while_another_stream_keeps_running() -> None:
    good = FakeSource(frames=10_000, paced=True, live=True, fps=60)
    sources = FakeSources(good=good, bad=FakeSource(frames=50, fail_at=2))
    async with Engine(
        FakeTracker, config=EngineConfig(status_interval_s=0.05), source_factory=sources
    ) as engine:
        events = engine.hub.subscribe(maxsize=10_000)
        running = await engine.add_stream(StreamSpec("good", concepts=(Concept("red"),)))
        failing = await engine.add_stream(StreamSpec("bad"))
        await eventually(lambda: failing.state is StreamState.FAILED)
        before = running.stats.frames_out
        await eventually(lambda: running.stats.frames_out > before + 10)
        assert running.state is StreamState.LIVE
        assert isinstance(engine.errors[failing.stream_id], SourceError)
        with pytest.raises(SourceError, match="no such fake source"):
            await engine.add_stream(StreamSpec("missing"))  # refused up front, nothing left behind
        assert "s3" not in engine.sessions
    received = [decode(e.data) async for e in events]
    errors = [e for e in received if isinstance(e, ev.Error)]
    assert [e.stream_id for e in errors] == [failing.stream_id]


async def test_shutdown_with_a_stalled_model_returns_within_its_timeout() -> None:
    stall = threading.Event()
    camera = FakeSource(frames=10_000, paced=True, live=True, fps=100)
    engine = Engine(
        lambda: FakeTracker(stall=stall),
        config=EngineConfig(drain_timeout_s=0.5),
        source_factory=FakeSources(cam=camera),
    )
    try:
        async with engine:
            subscription = engine.hub.subscribe()
            session = await engine.add_stream(StreamSpec("cam"))
            await eventually(lambda: session.stats.frames_in > 5)
            started = time.monotonic()
        elapsed = time.monotonic() - started
    finally:
        stall.set()  # let the worker thread go
    assert elapsed < 0.5 + 1.0, f"shutdown took {elapsed:.2f} s"
    assert camera.closed and subscription.queue.closed


async def test_graceful_shutdown_drains_every_queued_frame() -> None:
    clip = FakeSource(frames=30)
    async with Engine(
        lambda: FakeTracker(delay_s=0.01), source_factory=FakeSources(clip=clip)
    ) as engine:
        session = await engine.add_stream(StreamSpec("clip", concepts=(Concept("red"),)))
        await eventually(lambda: session.stats.frames_out >= 3)
    # the source was stopped early, but whatever reached the model was published
    assert session.state is StreamState.ENDED
    assert session.stats.frames_out == session.stats.frames_in


async def test_stream_ids_are_validated_unique_and_released() -> None:
    sources = FakeSources(a=FakeSource(frames=1_000, paced=True, live=True), b=FakeSource(frames=1))
    async with Engine(FakeTracker, source_factory=sources) as engine:
        await engine.add_stream(StreamSpec("a", stream_id="door"))
        with pytest.raises(ValueError, match="already exists"):
            await engine.add_stream(StreamSpec("b", stream_id="door"))
        with pytest.raises(ValueError, match="letters, digits"):
            await engine.add_stream(StreamSpec("b", stream_id="../etc"))
        await engine.remove_stream("door")
        with pytest.raises(StreamNotFound):
            engine.get("door")
        assert (await engine.add_stream(StreamSpec("b", stream_id="door"))).stream_id == "door"


async def test_event_log_holds_every_event_in_order(tmp_path: Path) -> None:
    log_path = tmp_path / "events.msgpack"
    config = EngineConfig(event_log=log_path, status_interval_s=0.05)
    async with Engine(
        FakeTracker, config=config, source_factory=FakeSources(clip=FakeSource(frames=9))
    ) as engine:
        live = engine.hub.subscribe(maxsize=10_000)
        await engine.add_stream(StreamSpec("clip", concepts=(Concept("red"),)))
        await engine.join()
    logged = list(read_log(log_path, strict=True))
    seen = [decode(e.data) async for e in live]
    assert isinstance(logged[0], ev.Hello)
    assert logged[1:] == seen
    assert [e.seq for e in logged if isinstance(e, ev.FrameResult)] == list(range(9))


async def test_a_failed_stream_says_why_in_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    refused = f"rtsp://admin:T0psecret@127.0.0.1:{free_port()}/cam"  # nothing listens there
    async with Engine(FakeTracker) as engine:
        session = await engine.add_stream(StreamSpec(refused, max_attempts=1))
        await engine.join()
    assert session.state is StreamState.FAILED
    reasons = [r for r in caplog.records if "Connection refused" in r.getMessage()]
    assert len(reasons) == 1, [
        r.getMessage() for r in reasons
    ]  # was 2: the source's and the engine's
    assert (
        reasons[0].getMessage().startswith(f"stream {session.stream_id} failed: rtsp://127.0.0.1:")
    )
    assert not any("T0psecret" in r.getMessage() for r in caplog.records)


async def test_a_dead_output_stops_alone_and_the_stream_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clip = encode_clip(tmp_path / "clip.mkv", frames=20, fps=10, size=(32, 24))
    push = f"rtsp://admin:T0psecret@127.0.0.1:{free_port()}/nobody"  # refused
    kept = tmp_path / "kept.mp4"
    redaction = RedactionSpec(concepts=("*",), outputs=(push, str(kept)))
    async with Engine(FakeTracker) as engine:
        events = engine.hub.subscribe(maxsize=10_000)
        session = await engine.add_stream(StreamSpec(str(clip), redaction=redaction))
        await engine.join()
    assert session.state is StreamState.ENDED and not engine.errors  # was: the stream failed
    seen = [decode(e.data) async for e in events]
    assert len([e for e in seen if isinstance(e, ev.FrameResult)]) == 20  # events went on
    [error] = [e for e in seen if isinstance(e, ev.Error)]
    assert error.stream_id == session.stream_id and "127.0.0.1" in error.message
    with av.open(str(kept)) as container:  # the other output got every frame
        assert sum(1 for _ in container.decode(video=0)) == 20
    assert [str(e) for e in session.output_errors] == [error.message]
    assert session.stats.drops["redaction_output_failed"] > 0
    lines = [r for r in caplog.records if "nobody" in r.getMessage()]
    assert len(lines) == 1 and not lines[0].exc_info
    assert (
        lines[0].getMessage().startswith(f"stream {session.stream_id}: output stopped, the stream")
    )
    assert not any(
        "T0psecret" in r.getMessage() for r in caplog.records
    ) and "T0psecret" not in str(seen)
    summary = io.StringIO()
    assert print_summary(engine, summary)  # an output failed: the run did not go as asked
    missed = session.stats.drops["redaction_output_failed"]
    assert "20 frames processed, 0 skipped, p50" in summary.getvalue()
    assert summary.getvalue().rstrip().endswith(f"; redacted video: {missed} output failed")
