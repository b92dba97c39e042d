"""One stream's pipeline, all of it owned by one TaskGroup.

    source ──► ingest ──► Lane (Latest slot | Bounded) ──► inference worker
                 │                                            │
                 └─► frame sinks (redaction: every frame)     ▼
                                              publish ──► Hub (events) + frame sinks (results)
    report: one StreamStatus per `status_interval_s`, and on every state change

`run()` returns when the stream has ended and everything queued has been published; it raises
the error that ended the stream (a `SourceError` for a bad URL or file, the tracker's exception
for a model failure) after publishing it as an `Error` event and a `failed` StreamStatus.
A frame sink's video output that fails (`ReportsOutputErrors`) stops alone: one warning line and an
`Error` event, and the stream goes on. `stop()` is the graceful path: stop reading the source; what is queued is still processed, the
tracker's live objects end with reason `stream_ended`, and `run()` returns. Hard stops cancel
the task that awaits `run()`; nothing here swallows CancelledError.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from model.types import (
    BoxPrompt,
    Concept,
    FrameTrack,
    ObjectEndedEvent,
    ObjectState,
    PointPrompt,
)
from streamer.inference import Finished, Inferred, Lane
from streamer.limits import DEFAULT, Limits, check_concept
from streamer.metrics import StreamStats
from streamer.outputs.base import OutputError
from streamer.publish import EventBuilder
from streamer.sinks.fanout import Hub
from streamer.sources.base import Source, SourceError, SourceStats
from streamer.sources.threaded import SourceNote
from streamer.types import Frame, SourceInfo

log = logging.getLogger(__name__)

CAP_REPORT_EVERY_S = 10.0  # a concept held at its cap is told again at most this often


class StreamState(enum.Enum):
    CONNECTING = "connecting"
    LIVE = "live"
    RECONNECTING = "reconnecting"
    GAP = "gap"
    ENDED = "ended"
    FAILED = "failed"


class FrameSink(Protocol):
    """A sink that needs pixels (redaction): every decoded frame, then each frame's result."""

    def stream_started(self, info: SourceInfo | None, live: bool) -> None: ...  # before frames
    def offer_frame(self, frame: Frame) -> None: ...  # never blocks
    def offer_result(self, frame: Frame, track: FrameTrack) -> None: ...  # never blocks
    def end_input(self) -> None: ...
    def drops(self) -> dict[str, int]: ...  # running totals by cause
    async def run(self) -> None: ...


@runtime_checkable
class ReportsOutputErrors(Protocol):
    """A frame sink whose video outputs may fail one by one (redaction); the session sets this."""

    on_output_error: Callable[[OutputError], None] | None


@dataclass(frozen=True)
class ObjectInfo:
    """The latest published view of one live object (for GET .../objects)."""

    object_id: int
    concept_id: int | None
    score: float
    box_xyxy: tuple[float, float, float, float]
    area: int
    state: ObjectState
    first_seq: int
    last_seq: int


