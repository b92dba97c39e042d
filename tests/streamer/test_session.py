"""One stream's lifecycle through the real engine with a scripted tracker and source.

Events are read back by decoding the envelopes' bytes, so these tests also prove that every event
the session builds survives the wire codec.
"""

from __future__ import annotations

import threading

import pytest

from model.types import Concept
from protocols import events as ev
from protocols.codec import decode
from streamer.engine import Engine, EngineConfig, StreamSpec
from streamer.session import StreamState
from tests.fakes import FakeSource, FakeSources, FakeTracker, eventually, scene

pytestmark = pytest.mark.timeout(30)


def engine_with(sources: FakeSources, **tracker_kwargs: object) -> Engine:
    config = EngineConfig(status_interval_s=0.05, drain_timeout_s=2.0)
    return Engine(lambda: FakeTracker(**tracker_kwargs), config=config, source_factory=sources)


async def drain(subscription: object) -> list[object]:
    return [decode(envelope.data) async for envelope in subscription]  # type: ignore[attr-defined]


async def test_file_stream_publishes_every_frame_in_lifecycle_order() -> None:
    sources = FakeSources(clip=FakeSource(frames=12))
    async with engine_with(sources) as engine:
        events = engine.hub.subscribe(maxsize=10_000)
        session = await engine.add_stream(
            StreamSpec("clip", stream_id="cam", concepts=(Concept("red"),))
        )
        await engine.join()
    received = await drain(events)

    kinds = [type(e).__name__ for e in received]
    results = [e for e in received if isinstance(e, ev.FrameResult)]
    assert [r.seq for r in results] == list(range(12))  # a file loses nothing
    assert all(len(r.objects) == 1 and r.objects[0].object_id == 1 for r in results)
    assert results[0].objects[0].mask().sum() == 144  # the 12x12 red square of that very frame
    assert (
        kinds.index("ConceptsChanged") < kinds.index("StreamStarted") < kinds.index("ObjectStarted")
    )
    assert kinds.index("ObjectStarted") < kinds.index("FrameResult")
    ended = [e for e in received if isinstance(e, ev.ObjectEnded)]
    assert [(e.object_id, e.reason, e.seq) for e in ended] == [(1, ev.EndReason.STREAM_ENDED, 11)]
    assert kinds.index("ObjectEnded") > max(i for i, k in enumerate(kinds) if k == "FrameResult")
    final = [e for e in received if isinstance(e, ev.StreamStatus)][-1]
    assert final.state is ev.StreamState.ENDED and final.dropped == 0
    assert session.state is StreamState.ENDED and session.stats.frames_out == 12


async def test_frame_without_objects_still_gets_a_frame_result() -> None:
    grey = FakeSource(frames=3, draw=lambda seq: scene(seq)[:, :, :1].repeat(3, axis=2))
    async with engine_with(FakeSources(grey=grey)) as engine:
        events = engine.hub.subscribe(maxsize=1000)
        await engine.add_stream(StreamSpec("grey", concepts=(Concept("blue"),)))
        await engine.join()
    results = [e for e in await drain(events) if isinstance(e, ev.FrameResult)]
    assert len(results) == 3 and all(r.objects == () for r in results)


async def test_graceful_stop_of_a_live_stream_ends_its_objects() -> None:
    live = FakeSource(frames=10_000, paced=True, live=True, fps=100)
    async with engine_with(FakeSources(cam=live)) as engine:
        events = engine.hub.subscribe(maxsize=10_000)
        session = await engine.add_stream(StreamSpec("cam", concepts=(Concept("red"),)))
        await eventually(lambda: session.stats.frames_out >= 5)
        await engine.remove_stream(session.stream_id, drain_s=60.0)  # ends by draining: the
        # ObjectEnded(STREAM_ENDED) events below are only sent on a graceful stop
    received = await drain(events)
    assert live.closed
    assert any(
        isinstance(e, ev.ObjectEnded) and e.reason is ev.EndReason.STREAM_ENDED for e in received
    )
    assert session.state is StreamState.ENDED


