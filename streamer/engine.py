"""The engine: many stream sessions, one inference worker, one event hub, one TaskGroup.

    async with Engine(tracker_factory, config=EngineConfig()) as engine:
        session = await engine.add_stream(StreamSpec("rtsp://cam/1", concepts=(Concept("person"),)))
        async for envelope in engine.hub.subscribe(session.stream_id): ...

Every task (worker loop, one per session, event log) belongs to the engine's TaskGroup. A stream
that fails (bad URL, model error on its frames) is marked failed and publishes an `Error` event;
the other streams and the engine go on. Shutdown is ordered: stop every source -> let sessions
drain within `drain_timeout_s` -> cancel what is left -> close the hub (subscribers and the event
log see the end) -> stop the worker.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model.types import Concept
from streamer.channels import Overflow
from streamer.inference import InferenceWorker, LanePolicy, StreamTracker
from streamer.limits import DEFAULT, Limits
from streamer.metrics import Metrics, StreamStats
from streamer.outputs.base import OutputError
from streamer.publish import EventBuilder
from streamer.session import FrameSink, Session, StreamState
from streamer.sinks.eventlog import write_event_log
from streamer.sinks.fanout import Hub
from streamer.sinks.nats import NatsConfig, NatsSink
from streamer.sinks.redaction import RedactionSink, RedactionSpec
from streamer.sources.base import Source, SourceError

log = logging.getLogger(__name__)

STREAM_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class StreamSpec:
    """What to run on one stream."""

    source: str  # rtsp://..., a file path, a webcam (/dev/video0), or "synthetic"
    stream_id: str | None = None  # None: s1, s2, ...
    concepts: tuple[Concept, ...] = ()
    live: bool | None = None  # None: the source decides (cameras are live, files unless realtime)
    realtime: bool = False  # files: pace to their own frame rate (and count as live)
    loop: bool = False  # files: start again at the end
    latency_budget_s: float = 0.5  # live frames older than this when the model is free are skipped
    redaction: RedactionSpec | None = None
    # network sources: fail the stream after this many failed connection attempts in a row (at
    # start, or after a drop); None: reconnect forever (RtspConfig.max_attempts)
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1 or None, got {self.max_attempts}")


@dataclass(frozen=True)
class EngineConfig:
    device: str = "cpu"
    max_batch: int = 8  # frames of different streams per model call
    max_streams: int = 16
    status_interval_s: float = 1.0
    drain_timeout_s: float = 5.0  # graceful stop: time for queued frames to finish
    event_log: Path | None = None  # every event of every stream, as a .msgpack log
    event_log_queue: int = 8192  # events the log may fall behind before losing its oldest
    nats: NatsConfig | None = None  # also publish every stream's events to NATS JetStream
    engine_name: str = "sam3-streamer"
    limits: Limits = DEFAULT  # thresholds and object caps every stream and concept is held to


class StreamNotFound(KeyError):
    def __str__(self) -> str:
        return f"no stream {self.args[0]!r}"


SourceFactory = Callable[[StreamSpec, str], Source]
RedactionFactory = Callable[[RedactionSpec, Mapping[int, Concept]], FrameSink]
# Asked for every new stream (spec, stream id, the session's live concept table): an extra frame
# sink for it, or None. The WebRTC gateway's WHEP egress registers one (streamer/webrtc).
FrameTap = Callable[[StreamSpec, str, Mapping[int, Concept]], FrameSink | None]


def open_spec_source(spec: StreamSpec, stream_id: str) -> Source:
    """Default source factory: streamer.sources.open_source with the spec's options."""
    from streamer.sources import RtspConfig, open_source

    rtsp = RtspConfig(max_attempts=spec.max_attempts)
    return open_source(
        spec.source, stream_id=stream_id, realtime=spec.realtime, loop=spec.loop, rtsp=rtsp
    )


