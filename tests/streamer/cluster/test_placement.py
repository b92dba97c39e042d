"""The placement policy and the capacity model, pure (no Ray)."""

from __future__ import annotations

import pytest

from streamer.cluster.capacity import TABLE, Capacity, capacity_for
from streamer.cluster.placement import NoRoom, WorkerLoad, choose


def worker(name: str, load: float = 0.0, streams: int = 0, **kw: object) -> WorkerLoad:
    return WorkerLoad(name, load, 100.0, streams, 2, **kw)  # type: ignore[arg-type]


def test_load_is_fps_times_frame_cost_plus_objects() -> None:
    capacity = Capacity(100.0, 4.0)
    assert capacity.load(15, 1) == 75.0 and capacity.load(10, 6) == 100.0
    assert capacity.guess() == 75.0  # 15 fps, 1 object, until measured


def test_the_table_reproduces_its_sources() -> None:
    sam31 = TABLE[("sam3.1", "h100")]  # Meta's curve: 33.8 fps at 1 object, 11.5 at 128
    assert sam31.load(33.8, 1) == pytest.approx(sam31.object_frames_per_s, rel=0.02)
    assert sam31.load(11.5, 128) == pytest.approx(sam31.object_frames_per_s, rel=0.02)
    ours = TABLE[("sam3", "h100")]  # bench/RESULTS.md: 1.8 fps at 1 object, 1.4 at 10
    assert ours.load(1.8, 1) == pytest.approx(ours.object_frames_per_s, rel=0.02)
    assert ours.load(1.4, 10) == pytest.approx(ours.object_frames_per_s, rel=0.02)
    assert capacity_for("sam3", "cuda:0", "NVIDIA H100 80GB HBM3") is ours
    assert capacity_for("sam3", "cuda", "NVIDIA L4") is ours  # unknown GPU: its model's H100 row
    assert capacity_for("embedded", "cpu") is TABLE[("embedded", "cpu")]


def test_the_worker_with_most_room_wins_and_ties_go_to_the_name() -> None:
    assert choose([worker("w0", 50), worker("w1", 10)], 20, stream_id="s") == "w1"
    assert choose([worker("w1"), worker("w0")], 20, stream_id="s") == "w0"
    assert (
        choose([worker("w0"), worker("w1")], 20, stream_id="s", exclude=frozenset({"w0"})) == "w1"
    )


def test_no_room_names_every_worker_s_limit() -> None:
    workers = [worker("w0", 90), worker("w1", 0, streams=2), worker("w2", draining=True),
               worker("w3", alive=False)]  # fmt: skip
    with pytest.raises(NoRoom) as refused:
        choose(workers, 20, stream_id="cam")
    message = str(refused.value)
    assert message.startswith("no worker has room for stream 'cam' (about 20 object-frames/s)")
    assert "w0 carries 90 of 100 object-frames/s (capacity)" in message
    assert "w1 runs 2 of 2 streams (max_streams)" in message
    assert "w2 is draining" in message and "w3 is down" in message
    assert refused.value.limit == "capacity"
    with pytest.raises(NoRoom, match="no worker to place stream 'cam' on"):
        choose([], 20, stream_id="cam")


def test_a_bad_capacity_is_one_sentence() -> None:
    with pytest.raises(ValueError, match="object_frames_per_s > 0"):
        Capacity(0.0, 4.0)
