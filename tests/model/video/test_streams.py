"""`side_by_side`: the detector beside the tracker on two CUDA streams, sequential elsewhere.

The CPU tests pin the fallback (plain calls in order, no CUDA API touched). The `gpu` tests check
that the side really runs on another stream, that its results are complete and intact when the
caller reads them, and that a whole tiny-model video run gives the same results with and
without the overlap.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from model.build import build_sam3
from model.sam3 import Sam3
from model.types import Concept, ConceptThresholds, FrameTrack
from model.video import streams
from model.video.streams import side_by_side
from model.video.video_tracker import VideoTracker
from tests.model.video.video_fakes import Square, render


def _no_cuda(*args: object, **kwargs: object) -> None:
    raise AssertionError("the sequential path touched the CUDA API")


@pytest.mark.parametrize(
    ("device", "overlap"), [("cpu", True), ("cpu", False), ("cuda", False), ("meta", True)]
)
def test_without_cuda_overlap_it_calls_side_then_main(
    monkeypatch: pytest.MonkeyPatch, device: str, overlap: bool
) -> None:
    monkeypatch.setattr(torch.cuda, "Stream", _no_cuda)
    monkeypatch.setattr(torch.cuda, "current_stream", _no_cuda)
    calls: list[str] = []

    def side() -> int:
        calls.append("side")
        return 1

    def main() -> str:
        calls.append("main")
        return "two"

    assert side_by_side(torch.device(device), side, main, overlap=overlap) == (1, "two")
    assert calls == ["side", "main"]


class FakeStream:
    """Stands in for `torch.cuda.Stream` where there is no GPU: logs the synchronisation."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    def wait_stream(self, other: FakeStream) -> None:
        self.log.append(f"{self.name} waits for {other.name}")


def test_cuda_protocol_side_waits_for_features_and_caller_waits_for_side(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The order of events on a CUDA device, with fake streams (the `gpu` tests run the real
    ones): side stream ordered after the current one, `side` inside it, `main` outside it, the
    current stream ordered after the side one before anything reads the side's results, and
    those results recorded on the current stream."""
    log: list[str] = []
    current, side_stream = FakeStream("current", log), FakeStream("side", log)
    active = [current]

    @contextmanager
    def use(stream: FakeStream) -> Iterator[None]:
        active.append(stream)
        yield
        active.pop()

    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: active[-1])
    monkeypatch.setattr(torch.cuda, "Stream", lambda device=None: side_stream)
    monkeypatch.setattr(torch.cuda, "stream", use)
    cuda_result = torch.zeros(2)  # stands in for a CUDA tensor of the side's result
    monkeypatch.setattr(streams, "_cuda_tensors", lambda value: iter(value[1]))
    recorded: list[tuple[torch.Tensor, FakeStream]] = []
    monkeypatch.setattr(
        torch.Tensor, "record_stream", lambda self, stream: recorded.append((self, stream))
    )

    def side() -> tuple[str, list[torch.Tensor]]:
        log.append(f"side runs on {active[-1].name}")
        return "detections", [cuda_result]

    def main() -> str:
        log.append(f"main runs on {active[-1].name}")
        return "tracks"

    (label, tensors), tracks = side_by_side(torch.device("cuda"), side, main)
    assert (label, tracks) == ("detections", "tracks") and tensors[0] is cuda_result
    assert log == [
        "side waits for current",
        "side runs on side",
        "main runs on current",
        "current waits for side",
    ]
    assert [(t is cuda_result, stream is current) for t, stream in recorded] == [(True, True)]


@pytest.mark.gpu
def test_side_runs_on_its_own_stream_and_is_complete_on_return() -> None:
    device = torch.device("cuda")
    torch.manual_seed(0)
    a = torch.randn(2048, 2048, device=device)
    b = torch.randn(2048, 2048, device=device)
    ran_on: dict[str, torch.cuda.Stream] = {}

    def side() -> tuple[torch.Tensor, list[torch.Tensor]]:
        ran_on["side"] = torch.cuda.current_stream(device)
        x = a
        for _ in range(20):  # long enough that main starts before it ends
            x = torch.tanh(x @ a)
        return x, [x.sum()]

    def main() -> torch.Tensor:
        ran_on["main"] = torch.cuda.current_stream(device)
        return torch.tanh(b @ b)

    (x, [total]), y = side_by_side(device, side, main)
    # read on the current stream at once: the side's work must be complete for these
    got_x, got_total, got_y = x.clone(), total.clone(), y.clone()
    want_x = a
    for _ in range(20):
        want_x = torch.tanh(want_x @ a)
    torch.cuda.synchronize()
    assert ran_on["side"] != ran_on["main"] == torch.cuda.current_stream(device)
    assert torch.equal(got_x, want_x)
    assert torch.equal(got_total, want_x.sum())
    assert torch.equal(got_y, torch.tanh(b @ b))


def _run(model: Sam3, overlap: bool, frames: list[np.ndarray]) -> list[FrameTrack]:
    config = replace(model.config.video, cuda_overlap=overlap)
    tracker = VideoTracker(model, config)
    # random weights score every query low: thresholds that keep and spawn from them
    thresholds = ConceptThresholds(detection=0.15, new_object=0.2)
    tracker.add_concept(Concept(text="red", thresholds=thresholds))
    tracker.add_concept(Concept(text="blue", thresholds=thresholds))
    return [tracker.step(frame, pts=t) for t, frame in enumerate(frames)]


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_video_results_equal_with_and_without_overlap(dtype: torch.dtype, tmp_path: Path) -> None:
    torch.manual_seed(0)  # weights drawn on the CPU, as when this was written (objects do spawn)
    torch.save(build_sam3("tiny").state_dict(), tmp_path / "tiny.pt")
    model = build_sam3("tiny", tmp_path / "tiny.pt", device="cuda", dtype=dtype)
    squares = [
        Square("red", 0, 20, x=4, y=6, vx=3.0, size=16),
        Square("blue", 2, 20, x=80, y=40, vx=-2.0, vy=0.5, size=20),
        Square("green", 4, 20, x=30, y=60, size=12),
    ]
    frames = [render(squares, t, size=(96, 128)) for t in range(10)]
    with_overlap = _run(model, True, frames)
    sequential = _run(model, False, frames)
    assert sum(len(r.objects) for r in sequential) > 10  # objects were tracked
    for got, want in zip(with_overlap, sequential, strict=True):
        assert [o.object_id for o in got.objects] == [o.object_id for o in want.objects]
        assert [e.object_id for e in got.started] == [e.object_id for e in want.started]
        assert [e.object_id for e in got.ended] == [e.object_id for e in want.ended]
        for a, b in zip(got.objects, want.objects, strict=True):
            assert np.array_equal(a.mask, b.mask)
            assert a.score == b.score and a.box_xyxy == b.box_xyxy and a.state == b.state
