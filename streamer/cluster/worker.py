"""The worker: one long-lived Ray actor per GPU (or CPU slot) running the ordinary Engine.

The actor holds one `streamer.engine.Engine` (its inference worker batches the backbone across
all of the actor's streams, as in one process) whose events go to NATS JetStream through the
engine's own NATS sink; the API process relays them to its subscribers. Frames never cross Ray:
each worker opens its streams' sources itself. Only control calls do (add, remove, edit, status),
and each answers with plain values: `("ok", value)`, or `(kind, message)` for a refusal the
controller turns into the local exception (`full`, `source`, `invalid`, `missing`).

The engine starts on the first call (the model loads off the event loop) inside the actor's one
root task, which lives until `close()`. A restarted actor (Ray re-runs the constructor) starts
empty under a new `incarnation`: that is how the controller tells a restart it did not see.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ray

from streamer.cluster.capacity import Capacity
from streamer.cluster.report import StreamReport
from streamer.engine import Engine, EngineConfig, StreamNotFound, StreamSpec
from streamer.inference import StreamTracker
from streamer.launch import ModelChoice
from streamer.sinks.nats import NatsConfig
from streamer.sources.base import SourceError

log = logging.getLogger(__name__)

Answer = tuple[Any, ...]  # ("ok", value) or (refusal kind, message)
EDITS = ("add_concept", "remove_concept", "add_object", "refine_object", "remove_object")


@dataclass(frozen=True)
class WorkerConfig:
    name: str
    capacity: Capacity
    nats_url: str
    model: ModelChoice | None = None  # the model to load, as the CLI's --model/--device say
    tracker: str | None = None  # or "module:callable", a tracker factory (tests: a scripted one)
    device: str = "cpu"
    events_stream: str = "SAM3_EVENTS"  # the JetStream stream the engine's NATS sink fills
    nats_token: str | None = dataclasses.field(default=None, repr=False)
    state_url: str | None = None  # durable per-stream state, when the engine supports it
    status_interval_s: float = 1.0

    def engine_config(self) -> EngineConfig:
        nats = NatsConfig(url=self.nats_url, token=self.nats_token, stream=self.events_stream)
        extra: dict[str, Any] = {}
        if self.state_url is not None:
            if "state_url" in {f.name for f in dataclasses.fields(EngineConfig)}:
                extra["state_url"] = self.state_url
            else:
                log.info("%s: this engine keeps no per-stream state (no EngineConfig.state_url); "
                            "a re-placed stream starts afresh", self.name)  # fmt: skip
        return EngineConfig(
            device=self.device, max_streams=self.capacity.max_streams,
            status_interval_s=self.status_interval_s, nats=nats, **extra,
        )  # fmt: skip


def tracker_factory(config: WorkerConfig) -> Callable[[], StreamTracker]:
    """The worker's per-stream tracker factory: the named callable, or the model, loaded once."""
    if config.tracker is not None:
        module, _, attr = config.tracker.partition(":")
        factory: Callable[[], StreamTracker] = getattr(importlib.import_module(module), attr)
        return factory
    from streamer.launch import load_tracker_factory

    choice = config.model or ModelChoice("embedded", None, config.device)
    factory, described = load_tracker_factory(choice)
    log.info("%s: %s", config.name, described)
    return factory


