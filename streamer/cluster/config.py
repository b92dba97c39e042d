"""The cluster's configuration: how many workers, what each runs, where events and state go."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from streamer.cluster.capacity import Capacity, capacity_for
from streamer.launch import ModelChoice


@dataclass(frozen=True)
class ClusterConfig:
    nats_url: str = "nats://127.0.0.1:4222"  # workers publish events here; the API relays them
    nats_token: str | None = dataclasses.field(default=None, repr=False)
    workers: int | None = None  # None: one per GPU the Ray cluster has (device cuda)
    device: str = "cpu"  # what each worker runs its model on ("cuda": Ray picks its GPU)
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 1.0  # with device cuda; 0.5 puts two workers on one GPU
    model: ModelChoice | None = None  # None: the embedded model on `device`
    tracker: str | None = None  # "module:callable" tracker factory instead of a model (tests)
    capacity: Capacity | None = None  # None: the table's row for the model and device
    state_url: str | None = None  # the engine's per-stream state store, passed to every worker
    events_stream: str = "SAM3_EVENTS"
    namespace: str = "sam3-streamer"  # the Ray namespace of the worker actors
    poll_interval_s: float = 0.5
    call_timeout_s: float = 10.0
    miss_limit: int = 3  # polls in a row without an answer before a worker counts as dead
    drain_s: float = 2.0  # a stream that moves or stops finishes its queued frames this long
    start_timeout_s: float = 120.0  # every worker up (its model loaded) within this
    status_interval_s: float = 1.0

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.poll_interval_s <= 0 or self.call_timeout_s <= 0 or self.miss_limit < 1:
            raise ValueError("poll_interval_s and call_timeout_s must be > 0, miss_limit >= 1")

    def worker_capacity(self) -> Capacity:
        if self.capacity is not None:
            return self.capacity
        return capacity_for(self.model.name if self.model else "embedded", self.device)


CLUSTER_CONFIGS: dict[str, ClusterConfig] = {
    "default": ClusterConfig(),
    # two CPU workers sharing one core, a scripted-size budget, fast polls: tests on 2 cores
    "tiny": ClusterConfig(
        workers=2,
        cpus_per_worker=0.5,
        model=ModelChoice("tiny", None, "cpu"),
        capacity=Capacity(100.0, 4.0, max_streams=2, origin="tiny test budget"),
        poll_interval_s=0.2,
        call_timeout_s=20.0,
        drain_s=0.5,
        status_interval_s=0.2,
    ),  # fmt: skip
}