async def test_source_failure_fails_the_stream_with_a_clear_error() -> None:
    broken = FakeSource(frames=10, fail_at=4)
    async with engine_with(FakeSources(cam=broken)) as engine:
        events = engine.hub.subscribe(maxsize=1000)
        session = await engine.add_stream(StreamSpec("cam", concepts=(Concept("red"),)))
        await engine.join()
    received = await drain(events)
    errors = [e for e in received if isinstance(e, ev.Error)]
    assert [(e.code, e.stream_id) for e in errors] == [
        (ev.ErrorCode.SOURCE_FAILED, session.stream_id)
    ]
    assert "connection refused" in errors[0].message
    assert session.state is StreamState.FAILED
    assert [e for e in received if isinstance(e, ev.StreamStatus)][
        -1
    ].state is ev.StreamState.FAILED
    assert len([e for e in received if isinstance(e, ev.FrameResult)]) == 4  # queued frames finish


async def test_model_failure_fails_only_that_stream() -> None:
    sources = FakeSources(a=FakeSource(frames=8), b=FakeSource(frames=8))
    trackers: list[FakeTracker] = []

    def make() -> FakeTracker:
        trackers.append(FakeTracker(fail_on_frame=2 if not trackers else None))
        return trackers[-1]

    async with Engine(
        make, config=EngineConfig(status_interval_s=0.05), source_factory=sources
    ) as engine:
        bad = await engine.add_stream(StreamSpec("a"))
        good = await engine.add_stream(StreamSpec("b"))
        await engine.join()
    assert bad.state is StreamState.FAILED and "scripted tracker failure" in str(bad.error)
    assert good.state is StreamState.ENDED and good.stats.frames_out == 8


async def test_reconnect_gap_reaches_the_tracker_and_keeps_ids() -> None:
    flaky = FakeSource(frames=10, live=True, disconnect_at={5: 0.2})
    tracker = FakeTracker(gap_frames=3)
    async with Engine(
        lambda: tracker,
        config=EngineConfig(status_interval_s=0.05),
        source_factory=FakeSources(cam=flaky),
    ) as engine:
        events = engine.hub.subscribe(maxsize=1000)
        await engine.add_stream(StreamSpec("cam", concepts=(Concept("red"),), live=False))
        await engine.join()
    received = await drain(events)
    assert tracker.gaps == [pytest.approx(0.2)]
    states = [e.state for e in received if isinstance(e, ev.StreamStatus)]
    assert ev.StreamState.RECONNECTING in states
    ids = {o.object_id for e in received if isinstance(e, ev.FrameResult) for o in e.objects}
    assert ids == {1}


async def test_prompt_edits_run_on_the_worker_thread_and_publish_concepts() -> None:
    stall = threading.Event()
    stall.set()
    tracker = FakeTracker(stall=stall)
    live = FakeSource(frames=10_000, paced=True, live=True, fps=50)
    async with Engine(lambda: tracker, source_factory=FakeSources(cam=live)) as engine:
        events = engine.hub.subscribe(maxsize=10_000)
        session = await engine.add_stream(StreamSpec("cam"))
        red = await session.add_concept(Concept("red"))
        await eventually(lambda: bool(session.objects))
        assert next(iter(session.objects.values())).concept_id == red
        await session.remove_concept(red)
        with pytest.raises(KeyError):
            await session.remove_concept(red)
        with pytest.raises(ValueError, match="colours"):
            await session.add_concept(Concept("unicorn"))
        await engine.remove_stream(session.stream_id)
    received = await drain(events)
    changed = [e for e in received if isinstance(e, ev.ConceptsChanged)]
    assert [[c.text for c in e.concepts] for e in changed] == [["red"], []]
    removed = [e for e in received if isinstance(e, ev.ObjectEnded)]
    assert removed[0].reason is ev.EndReason.REMOVED
    assert len(tracker.steps_thread) == 1 and threading.get_ident() not in tracker.steps_thread