class Session:
    """source -> lane -> publish -> sinks for one stream (see module docstring)."""

    def __init__(
        self,
        stream_id: str,
        *,
        source: Source,
        lane: Lane,
        publisher: EventBuilder,
        hub: Hub,
        stats: StreamStats,
        frame_sinks: Sequence[FrameSink] = (),
        concepts: dict[int, Concept] | None = None,
        status_interval_s: float = 1.0,
        limits: Limits = DEFAULT,
    ) -> None:
        self.stream_id = stream_id
        self.source = source
        self.lane = lane
        self.publisher = publisher
        self.hub = hub
        self.stats = stats
        self.frame_sinks = tuple(frame_sinks)
        self.output_errors: list[OutputError] = []  # outputs that stopped; the stream went on
        for sink in self.frame_sinks:
            if isinstance(sink, ReportsOutputErrors):
                sink.on_output_error = self._output_failed
        self.status_interval_s = status_interval_s
        self.state = StreamState.CONNECTING
        self.error: BaseException | None = None
        self.concepts = {} if concepts is None else concepts  # concept id -> concept (live)
        self.objects: dict[int, ObjectInfo] = {}
        self.limits = limits
        self.capped: dict[int, int] = {}  # concept id -> detections not tracked (a cap was full)
        self._cap_told: dict[int, float] = {}  # concept id -> monotonic time it was last reported
        self._started = False
        self._stopping = False
        self._ingest_task: asyncio.Task[None] | None = None
        self._ingest_running = False
        self._published_all = asyncio.Event()

    # --- lifecycle ----------------------------------------------------------------------
    async def run(self) -> None:
        self.source.on_gap = self.lane.mark_gap
        self.source.on_status = self._on_source_status
        if hasattr(self.source, "on_note"):  # network sources say what they are doing
            self.source.on_note = self._on_source_note
        async with asyncio.TaskGroup() as tg:
            self._ingest_task = tg.create_task(self._ingest(), name=f"{self.stream_id}:ingest")
            tg.create_task(self._publish(), name=f"{self.stream_id}:publish")
            tg.create_task(self._report(), name=f"{self.stream_id}:report")
            for sink in self.frame_sinks:
                tg.create_task(self._run_sink(sink), name=f"{self.stream_id}:{type(sink).__name__}")
        if self.error is not None:
            raise self.error

    def stop(self) -> None:
        """Graceful: stop reading the source; queued frames are still processed. Idempotent."""
        self._stopping = True
        if self._ingest_running and self._ingest_task is not None:
            self._ingest_task.cancel()  # a task cancelled before it starts would skip its finally

    @property
    def done(self) -> bool:
        return self.state in (StreamState.ENDED, StreamState.FAILED)

    # --- prompt edits (run on the worker thread between steps) -------------------------
    async def add_concept(self, concept: Concept) -> int:
        """Raises ValueError (a LimitError) for thresholds or a cap outside `limits`."""
        check_concept(concept, "concept", self.limits)
        if concept.max_objects is None:
            concept = dataclasses.replace(concept, max_objects=self.limits.objects_per_concept)
        concept_id = await self.lane.call(self.lane.tracker.add_concept, concept)
        self.concepts[concept_id] = concept
        self.hub.publish(self.publisher.concepts_changed(self.concepts))
        return int(concept_id)

    async def remove_concept(self, concept_id: int) -> None:
        if concept_id not in self.concepts:
            raise KeyError(f"stream {self.stream_id!r} has no concept {concept_id}")
        await self.lane.call(self.lane.tracker.remove_concept, concept_id)
        del self.concepts[concept_id]
        self.capped.pop(concept_id, None)
        self._cap_told.pop(concept_id, None)
        self.stats.forget_concept(concept_id)
        self.hub.publish(self.publisher.concepts_changed(self.concepts))

    async def add_object(
        self, *, box: BoxPrompt | None = None, points: Sequence[PointPrompt] = ()
    ) -> int:
        tracker = self.lane.tracker
        return int(await self.lane.call(lambda: tracker.add_object(box=box, points=points)))

    async def refine_object(
        self, object_id: int, *, box: BoxPrompt | None = None, points: Sequence[PointPrompt] = ()
    ) -> None:
        tracker = self.lane.tracker
        await self.lane.call(lambda: tracker.refine_object(object_id, box=box, points=points))

    async def remove_object(self, object_id: int) -> None:
        await self.lane.call(self.lane.tracker.remove_object, object_id)

    # --- stages -------------------------------------------------------------------------
    async def _ingest(self) -> None:
        self._ingest_running = True
        try:
            if self._stopping:
                return
            async for frame in self.source:
                if not self._started:
                    self._start(self.source.info)
                for sink in self.frame_sinks:
                    sink.offer_frame(frame)
                await self.lane.submit(frame)  # files: waits for room; a stop here loses this frame
                self.stats.frame_in()
        except SourceError as error:
            self._fail(error, code="source")
        finally:
            self.lane.end_input()
            await self.source.aclose()

    def _start(self, info: SourceInfo | None) -> None:
        self._started = True
        live = self.lane.settle(info.live if info is not None else False)
        for sink in self.frame_sinks:
            sink.stream_started(info, live)
        self._set_state(StreamState.LIVE)
        if info is not None:
            self.hub.publish(self.publisher.stream_started(info))

    async def _publish(self) -> None:
        try:
            async for outcome in self.lane:
                if isinstance(outcome, Inferred):
                    self._publish_frame(outcome)
                elif isinstance(outcome, Finished):
                    self._publish_ended(outcome.ended)
        except Exception as error:  # the model failed on this stream: fail it, keep the engine
            self._fail(error, code="model")
            self.stop()
        finally:
            for sink in self.frame_sinks:
                sink.end_input()
            if self.state is not StreamState.FAILED:
                self.state = StreamState.ENDED
            self._published_all.set()

    async def _run_sink(self, sink: FrameSink) -> None:
        try:
            await sink.run()
        except Exception as error:  # a bug in the sink (failed outputs are reported, not raised)
            self._fail(error, code="internal")
            self.stop()

    async def _report(self) -> None:
        self._publish_status()  # at once: a subscriber learns the stream is connecting
        while not self._published_all.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._published_all.wait(), self.status_interval_s)
            self._publish_status()

    # --- publishing helpers -------------------------------------------------------------
    def _publish_frame(self, outcome: Inferred) -> None:
        frame, track = outcome.frame, outcome.track
        for envelope in self.publisher.frame(frame, track, time.time_ns()):
            self.hub.publish(envelope)
        for sink in self.frame_sinks:
            sink.offer_result(frame, track)
        self._remember_objects(frame.seq, track)
        if track.capped:
            self._report_capped(track.capped)
        published = time.time_ns()
        self.stats.stage("queue", (outcome.picked_ns - frame.captured_ns) / 1e9)
        self.stats.stage("model", (outcome.done_ns - outcome.picked_ns) / 1e9)
        self.stats.stage("publish", (published - outcome.done_ns) / 1e9)
        self.stats.frame_out(
            (published - frame.captured_ns) / 1e9, len(track.objects), outcome.batch_size
        )

    def _publish_ended(self, ended: Sequence[ObjectEndedEvent]) -> None:
        for envelope in self.publisher.ended(ended):
            self.hub.publish(envelope)
        for event in ended:
            self.objects.pop(event.object_id, None)

    def _remember_objects(self, seq: int, track: FrameTrack) -> None:
        for event in track.ended:
            self.objects.pop(event.object_id, None)
        for obj in track.objects:
            previous = self.objects.get(obj.object_id)
            self.objects[obj.object_id] = ObjectInfo(
                object_id=obj.object_id,
                concept_id=obj.concept_id,
                score=obj.score,
                box_xyxy=obj.box_xyxy,
                area=int(obj.mask.sum()),
                state=obj.state,
                first_seq=seq if previous is None else previous.first_seq,
                last_seq=seq,
            )

    def _publish_status(self) -> None:
        source = getattr(self.source, "stats", None)  # optional part of the Source contract
        source_dropped = source.frames_dropped if isinstance(source, SourceStats) else 0
        self.stats.set_drops("superseded", self.lane.superseded + source_dropped)
        self.stats.set_drops("stale", self.lane.stale)
        if isinstance(source, SourceStats):
            self.stats.set_drops("decode_error", source.decode_errors)
        for sink in self.frame_sinks:
            for cause, total in sink.drops().items():
                self.stats.set_drops(cause, total)
        self.stats.refresh_rates()
        self.hub.publish_each(
            self.stream_id,
            lambda sub: self.publisher.status(self.state.value, self.stats, sub.dropped),
        )

    def _set_state(self, state: StreamState) -> None:
        if state is self.state or self.done:
            return
        if state is StreamState.RECONNECTING:
            self.stats.reconnected()
        self.state = state
        self._publish_status()

    def _on_source_status(self, state: str) -> None:
        if state == "stalled":
            state = StreamState.GAP.value  # no packets for a while: tracks are kept (wire: gap)
        try:
            new = StreamState(state)
        except ValueError:
            return  # a source state this engine does not know: not worth failing the stream
        if new in (StreamState.ENDED, StreamState.FAILED):
            return  # the session decides these once everything is published
        self._set_state(new)

    def _report_capped(self, capped: dict[int, int]) -> None:
        """Detections that met a cap: counted always, told (log + Error event) on the first
        frame and then at most every `CAP_REPORT_EVERY_S` per concept, with the running total."""
        now = time.monotonic()
        for concept_id, count in capped.items():
            self.capped[concept_id] = self.capped.get(concept_id, 0) + count
            self.stats.capped_detections(concept_id, count)
            told = self._cap_told.get(concept_id)
            if told is not None and now - told < CAP_REPORT_EVERY_S:
                continue
            self._cap_told[concept_id] = now
            message = self._capped_message(concept_id)
            log.warning("stream %s: %s", self.stream_id, message)
            self.hub.publish(self.publisher.error("overloaded", message))

    def _capped_message(self, concept_id: int) -> str:
        concept = self.concepts.get(concept_id)
        name = f"concept {concept_id}" + (
            f" ({concept.text!r})" if concept and concept.text else ""
        )
        cap = concept.max_objects if concept is not None else None
        held = sum(1 for o in self.objects.values() if o.concept_id == concept_id)
        which = (
            f"its cap of {cap} objects" if cap is not None and held >= cap
            else f"the stream's cap of {self.limits.objects_per_stream} objects"
        )  # fmt: skip
        return (
            f"{name} is at {which}: {self.capped[concept_id]} detections not tracked so far "
            "(raise max_objects or the thresholds)"
        )

    def _on_source_note(self, note: SourceNote) -> None:
        """A network source's attempt: the failed ones become `Error` events (source_failed); the
        stream goes on (the source logged the line)."""
        if note.failed and not self.done:
            self.hub.publish(self.publisher.error("source", note.message))

    def _output_failed(self, error: OutputError) -> None:
        """One output stopped (it never wrote an unredacted frame); events and the others go on."""
        self.output_errors.append(error)
        log.warning("stream %s: output stopped, the stream goes on: %s", self.stream_id, error)
        self.hub.publish(self.publisher.error("internal", str(error)))

    def _fail(self, error: BaseException, *, code: str) -> None:
        if self.error is None:
            self.error = error
            self.hub.publish(self.publisher.error(code, str(error)))
        self.state = StreamState.FAILED
