"""The controller: which worker runs which stream, kept true while workers come, drain and die.

It keeps the wanted streams (their specs, with the concepts added since) and one record per
worker, refreshed by polling every worker's status each `poll_interval_s`. From those it

* places a new stream on the worker with the most room (streamer/cluster/placement.py, loads
  measured as fps x (frame_cost + objects), streamer/cluster/capacity.py);
* moves every stream off a draining worker: stop it there (drained), start it elsewhere;
* re-places the streams of a worker that died: a call that fails with Ray's actor errors, a
  restart seen as a new incarnation, or `miss_limit` polls in a row without an answer. It does not
  wait for Ray to restart the actor (that can take as long as a model load); the restarted actor
  comes back empty and takes new streams.

A stream re-placed keeps its id, so its events go on on the same NATS subject (and WebSocket);
with a state store configured the engine also resumes its object IDs (docs/cluster.md). A stream
no worker has room for waits, and is placed at a later poll once one has.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ray.exceptions import RayActorError

from model.types import Concept
from streamer.cluster.capacity import Capacity
from streamer.cluster.placement import NoRoom, WorkerLoad, choose
from streamer.cluster.report import StreamReport
from streamer.engine import StreamNotFound, StreamSpec
from streamer.sources.base import SourceError

log = logging.getLogger(__name__)

SETTLE_S = 3.0  # a stream younger than this counts at least its guessed load (rates need time)


@dataclass
class WorkerRecord:
    name: str
    handle: Any  # the Ray actor handle
    capacity: Capacity
    incarnation: str | None = None
    alive: bool = False
    draining: bool = False
    misses: int = 0
    deaths: int = 0
    device: str = "cpu"
    reports: dict[str, StreamReport] = field(default_factory=dict)


@dataclass
class Wanted:
    spec: StreamSpec  # stream_id set; concepts as edited since
    worker: str | None = None
    report: StreamReport | None = None
    waiting: str | None = None  # why it has no worker now
    avoid: str | None = None  # the worker it died on: tried last (a restarted one may die again)
    placements: int = 0


class Controller:
    def __init__(
        self,
        workers: Sequence[WorkerRecord],
        *,
        poll_interval_s: float = 0.5,
        call_timeout_s: float = 10.0,
        miss_limit: int = 3,
        drain_s: float = 2.0,
    ) -> None:
        self.workers = {w.name: w for w in workers}
        self.streams: dict[str, Wanted] = {}
        self.poll_interval_s = poll_interval_s
        self.call_timeout_s = call_timeout_s
        self.miss_limit = miss_limit
        self.drain_s = drain_s
        self.failovers = 0  # streams re-placed after their worker died
        self.moves = 0  # streams moved off a draining worker
        self.refused: dict[str, int] = {}  # limit -> streams refused for it
        self._lock = asyncio.Lock()
        self.polled = asyncio.Event()  # set after each poll (tests and start-up wait on it)

    # --- what the API reads -------------------------------------------------------------
    def report(self, stream_id: str) -> StreamReport | None:
        return self._wanted(stream_id).report

    def worker_of(self, stream_id: str) -> str | None:
        return self._wanted(stream_id).worker

    def waiting(self, stream_id: str) -> str | None:
        return self._wanted(stream_id).waiting

    def loads(self) -> list[WorkerLoad]:
        return [self._load(w) for w in self.workers.values()]

    # --- what the API asks --------------------------------------------------------------
    async def place(self, spec: StreamSpec) -> None:
        """Start `spec` (its stream_id set) on the best worker; raises NoRoom, SourceError or
        ValueError with one sentence."""
        assert spec.stream_id is not None
        async with self._lock:
            if spec.stream_id in self.streams:
                raise ValueError(f"stream {spec.stream_id!r} already exists")
            wanted = Wanted(spec)
            try:
                await self._start(wanted, exclude=frozenset())
            except NoRoom as error:
                self.refused[error.limit] = self.refused.get(error.limit, 0) + 1
                raise
            self.streams[spec.stream_id] = wanted

    async def remove(self, stream_id: str) -> None:
        async with self._lock:
            wanted = self._wanted(stream_id)
            del self.streams[stream_id]
            worker = self.workers.get(wanted.worker or "")
            if worker is not None and worker.alive:
                await self._call(worker, "remove_stream", stream_id, self.drain_s)

    async def edit(self, stream_id: str, op: str, *args: Any, **kwargs: Any) -> Any:
        """One prompt edit on the worker that runs the stream; concepts are remembered, so a
        re-placed stream starts with them."""
        wanted = self._wanted(stream_id)
        worker = self.workers.get(wanted.worker or "")
        if worker is None or not worker.alive:
            raise ValueError(f"stream {stream_id!r} is waiting for a worker ({wanted.waiting}); "
                             "try again once GET /v1/streams/{id} names one")  # fmt: skip
        value = _answer(await self._call(worker, "edit", stream_id, op, args, kwargs))
        spec = wanted.spec
        if op == "add_concept":
            wanted.spec = dataclasses.replace(spec, concepts=(*spec.concepts, args[0]))
        elif op == "remove_concept" and wanted.report is not None:
            gone: Concept | None = wanted.report.concepts.get(args[0])
            kept = list(spec.concepts)
            # the worker reports the concept with the engine's defaults filled in (thresholds,
            # max_objects): match the one the spec holds by what it asks for
            same = [
                c for c in kept if gone and (c.text, c.exemplars) == (gone.text, gone.exemplars)
            ]
            if same:
                kept.remove(same[0])
            wanted.spec = dataclasses.replace(spec, concepts=tuple(kept))
        return value

    async def drain(self, name: str) -> dict[str, list[str]]:
        """Stop placing on `name` and move its streams elsewhere; returns moved and stuck ids."""
        worker = self.workers[name]
        worker.draining = True
        moved, stuck = [], []
        async with self._lock:
            for stream_id, wanted in list(self.streams.items()):
                if wanted.worker != name or (wanted.report and not wanted.report.running):
                    continue
                try:  # break before make: the old run drains and lets go of the stream first
                    choose(
                        self.loads(),
                        self._demand(wanted),
                        stream_id=stream_id,
                        exclude=frozenset({name}),
                    )
                    await self._call(worker, "remove_stream", stream_id, self.drain_s)
                    wanted.worker, wanted.report = None, None
                    await self._start(wanted, exclude=frozenset({name}))
                    moved.append(stream_id)
                    self.moves += 1
                except (NoRoom, RayActorError, SourceError, ValueError) as error:
                    wanted.waiting = str(error)
                    stuck.append(stream_id)
        return {"moved": moved, "stuck": stuck}

    def undrain(self, name: str) -> None:
        self.workers[name].draining = False

    # --- the loop -----------------------------------------------------------------------
    async def run(self) -> None:
        """Poll every worker, handle deaths, place waiting streams; forever (cancel to stop)."""
        while True:
            await self.poll()
            await asyncio.sleep(self.poll_interval_s)

    async def poll(self) -> None:
        workers = list(self.workers.values())
        answers = await asyncio.gather(*(self._status(w) for w in workers), return_exceptions=True)
        async with self._lock:
            for worker, answer in zip(workers, answers, strict=True):
                await self._take(worker, answer)
            await self._place_waiting()
        self.polled.set()

    # --- internals ----------------------------------------------------------------------
    async def _status(self, worker: WorkerRecord) -> dict[str, Any]:
        status: dict[str, Any] = await asyncio.wait_for(
            worker.handle.status.remote(), self.call_timeout_s
        )
        return status

    async def _take(self, worker: WorkerRecord, answer: dict[str, Any] | BaseException) -> None:
        if isinstance(answer, RayActorError):
            self._died(worker, f"{worker.name} died: {type(answer).__name__}")
            return
        if isinstance(answer, BaseException):  # no answer in time (or an engine error)
            worker.misses += 1
            if worker.misses >= self.miss_limit and worker.alive:
                self._died(worker, f"{worker.name} gave no status {worker.misses} times")
            return
        worker.misses = 0
        if worker.alive and worker.incarnation not in (None, answer["incarnation"]):
            self._died(worker, f"{worker.name} restarted")  # between two polls
        worker.alive, worker.incarnation = True, answer["incarnation"]
        worker.device = answer.get("gpu") or answer["device"]
        worker.reports = answer["streams"]
        for stream_id, report in worker.reports.items():
            wanted = self.streams.get(stream_id)
            if wanted is not None and wanted.worker == worker.name:
                wanted.report = report
            elif report.running:  # not ours (removed, or re-placed while it was unreachable)
                await self._call(worker, "remove_stream", stream_id, 0.0)

    def _died(self, worker: WorkerRecord, why: str) -> None:
        if not worker.alive:
            return
        log.warning("%s; re-placing its streams", why)
        worker.alive, worker.deaths, worker.reports = False, worker.deaths + 1, {}
        for wanted in self.streams.values():
            if wanted.worker == worker.name and (wanted.report is None or wanted.report.running):
                wanted.worker, wanted.report, wanted.waiting = None, None, why
                wanted.avoid = worker.name
                self.failovers += 1

    async def _place_waiting(self) -> None:
        for wanted in self.streams.values():
            if wanted.worker is None:
                avoid = frozenset({wanted.avoid}) if wanted.avoid else frozenset()
                try:
                    try:
                        await self._start(wanted, exclude=avoid)
                    except NoRoom:
                        if not avoid:
                            raise
                        await self._start(wanted, exclude=frozenset())
                except (NoRoom, RayActorError, SourceError, ValueError) as error:
                    wanted.waiting = str(error)

    async def _start(self, wanted: Wanted, *, exclude: frozenset[str]) -> None:
        """Put `wanted` on a worker; a worker that refuses (full) is skipped for the next."""
        stream_id = wanted.spec.stream_id
        assert stream_id is not None
        while True:
            name = choose(self.loads(), self._demand(wanted), stream_id=stream_id, exclude=exclude)
            try:
                answer = await self._call(self.workers[name], "add_stream", wanted.spec)
            except RayActorError:  # it died just now (and is marked so): try the next
                exclude = exclude | {name}
                continue
            if answer[0] == "full":
                log.info("%s refused %s: %s", name, stream_id, answer[1])
                exclude = exclude | {name}
                continue
            wanted.report = _answer(answer)
            wanted.worker, wanted.waiting, wanted.avoid = name, None, None
            wanted.placements += 1
            self.workers[name].reports[stream_id] = wanted.report
            return

    async def _call(self, worker: WorkerRecord, method: str, *args: Any) -> Any:
        try:
            return await asyncio.wait_for(
                getattr(worker.handle, method).remote(*args), self.call_timeout_s
            )
        except RayActorError:
            self._died(worker, f"{worker.name} died during {method}")
            raise

    def _demand(self, wanted: Wanted) -> float:
        capacity = self.workers[wanted.worker].capacity if wanted.worker else None
        capacity = capacity or next(iter(self.workers.values())).capacity
        return _stream_load(capacity, wanted.report)

    def _load(self, worker: WorkerRecord) -> WorkerLoad:
        mine = [w.report for w in self.streams.values() if w.worker == worker.name]
        running = [r for r in mine if r is None or r.running]
        load = sum(_stream_load(worker.capacity, r) for r in running)
        return WorkerLoad(
            worker.name, load, worker.capacity.object_frames_per_s, len(running),
            worker.capacity.max_streams, alive=worker.alive, draining=worker.draining,
        )  # fmt: skip

    def _wanted(self, stream_id: str) -> Wanted:
        try:
            return self.streams[stream_id]
        except KeyError:
            raise StreamNotFound(stream_id) from None


def _stream_load(capacity: Capacity, report: StreamReport | None) -> float:
    """Measured load, but at least the guess while the stream is young or not reported."""
    if report is None:
        return capacity.guess()
    measured = capacity.load(report.fps_in, len(report.objects))
    return max(measured, capacity.guess()) if report.age_s < SETTLE_S else measured


def _answer(answer: tuple[Any, ...]) -> Any:
    """A worker's ("ok", value), or its refusal raised as the local exception."""
    kind = answer[0]
    if kind == "ok":
        return answer[1]
    if kind == "source":
        raise SourceError(answer[1])
    if kind == "missing":
        raise KeyError(answer[1])
    raise ValueError(answer[1])
