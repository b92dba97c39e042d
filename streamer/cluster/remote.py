"""A stream that runs on a worker, as the API sees it (a `streamer.host.StreamView`).

Reads come from the stream's last report (at most one poll interval old); edits go to the worker
that runs it, through the controller. `worker` names that worker, None while the stream waits for
one (a failover with no room yet).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from model.types import BoxPrompt, Concept, PointPrompt
from streamer.cluster.report import StreamReport
from streamer.session import ObjectInfo, StreamState
from streamer.types import SourceInfo

if TYPE_CHECKING:
    from streamer.cluster.controller import Controller


@dataclass(frozen=True)
class Figure:
    """A rate the worker measured (fps), read as the local engine's rolling rates are."""

    value: float

    def per_second(self) -> float:
        return self.value


@dataclass(frozen=True)
class Percentiles:
    """The latency percentiles a worker reports (50 and 99)."""

    values: Mapping[float, float] = field(default_factory=dict)

    def percentile(self, q: float) -> float:
        if q not in self.values:
            raise ValueError(f"a worker reports latency percentiles {sorted(self.values)}, not {q}")
        return self.values[q]


@dataclass(frozen=True)
class RemoteStats:
    frames_in: int
    frames_out: int
    fps_in: Figure
    fps_out: Figure
    latency_ms: Percentiles
    drops: Mapping[str, int]


@dataclass(frozen=True)
class RemoteSource:
    info: SourceInfo | None


class RemoteError(Exception):
    """A stream's error as its worker reported it (the text only)."""


class RemoteSession:
    """One placed (or waiting) stream; see the module docstring."""

    def __init__(self, controller: Controller, stream_id: str) -> None:
        self._controller = controller
        self.stream_id = stream_id

    @property
    def _report(self) -> StreamReport | None:
        return self._controller.report(self.stream_id)

    @property
    def worker(self) -> str | None:
        return self._controller.worker_of(self.stream_id)

    @property
    def state(self) -> StreamState:
        report = self._report
        return StreamState(report.state) if report is not None else StreamState.CONNECTING

    @property
    def error(self) -> BaseException | None:
        report = self._report
        message = report.error if report is not None else self._controller.waiting(self.stream_id)
        return RemoteError(message) if message else None

    @property
    def source(self) -> RemoteSource:
        report = self._report
        return RemoteSource(report.source if report is not None else None)

    @property
    def stats(self) -> RemoteStats:
        r = self._report or StreamReport(self.stream_id, StreamState.CONNECTING.value)
        return RemoteStats(
            r.frames_in, r.frames_out, Figure(r.fps_in), Figure(r.fps_out),
            Percentiles({50: r.latency_ms_p50, 99: r.latency_ms_p99}), r.drops,
        )  # fmt: skip

    @property
    def concepts(self) -> Mapping[int, Concept]:
        report = self._report
        return report.concepts if report is not None else {}

    @property
    def objects(self) -> Mapping[int, ObjectInfo]:
        report = self._report
        return report.objects if report is not None else {}

    async def add_concept(self, concept: Concept) -> int:
        return int(await self._controller.edit(self.stream_id, "add_concept", concept))

    async def remove_concept(self, concept_id: int) -> None:
        await self._controller.edit(self.stream_id, "remove_concept", concept_id)

    async def add_object(
        self, *, box: BoxPrompt | None = None, points: Sequence[PointPrompt] = ()
    ) -> int:
        answer = await self._controller.edit(
            self.stream_id, "add_object", box=box, points=tuple(points)
        )
        return int(answer)

    async def refine_object(
        self, object_id: int, *, box: BoxPrompt | None = None, points: Sequence[PointPrompt] = ()
    ) -> None:
        await self._controller.edit(
            self.stream_id, "refine_object", object_id, box=box, points=tuple(points)
        )

    async def remove_object(self, object_id: int) -> None:
        await self._controller.edit(self.stream_id, "remove_object", object_id)
