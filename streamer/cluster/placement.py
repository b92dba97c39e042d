"""Where a new stream goes: the live, undrained worker with the most room left (pure policy).

A worker has room for a stream when it runs fewer than `max_streams` streams and its measured
load plus the stream's load stays within its capacity (streamer/cluster/capacity.py). Among those,
the one with the lowest load fraction after placement wins; ties go to the name. When none has
room, `NoRoom` says, worker by worker, which limit refused it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from streamer.host import HostFull


@dataclass(frozen=True)
class WorkerLoad:
    """A worker as the placement policy sees it."""

    name: str
    load: float  # object-frames per second, measured (guessed for streams not measured yet)
    capacity: float
    streams: int
    max_streams: int
    alive: bool = True
    draining: bool = False


class NoRoom(HostFull):
    """No worker can take the stream; the message lists each worker's refusing limit."""


def refusal(worker: WorkerLoad, demand: float) -> tuple[str, str] | None:
    """(limit, reason) when `worker` cannot take a stream asking `demand`; None when it can."""
    if not worker.alive:
        return "alive", f"{worker.name} is down"
    if worker.draining:
        return "draining", f"{worker.name} is draining"
    if worker.streams >= worker.max_streams:
        return (
            "max_streams",
            f"{worker.name} runs {worker.streams} of {worker.max_streams} streams (max_streams)",
        )
    if worker.load + demand > worker.capacity:
        return "capacity", (
            f"{worker.name} carries {worker.load:.0f} of {worker.capacity:.0f} object-frames/s "
            f"(capacity)"
        )
    return None


def choose(
    workers: Sequence[WorkerLoad],
    demand: float,
    *,
    stream_id: str,
    exclude: frozenset[str] = frozenset(),
) -> str:
    """The name of the worker to place `stream_id` on (module docstring); raises NoRoom."""
    fits = [w for w in workers if w.name not in exclude and refusal(w, demand) is None]
    if fits:
        best = min(fits, key=lambda w: ((w.load + demand) / w.capacity, w.name))
        return best.name
    candidates = [w for w in workers if w.name not in exclude]
    if not candidates:
        raise NoRoom(f"no worker to place stream {stream_id!r} on", limit="no_workers")
    reasons = [r for w in candidates if (r := refusal(w, demand)) is not None]
    limits = {limit for limit, _ in reasons}
    limit = "capacity" if "capacity" in limits else sorted(limits)[0]
    listed = "; ".join(reason for _, reason in reasons)
    raise NoRoom(
        f"no worker has room for stream {stream_id!r} (about {demand:.0f} object-frames/s): "
        f"{listed}",
        limit=limit,
    )
