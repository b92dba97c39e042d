"""`ClusterHost`: the API's stream host (streamer/host.py) over Ray worker actors.

    ray.init(...)                                    # or streamer/cluster/launch.py
    async with ClusterHost(ClusterConfig(nats_url=..., workers=2)) as host:
        app = create_app(host, ApiConfig(webrtc=None))   # the same API as the local engine

It starts the workers (one Ray actor each, streamer/cluster/worker.py), waits until every one has
answered, then runs the controller's poll loop and the NATS relay in its TaskGroup. Leaving it
drains and stops every worker's streams, kills the actors and closes the hub.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import ray

from streamer.cluster.config import ClusterConfig
from streamer.cluster.controller import Controller, WorkerRecord
from streamer.cluster.metrics import ClusterMetrics
from streamer.cluster.relay import Relay
from streamer.cluster.remote import RemoteSession
from streamer.cluster.worker import WorkerConfig, remote_worker
from streamer.engine import STREAM_ID, StreamSpec
from streamer.sinks.fanout import Hub

log = logging.getLogger(__name__)


class ClusterHost:
    def __init__(self, config: ClusterConfig) -> None:
        self.config = config
        self.hub = Hub()
        self.relay = Relay(self.hub, config.nats_url, token=config.nats_token)
        self.controller = Controller(
            [], poll_interval_s=config.poll_interval_s, call_timeout_s=config.call_timeout_s,
            miss_limit=config.miss_limit, drain_s=config.drain_s,
        )  # fmt: skip
        self.metrics = ClusterMetrics(self.controller, self.relay)
        self._views: dict[str, RemoteSession] = {}
        self._next_id = 1
        self._tg = asyncio.TaskGroup()
        self._loops: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> ClusterHost:
        if not ray.is_initialized():
            raise RuntimeError("Ray is not running: call ray.init() (streamer/cluster/launch.py)")
        for record in self._start_workers():
            self.controller.workers[record.name] = record
        await self._tg.__aenter__()
        try:
            self._loops.append(self._tg.create_task(self.relay.run(), name="relay"))
            await self._until_up()
            self._loops.append(self._tg.create_task(self.controller.run(), name="controller"))
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc: Any) -> None:
        for task in self._loops:
            task.cancel()
        workers = list(self.controller.workers.values())
        await asyncio.gather(
            *(asyncio.wait_for(w.handle.close.remote(), self.config.drain_s + 5) for w in workers),
            return_exceptions=True,
        )  # fmt: skip
        for worker in workers:
            ray.kill(worker.handle, no_restart=True)
        self.hub.close()
        await self._tg.__aexit__(None, None, None)

    # --- the StreamHost interface -------------------------------------------------------
    @property
    def sessions(self) -> Mapping[str, RemoteSession]:
        return {sid: self._view(sid) for sid in self.controller.streams}

    def get(self, stream_id: str) -> RemoteSession:
        self.controller.worker_of(stream_id)  # raises StreamNotFound for an unknown id
        return self._view(stream_id)

    async def add_stream(self, spec: StreamSpec) -> RemoteSession:
        """Place a new stream; raises NoRoom (a HostFull), SourceError or ValueError."""
        stream_id = self._claim_id(spec.stream_id)
        await self.controller.place(_with_id(spec, stream_id))
        return self._view(stream_id)

    async def remove_stream(self, stream_id: str) -> None:
        await self.controller.remove(stream_id)
        self._views.pop(stream_id, None)

    # --- cluster operations (GET /v1/workers, POST /v1/workers/{name}/drain) -------------
    async def drain(self, name: str) -> dict[str, list[str]]:
        return await self.controller.drain(name)

    def workers_json(self) -> list[dict[str, Any]]:
        out = []
        for worker, load in zip(
            self.controller.workers.values(), self.controller.loads(), strict=True
        ):
            out.append({
                "worker": worker.name, "alive": worker.alive, "draining": worker.draining,
                "device": worker.device, "streams": sorted(
                    sid for sid, w in self.controller.streams.items() if w.worker == worker.name),
                "load": round(load.load, 1), "capacity": load.capacity,
                "max_streams": load.max_streams, "capacity_origin": worker.capacity.origin,
                "deaths": worker.deaths, "incarnation": worker.incarnation,
            })  # fmt: skip
        return out

    # --- internals ----------------------------------------------------------------------
    def _start_workers(self) -> list[WorkerRecord]:
        config = self.config
        count = config.workers
        if count is None:
            gpus = float(ray.cluster_resources().get("GPU", 0))  # type: ignore[no-untyped-call]
            count = int(gpus // config.gpus_per_worker) if config.device.startswith("cuda") else 0
            if count < 1:
                raise ValueError("this Ray cluster has no GPU for a worker: pass --workers N "
                                 "(CPU workers) or join a cluster with GPUs")  # fmt: skip
        capacity = config.worker_capacity()
        gpus = config.gpus_per_worker if config.device.startswith("cuda") else 0.0
        records = []
        for index in range(count):
            worker = WorkerConfig(
                name=f"w{index}", capacity=capacity, nats_url=config.nats_url,
                model=config.model, tracker=config.tracker,
                device="cuda" if gpus else config.device, events_stream=config.events_stream,
                nats_token=config.nats_token, state_url=config.state_url,
                status_interval_s=config.status_interval_s,
            )  # fmt: skip
            handle = remote_worker(
                worker, num_cpus=config.cpus_per_worker, num_gpus=gpus, namespace=config.namespace
            )
            records.append(WorkerRecord(worker.name, handle, capacity))
        return records

    async def _until_up(self) -> None:
        """Poll until every worker has answered once (models loaded) and the relay listens."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.start_timeout_s
        while (
            not all(w.alive for w in self.controller.workers.values())
            or not self.relay.connected.is_set()
        ):
            if loop.time() > deadline:
                down = [w.name for w in self.controller.workers.values() if not w.alive]
                raise RuntimeError(
                    f"workers {down} did not start within {self.config.start_timeout_s:.0f} s"
                    if down else f"cannot reach NATS at {self.config.nats_url}"
                )  # fmt: skip
            await self.controller.poll()
            if self._loops[0].done():  # the relay failed to connect: say why
                self._loops[0].result()
            await asyncio.sleep(0.05)

    def _view(self, stream_id: str) -> RemoteSession:
        if stream_id not in self._views:
            self._views[stream_id] = RemoteSession(self.controller, stream_id)
        return self._views[stream_id]

    def _claim_id(self, wanted: str | None) -> str:
        if wanted is not None:
            if not STREAM_ID.match(wanted) or "." in wanted:
                raise ValueError(f"stream id {wanted!r} must be 1-64 letters, digits, '_' or '-' "
                                 "(a cluster sends events on NATS subjects: no '.')")  # fmt: skip
            return wanted  # the controller refuses one that exists
        while f"s{self._next_id}" in self.controller.streams:
            self._next_id += 1
        stream_id = f"s{self._next_id}"
        self._next_id += 1
        return stream_id


def _with_id(spec: StreamSpec, stream_id: str) -> StreamSpec:
    from dataclasses import replace

    return replace(spec, stream_id=stream_id)