class StreamWorker:
    """The actor's body (module docstring); `remote_worker()` is its Ray actor class."""

    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self.incarnation = uuid.uuid4().hex[:12]
        self._engine: Engine | None = None
        self._lock: asyncio.Lock | None = None
        self._stop: asyncio.Event | None = None
        self._root: asyncio.Task[None] | None = None
        self._started: dict[str, float] = {}  # stream id -> monotonic time it was added

    async def status(self) -> dict[str, Any]:
        engine = await self._running()
        now = time.monotonic()
        streams = {
            sid: StreamReport.of(s, now - self._started.get(sid, now))
            for sid, s in engine.sessions.items()
        }
        return {"name": self.config.name, "incarnation": self.incarnation,
                "device": self.config.device, "gpu": _gpu_name(self.config.device), "pid": os.getpid(),
                "streams": streams}  # fmt: skip

    async def add_stream(self, spec: StreamSpec) -> Answer:
        engine = await self._running()
        capacity = self.config.capacity
        running = [s for s in engine.sessions.values() if s.state.value not in ("ended", "failed")]
        if len(running) >= capacity.max_streams:
            return ("full", f"{self.config.name} runs {len(running)} of {capacity.max_streams} "
                            "streams (max_streams)")  # fmt: skip
        load = sum(capacity.load(s.stats.fps_in.per_second(), s.stats.objects) for s in running)
        if load + capacity.guess() > capacity.object_frames_per_s:
            return ("full", f"{self.config.name} carries {load:.0f} of "
                            f"{capacity.object_frames_per_s:.0f} object-frames/s (capacity)")  # fmt: skip
        old = spec.stream_id
        if old is not None and old in engine.sessions:  # an old run of it (ended or failed)
            await engine.remove_stream(old, drain_s=0)
        try:
            session = await engine.add_stream(spec)
        except SourceError as error:
            return ("source", str(error))
        except ValueError as error:
            return ("invalid", str(error))
        self._started[session.stream_id] = time.monotonic()
        return ("ok", StreamReport.of(session, 0.0))

    async def remove_stream(self, stream_id: str, drain_s: float | None = None) -> Answer:
        engine = await self._running()
        try:
            await engine.remove_stream(stream_id, drain_s=drain_s)
        except StreamNotFound as error:
            return ("missing", str(error))
        self._started.pop(stream_id, None)
        return ("ok", None)

    async def edit(
        self, stream_id: str, op: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Answer:
        """One prompt edit of one stream (Session.add_concept, ... by name)."""
        if op not in EDITS:
            return ("invalid", f"unknown edit {op!r}; known: {', '.join(EDITS)}")
        engine = await self._running()
        try:
            result = await getattr(engine.get(stream_id), op)(*args, **kwargs)
        except KeyError as error:
            return ("missing", str(error.args[0]) if error.args else "not found")
        except ValueError as error:
            return ("invalid", str(error))
        return ("ok", result)

    async def close(self) -> None:
        """Stop every stream (drained) and the engine; the actor can then be killed."""
        if self._stop is not None and self._root is not None:
            self._stop.set()
            await self._root

    # --- internals ----------------------------------------------------------------------
    async def _running(self) -> Engine:
        if self._engine is not None:
            return self._engine
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._engine is None:
                factory = await asyncio.to_thread(tracker_factory, self.config)
                ready: asyncio.Future[Engine] = asyncio.get_running_loop().create_future()
                self._stop = asyncio.Event()
                # The actor has no main coroutine: this root task owns the engine's TaskGroup.
                self._root = asyncio.create_task(self._live(factory, ready), name="engine")
                self._engine = await ready
        return self._engine

    async def _live(
        self, factory: Callable[[], StreamTracker], ready: asyncio.Future[Engine]
    ) -> None:
        assert self._stop is not None
        try:
            async with Engine(factory, config=self.config.engine_config()) as engine:
                ready.set_result(engine)
                await self._stop.wait()
        except BaseException as error:
            if not ready.done():
                ready.set_exception(error)
            raise


def _gpu_name(device: str) -> str | None:
    if not device.startswith("cuda"):
        return None
    import torch

    return str(torch.cuda.get_device_name(torch.device(device)))


def remote_worker(config: WorkerConfig, *, num_cpus: float, num_gpus: float, namespace: str) -> Any:
    """Start one worker actor: restarted by Ray whenever it dies (the controller re-places its
    streams meanwhile); calls are never retried (a retried add could start a stream twice)."""
    actor = ray.remote(StreamWorker)
    return actor.options(
        name=f"sam3-streamer-{config.name}", namespace=namespace, num_cpus=num_cpus,
        num_gpus=num_gpus, max_restarts=-1, max_task_retries=0, max_concurrency=64,
    ).remote(config)  # fmt: skip
