"""An endless stream through the real networks stays bounded: 5,000 frames on the `tiny` model.

`Sam3FrameModel` on the tiny config with random weights: the real backbone and tracker neck,
memory attention, SAM mask decoder and memory encoder. Only the detector head is scripted: it
reports the red squares that cross the frame, where they are drawn. The user boxes a green
square on frame 0 and re-boxes it every `REFINE_EVERY` frames, so that object lives through the
whole stream and keeps its bank of conditioning memories at the cap.

With random weights the tracker does not follow the squares: a propagated mask is speckle noise,
which hole filling (16 px, the default) wipes out. So a red square's detection matches no track
and starts a new object on every frame the square is in view, and each of those objects ends as
`lost` once unseen for longer than the gap tolerance (15 frames), with its ring of recent
memories full. That is heavy churn of objects holding real memories, which is what this test
wants: banks never exceed their caps and reach them, live objects stay bounded, IDs are never
reused, and process RSS after warm-up stays within 5 %.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

import pytest
import torch

from model.config import CONFIGS, VideoConfig
from model.sam3 import Sam3
from model.types import BoxPrompt, Concept, EndReason
from model.video.frame_model import FrameDetections
from model.video.sam3_frame_model import Sam3FrameModel
from model.video.video_tracker import VideoTracker
from tests.model.video.test_video_bounded import rss_kib
from tests.model.video.video_fakes import Square, render

pytestmark = pytest.mark.slow

FRAMES = 5_000
WARM_UP = 500
SIZE = 64  # input frames are SIZE x SIZE (the model resizes them to its 112 px input)
PERIOD = 50  # a red square enters every PERIOD frames
REFINE_EVERY = 10  # the user re-boxes the green square
GREEN = Square("green", 0, FRAMES, x=40, y=40, size=14)  # still: the user's box stays put
GREEN_BOX = BoxPrompt((40, 40, 54, 54))


def red_squares(t: int) -> list[Square]:
    """Red squares enter on the left every PERIOD frames, alternating rows, and leave on the
    right after 13 frames (6 px per frame)."""
    squares = []
    for k in (t // PERIOD - 1, t // PERIOD):
        if k >= 0:
            first = PERIOD * k
            y = 4 if k % 2 == 0 else 22
            squares.append(
                Square("red", first, first + 12, x=-8 - 6.0 * first, y=y, vx=6.0, size=12)
            )
    return squares


class ScriptedDetector(Sam3FrameModel):
    """The real networks for everything but the detector head, which reports the red squares
    of frame `t` on the tracker's mask grid (probability 0.9, logits +-10)."""

    def __init__(self, model: Sam3) -> None:
        super().__init__(model)
        self.t = 0

    def encode_concept(self, concept: Concept) -> object:
        return concept.text

    def detect(self, features: object, concepts: Sequence[object]) -> list[FrameDetections]:
        m, p = self.mask_size, self._param
        masks = []
        for square in red_squares(self.t):
            box = square.box(self.t)
            if box is None:
                continue
            x0, y0, x1, y1 = (max(0, min(m, round(v * m / SIZE))) for v in box)
            mask = torch.full((m, m), -10.0)
            mask[y0:y1, x0:x1] = 10.0
            if bool((mask > 0).any()):
                masks.append(mask)
        self.t += 1
        logits = torch.stack(masks) if masks else torch.zeros(0, m, m)
        scores = torch.full((len(masks),), 0.9)
        return [FrameDetections(scores.to(p), logits.to(p), torch.zeros(len(masks), 4).to(p))]


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One intra-op thread, as measured in docs/video.md; restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.usefixtures("one_thread")
def test_five_thousand_tiny_model_frames_stay_bounded() -> None:
    torch.manual_seed(0)
    model = Sam3(CONFIGS["tiny"]).eval()
    tracker = VideoTracker(ScriptedDetector(model), VideoConfig(gap_tolerance_s=0.5))
    tracker.add_concept(Concept(text="red"))
    clicked = tracker.add_object(box=GREEN_BOX)
    caps = tracker._caps
    ring = max(caps.max_object_pointers - 1, caps.num_recent)  # recent memories a bank keeps

    seen_ids: set[int] = set()
    ended_ids: set[int] = set()
    reasons: dict[EndReason, int] = {}
    peak_objects = peak_cond = peak_recent = 0
    baseline = 0
    start = time.perf_counter()
    for t in range(FRAMES):
        if t and t % REFINE_EVERY == 0:
            tracker.refine_object(clicked, box=GREEN_BOX)
        result = tracker.step(render([GREEN, *red_squares(t)], t, size=(SIZE, SIZE)), pts=t)
        for event in result.started:
            assert event.object_id not in seen_ids, f"object id {event.object_id} reused"
            seen_ids.add(event.object_id)
        for event in result.ended:
            ended_ids.add(event.object_id)
            reasons[event.reason] = reasons.get(event.reason, 0) + 1
        assert not ended_ids & set(tracker.object_ids), "an ended object is still tracked"
        peak_objects = max(peak_objects, len(tracker.object_ids))
        for cond, recent in tracker.memory_stats().values():
            assert cond <= caps.max_cond_frames
            assert recent <= ring + 1  # the ring plus the newest frame when it scored too low
            peak_cond, peak_recent = max(peak_cond, cond), max(peak_recent, recent)
        if t == WARM_UP:
            baseline = rss_kib()
    elapsed = time.perf_counter() - start
    growth = rss_kib() / baseline - 1
    print(
        f"{FRAMES} frames in {elapsed:.0f} s ({elapsed / FRAMES * 1e3:.1f} ms/frame); "
        f"{len(seen_ids)} objects started, ended {reasons}; peak live {peak_objects}; "
        f"RSS {baseline / 1024:.0f} MiB at frame {WARM_UP}, growth {growth:+.2%}"
    )

    assert clicked in tracker.object_ids  # the clicked object is tracked from start to end
    assert peak_cond == caps.max_cond_frames and peak_recent >= ring  # the caps were reached
    assert tracker.memory_stats()[clicked][0] == caps.max_cond_frames
    assert len(seen_ids) > 500 and reasons.get(EndReason.LOST, 0) > 500  # objects came and went
    # a square starts at most one object per frame in view (13), plus the clicked object
    assert peak_objects <= 14
    assert len(tracker._lifecycle.windows) <= peak_objects
    assert growth < 0.05, f"RSS grew {growth:.1%} after warm-up"
