"""How much one worker can carry, and how much one stream asks of it.

A stream's load is `fps x (frame_cost + objects)` object-frames per second: every frame pays a
fixed share (backbone and detector, expressed as the number of objects that would cost as much)
plus one unit per tracked object. A worker's capacity is in the same unit, read from the table
below (docs/cluster.md shows where each row comes from) or given by the operator. Until a new
stream has reported its rate, it is assumed to ask `fps_guess x (frame_cost + objects_guess)`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Capacity:
    """One worker's budget in object-frames per second (module docstring)."""

    object_frames_per_s: float
    frame_cost: float  # the per-frame fixed cost, in objects
    max_streams: int = 16  # also the worker engine's EngineConfig.max_streams
    fps_guess: float = 15.0  # a stream not yet measured is assumed to run at this rate ...
    objects_guess: float = 1.0  # ... with this many objects
    origin: str = "given"  # where the figures come from (shown by GET /v1/workers)

    def __post_init__(self) -> None:
        if self.object_frames_per_s <= 0 or self.frame_cost < 0 or self.max_streams < 1:
            raise ValueError(
                "capacity needs object_frames_per_s > 0, frame_cost >= 0 and max_streams >= 1"
            )

    def load(self, fps: float, objects: float) -> float:
        """Object-frames per second a stream at `fps` with `objects` objects asks for."""
        return fps * (self.frame_cost + objects)

    def guess(self) -> float:
        """The load assumed for a stream that has not reported yet."""
        return self.load(self.fps_guess, self.objects_guess)


# (model, device kind) -> capacity. Per-frame cost a + b x objects from two measured points:
# frame_cost = a / b, object_frames_per_s = 1 / b (docs/cluster.md, "Capacity table").
TABLE: dict[tuple[str, str], Capacity] = {
    # Meta's SAM 3.1 curve on one H100: 33.8 fps at 1 object, 11.5 at 128 (anchors-2026-12 §5)
    ("sam3.1", "h100"): Capacity(
        2222.0, 64.0, max_streams=64, origin="SAM 3.1, H100, Meta's curve"
    ),
    # ours, bench/RESULTS.md (bef8da1): 556 ms at 1 object, 711 ms at 10 objects on an H100
    ("sam3", "h100"): Capacity(58.0, 31.0, max_streams=4, origin="sam3, H100, bench/RESULTS.md"),
    # the embedded model on one 2-thread CPU slot: 16.2 fps with 4.6 objects (bench/RESULTS.md);
    # the split of that cost between frame and objects is an estimate (frame_cost 4)
    ("embedded", "cpu"): Capacity(
        139.0, 4.0, max_streams=4, origin="embedded, 2-core CPU, estimate"
    ),
    # random weights: plumbing only; the figure is the embedded model's
    ("tiny", "cpu"): Capacity(139.0, 4.0, max_streams=4, origin="tiny, CPU, as embedded"),
}


def device_kind(device: str, gpu_name: str | None = None) -> str:
    """'cpu', or the GPU's family as the table names it ('h100'; 'gpu' for others)."""
    if not device.startswith("cuda"):
        return "cpu"
    name = (gpu_name or "").lower()
    return "h100" if "h100" in name or "h200" in name else "gpu"


def capacity_for(model: str, device: str, gpu_name: str | None = None) -> Capacity:
    """The table's row for this model and device; an unknown GPU gets the H100 row of its model
    (an upper bound: the operator should measure it and pass --worker-capacity)."""
    kind = device_kind(device, gpu_name)
    if (model, kind) in TABLE:
        return TABLE[(model, kind)]
    if kind != "cpu" and (model, "h100") in TABLE:
        return TABLE[(model, "h100")]
    return TABLE[("embedded", "cpu")] if kind == "cpu" else TABLE[("sam3", "h100")]
