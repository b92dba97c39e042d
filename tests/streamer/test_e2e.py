"""End to end with real parts: PyAV-encoded files, the real GStreamer RTSP server, the real tiny
model (random weights: its masks are meaningless, so these tests check plumbing, timing and IDs
only where a scripted tracker makes them checkable, and say so)."""

from __future__ import annotations

import asyncio
from fractions import Fraction
from pathlib import Path

import pytest
import torch

from model import VideoTracker, build_sam3
from model.types import Concept
from protocols import events as ev
from protocols.codec import decode
from streamer.engine import Engine, EngineConfig, StreamSpec
from streamer.session import StreamState
from streamer.sources.base import SourceError
from tests.fakes import FakeTracker, eventually
from tests.streamer.conftest import Clips, RtspServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def tiny_model() -> object:
    torch.manual_seed(0)
    return build_sam3("tiny", device="cpu").eval()


async def test_file_through_the_real_tiny_model(clips: Clips, tiny_model: object) -> None:
    engine = Engine(lambda: VideoTracker(tiny_model), config=EngineConfig(status_interval_s=0.1))
    async with engine:
        events = engine.hub.subscribe(maxsize=10_000)
        session = await engine.add_stream(
            StreamSpec(str(clips.mp4), concepts=(Concept("grey square"),))
        )
        await engine.join()
    received = [decode(e.data) async for e in events]
    results = [e for e in received if isinstance(e, ev.FrameResult)]
    assert [r.seq for r in results] == list(range(clips.frames))  # a file: no frame lost
    # pts carried through exactly, in the container's time base
    assert [r.pts * r.time_base for r in results] == [
        Fraction(i, clips.fps) for i in range(clips.frames)
    ]
    assert (results[0].width, results[0].height) == clips.size
    assert session.state is StreamState.ENDED
    started = [e for e in received if isinstance(e, ev.StreamStarted)]
    assert len(started) == 1 and started[0].source.endswith("clip.mp4")


async def test_missing_and_unreadable_files_fail_with_one_clear_line(
    tmp_path: Path, tiny_model: object
) -> None:
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"definitely not a video" * 100)
    engine = Engine(lambda: VideoTracker(tiny_model))
    async with engine:
        with pytest.raises(SourceError, match="not found"):
            await engine.add_stream(StreamSpec(str(tmp_path / "missing.mp4")))
        with pytest.raises(SourceError, match="garbage.mp4") as refused:  # refused up front too
            await engine.add_stream(StreamSpec(str(garbage)))
        assert not engine.sessions and not engine.errors
    assert "\n" not in str(refused.value)


async def test_bad_url_fails_its_stream_while_rtsp_keeps_running(
    rtsp_server: RtspServer, tiny_model: object
) -> None:
    engine = Engine(lambda: VideoTracker(tiny_model), config=EngineConfig(status_interval_s=0.1))
    async with engine:
        good = await engine.add_stream(StreamSpec(rtsp_server.url("/test")))
        bad = await engine.add_stream(StreamSpec("rtsp://no-such-camera.invalid:8554/stream"))
        await eventually(lambda: bad.state is StreamState.FAILED, within_s=30)
        before = good.stats.frames_out
        await eventually(lambda: good.stats.frames_out > before + 5, within_s=30)
        assert good.state is StreamState.LIVE
    assert isinstance(engine.errors[bad.stream_id], SourceError)
    assert "no-such-camera.invalid" in str(engine.errors[bad.stream_id])


async def test_rtsp_reconnect_keeps_object_ids_scripted_tracker(rtsp_server: RtspServer) -> None:
    """SCRIPTED tracker (it finds the white ball of videotestsrc by colour) on the REAL RTSP server:
    kill the server, restart it, and the stream comes back with the same object ID, the tracker
    having been told about the gap. With the real VideoTracker (its mark_gap, gap tolerance and
    re-association) behind the engine: tests/streamer/test_e2e_real_tracker.py."""
    tracker = FakeTracker(gap_frames=1_000)
    engine = Engine(lambda: tracker, config=EngineConfig(status_interval_s=0.1))
    async with engine:
        events = engine.hub.subscribe(maxsize=100_000)
        session = await engine.add_stream(
            StreamSpec(rtsp_server.url("/test"), concepts=(Concept("white"),))
        )
        await eventually(
            lambda: session.stats.frames_out > 10 and bool(session.objects), within_s=30
        )
        before_ids = set(session.objects)
        rtsp_server.kill()
        await eventually(lambda: session.state is not StreamState.LIVE, within_s=10)
        await asyncio.sleep(1.0)
        rtsp_server.start()
        frames_at_restart = session.stats.frames_out
        await eventually(lambda: session.state is StreamState.LIVE and session.stats.frames_out > frames_at_restart + 10,
                         within_s=30)  # fmt: skip
        after_ids = set(session.objects)
    received = [decode(e.data) async for e in events]
    assert before_ids == after_ids == {1}
    assert tracker.gaps and all(gap >= 1.0 for gap in tracker.gaps)
    assert session.stats.reconnects >= 1
    states = [e.state for e in received if isinstance(e, ev.StreamStatus)]
    assert ev.StreamState.RECONNECTING in states and states[-1] is ev.StreamState.ENDED
    assert not [
        e
        for e in received
        if isinstance(e, ev.ObjectEnded) and e.reason is not ev.EndReason.STREAM_ENDED
    ]