class Engine:
    """Owns sessions, the worker, the hub and metrics (see module docstring)."""

    def __init__(
        self,
        tracker_factory: Callable[[], StreamTracker],
        *,
        config: EngineConfig = EngineConfig(),
        source_factory: SourceFactory = open_spec_source,
        redaction_factory: RedactionFactory | None = None,
    ) -> None:
        self.config = config
        self.hub = Hub()
        self.metrics = Metrics()
        self.worker = InferenceWorker(device=config.device, max_batch=config.max_batch)
        self._tracker_factory = tracker_factory
        self._source_factory = source_factory
        self._redaction_factory = redaction_factory or open_redaction_sink
        self._sessions: dict[str, Session] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._tg = asyncio.TaskGroup()
        self._worker_task: asyncio.Task[None] | None = None
        self._log_task: asyncio.Task[None] | None = None
        self._nats_task: asyncio.Task[None] | None = None
        self._next_id = 1
        self._closing = False
        self.errors: dict[str, BaseException] = {}  # stream id -> what ended it
        self.frame_taps: list[FrameTap] = []  # applied to streams added after registration

    async def __aenter__(self) -> Engine:
        await self._tg.__aenter__()
        self._worker_task = self._tg.create_task(self.worker.run(), name="inference-worker")
        if self.config.event_log is not None:
            subscription = self.hub.subscribe(
                maxsize=self.config.event_log_queue, overflow=Overflow.DROP_OLDEST
            )
            self._log_task = self._tg.create_task(
                write_event_log(subscription, self.config.event_log), name="event-log"
            )
        if self.config.nats is not None:
            nats = self.config.nats
            sink = NatsSink(
                self.hub.subscribe(maxsize=nats.queue, overflow=Overflow.DROP_OLDEST), nats
            )
            self._nats_task = self._tg.create_task(sink.run(), name="nats-sink")
        return self

    async def __aexit__(self, *exc: Any) -> None:
        # Shut down first, then close the TaskGroup as if the body had ended normally: an error
        # raised in the body then reaches the caller as itself, not wrapped in an ExceptionGroup.
        await self.shutdown()
        await self._tg.__aexit__(None, None, None)

    # --- streams ------------------------------------------------------------------------
    @property
    def sessions(self) -> Mapping[str, Session]:
        return self._sessions

    def get(self, stream_id: str) -> Session:
        try:
            return self._sessions[stream_id]
        except KeyError:
            raise StreamNotFound(stream_id) from None

    async def add_stream(
        self,
        spec: StreamSpec,
        *,
        frame_sinks: Sequence[FrameSink] = (),
        source: Source | None = None,
    ) -> Session:
        """Open the source and start the stream's pipeline. Raises ValueError or SourceError
        (a one-line message) when the spec cannot run; nothing is left behind then.
        `frame_sinks` are extra in-process consumers of frames and their results; `source`, when
        given, is used instead of the source factory's (a WHIP publisher's stream)."""
        if self._closing:
            raise RuntimeError("the engine is shutting down")
        stream_id = self._claim_id(spec.stream_id)
        if len(self._sessions) >= self.config.max_streams:
            raise ValueError(f"at most {self.config.max_streams} streams per engine")
        concepts: dict[int, Concept] = {}  # the session's table, shared with its redaction sink
        sinks = list(frame_sinks)
        if spec.redaction is not None:
            sinks.append(self._redaction_factory(spec.redaction, concepts))
        sinks += [s for tap in self.frame_taps if (s := tap(spec, stream_id, concepts)) is not None]
        if source is None:  # opening may read a file's header or resolve a host: off the loop
            source = await asyncio.to_thread(self._source_factory, spec, stream_id)
        tracker = await self.worker.call(self._tracker_factory)
        limit = getattr(tracker, "limit_objects", None)  # VideoTracker has it; test fakes need not
        if limit is not None:
            limit(self.config.limits.objects_per_stream)
        lane = self.worker.open_lane(
            stream_id, tracker, LanePolicy(spec.live, spec.latency_budget_s)
        )
        stats = StreamStats(stream_id, self.metrics)
        session = Session(
            stream_id, source=source, lane=lane, publisher=EventBuilder(stream_id), hub=self.hub,
            stats=stats, frame_sinks=sinks, concepts=concepts,
            status_interval_s=self.config.status_interval_s, limits=self.config.limits,
        )  # fmt: skip
        try:
            for concept in spec.concepts:
                await session.add_concept(concept)
        except Exception:
            self.worker.close_lane(stream_id)
            await source.aclose()
            raise
        self._sessions[stream_id] = session
        self._tasks[stream_id] = self._tg.create_task(
            self._run(session), name=f"session:{stream_id}"
        )
        return session

    async def remove_stream(self, stream_id: str, *, drain_s: float | None = None) -> None:
        """Stop a stream gracefully (drain within `drain_s`), then forget it and its metrics."""
        session = self.get(stream_id)
        session.stop()
        task = self._tasks.get(stream_id)
        if task is not None:
            await _drain_or_cancel(
                [task], self.config.drain_timeout_s if drain_s is None else drain_s
            )
        self._sessions.pop(stream_id, None)
        self._tasks.pop(stream_id, None)
        self.metrics.forget_stream(stream_id)

    async def join(self) -> None:
        """Wait until every stream has ended (files at their end, live ones when stopped)."""
        while self._tasks:
            await asyncio.wait(list(self._tasks.values()))
            if all(task.done() for task in self._tasks.values()):
                return

    async def shutdown(self, drain_s: float | None = None) -> None:
        """Ordered stop (module docstring). Idempotent."""
        if self._closing:
            return
        self._closing = True
        for session in self._sessions.values():
            session.stop()
        drain = self.config.drain_timeout_s if drain_s is None else drain_s
        await _drain_or_cancel(list(self._tasks.values()), drain)
        self.hub.close()
        if self._log_task is not None:
            await _drain_or_cancel([self._log_task], drain)
        if self._nats_task is not None:
            await _drain_or_cancel([self._nats_task], drain)
        if self._worker_task is not None:
            await _drain_or_cancel([self._worker_task], 0)

    # --- internals ----------------------------------------------------------------------
    async def _run(self, session: Session) -> None:
        try:
            await session.run()
        except (SourceError, OutputError) as error:  # one clear line each: no traceback
            log.warning("stream %s failed: %s", session.stream_id, error)
            self.errors[session.stream_id] = error
        except Exception as error:  # a model or engine bug on this stream: the others go on
            log.error("stream %s failed", session.stream_id, exc_info=error)
            self.errors[session.stream_id] = error
            session.state = StreamState.FAILED
        finally:
            self.worker.close_lane(session.stream_id)

    def _claim_id(self, wanted: str | None) -> str:
        if wanted is not None:
            if not STREAM_ID.match(wanted):
                raise ValueError(
                    f"stream id {wanted!r} must be 1-64 letters, digits, '_', '.' or '-'"
                )
            if wanted in self._sessions:
                raise ValueError(f"stream {wanted!r} already exists")
            return wanted
        while f"s{self._next_id}" in self._sessions:
            self._next_id += 1
        stream_id = f"s{self._next_id}"
        self._next_id += 1
        return stream_id


async def _drain_or_cancel(tasks: list[asyncio.Task[None]], drain_s: float) -> None:
    """Wait up to `drain_s` for `tasks`, then cancel the rest and wait for them to finish."""
    pending = {task for task in tasks if not task.done()}
    if pending and drain_s > 0:
        _, pending = await asyncio.wait(pending, timeout=drain_s)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)


def open_redaction_sink(spec: RedactionSpec, concepts: Mapping[int, Concept]) -> FrameSink:
    """Default redaction sink, sending to streamer/outputs (a bad target is a ValueError)."""
    from streamer.outputs import OutputError, open_output

    try:
        outputs = [open_output(target) for target in spec.outputs]
    except OutputError as error:
        raise ValueError(str(error)) from None
    return RedactionSink(spec, concepts, outputs)


__all__ = ["Engine", "EngineConfig", "StreamNotFound", "StreamSpec"]
