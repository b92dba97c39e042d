"""A slow model: live streams skip (latest wins, counted exactly), files lose nothing, lag never builds."""

from __future__ import annotations

import asyncio
import time
from fractions import Fraction

import numpy as np
import pytest

from model.types import Concept
from protocols import events as ev
from protocols.codec import decode
from streamer.engine import Engine, EngineConfig, StreamSpec
from streamer.inference import InferenceWorker, Inferred, LanePolicy
from streamer.types import Frame
from tests.fakes import FakeSource, FakeSources, FakeTracker, scene

pytestmark = pytest.mark.timeout(60)


async def test_live_stream_with_slow_model_drops_are_counted_exactly() -> None:
    camera = FakeSource(frames=60, paced=True, live=True, fps=100)  # 10 ms per frame
    engine = Engine(
        lambda: FakeTracker(delay_s=0.05),  # 50 ms per step: at most ~1 frame in 5 processed
        config=EngineConfig(status_interval_s=0.05),
        source_factory=FakeSources(cam=camera),
    )
    async with engine:
        events = engine.hub.subscribe(maxsize=10_000)
        session = await engine.add_stream(StreamSpec("cam", concepts=(Concept("red"),)))
        await engine.join()
    stats = session.stats
    assert stats.frames_in == 60
    assert stats.frames_out < 30  # skipping happened
    assert stats.frames_in == stats.frames_out + stats.drops["superseded"] + stats.drops["stale"]
    received = [decode(e.data) async for e in events]
    final = [e for e in received if isinstance(e, ev.StreamStatus)][-1]
    assert final.dropped == stats.frames_in - stats.frames_out
    assert final.drops.superseded == stats.drops["superseded"]
    # latency stays bounded by about one model step plus one frame, not by the backlog
    assert stats.latency_ms.percentile(99) < 500


async def test_file_stream_with_slow_model_loses_nothing() -> None:
    clip = FakeSource(frames=15)
    engine = Engine(lambda: FakeTracker(delay_s=0.02), source_factory=FakeSources(clip=clip))
    async with engine:
        events = engine.hub.subscribe(maxsize=10_000)
        session = await engine.add_stream(StreamSpec("clip"))
        await engine.join()
    seqs = [e.seq for e in [decode(x.data) async for x in events] if isinstance(e, ev.FrameResult)]
    assert seqs == list(range(15))
    assert session.stats.dropped == 0


async def test_stale_frames_are_skipped_by_the_latency_budget() -> None:
    worker = InferenceWorker()
    tracker = FakeTracker()
    lane = worker.open_lane("cam", tracker, LanePolicy(live=True, latency_budget_s=0.05))
    old = time.time_ns() - 200_000_000  # captured 200 ms ago
    async with asyncio.TaskGroup() as tg:
        runner = tg.create_task(worker.run())
        await lane.submit(Frame("cam", 0, 0, Fraction(1, 30), old, scene(0)))
        await lane.submit(Frame("cam", 1, 1, Fraction(1, 30), time.time_ns(), scene(1)))
        lane.end_input()
        outcomes = [o async for o in lane]
        runner.cancel()
    processed = [o.frame.seq for o in outcomes if isinstance(o, Inferred)]
    # seq 0 was either replaced in the slot by seq 1 or skipped as stale; never processed
    assert processed == [1]
    assert lane.superseded + lane.stale == 1


async def test_streams_ready_together_share_one_model_call() -> None:
    FakeTracker.batch_sizes = []
    cams = {f"c{i}": FakeSource(frames=30, paced=True, live=True, fps=50) for i in range(3)}
    engine = Engine(lambda: FakeTracker(delay_s=0.03), source_factory=FakeSources(**cams))
    async with engine:
        for name in cams:
            await engine.add_stream(StreamSpec(name))
        await engine.join()
    assert max(FakeTracker.batch_sizes) == 3
    assert sum(engine.worker.batches.values()) >= len(FakeTracker.batch_sizes)


async def test_full_outbox_pauses_only_its_own_lane() -> None:
    worker = InferenceWorker()
    slow = worker.open_lane("slow", FakeTracker(), LanePolicy(live=False, outbox_size=2))
    fast = worker.open_lane("fast", FakeTracker(), LanePolicy(live=False))
    image = np.zeros((8, 8, 3), dtype=np.uint8)

    async def feed(lane_name: str, n: int) -> None:
        lane = slow if lane_name == "slow" else fast
        for seq in range(n):
            await lane.submit(Frame(lane_name, seq, seq, Fraction(1, 30), time.time_ns(), image))
        lane.end_input()

    async with asyncio.TaskGroup() as tg:
        runner = tg.create_task(worker.run())
        tg.create_task(feed("slow", 10))
        tg.create_task(feed("fast", 10))
        fast_outcomes = [o async for o in fast]  # nobody reads `slow` yet
        assert len(slow.outbox) == 2
        slow_outcomes = [o async for o in slow]
        runner.cancel()
    assert len(fast_outcomes) == 11 and len(slow_outcomes) == 11  # 10 frames + Finished each
