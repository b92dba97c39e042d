"""An endless stream stays bounded: 5,000 frames with objects appearing and leaving.

Runs the loop on the scripted model (the bookkeeping is what could grow; the networks hold no
per-stream state). Memory banks stay at their caps, the number of live objects stays bounded,
and process RSS after warm-up stays within 5 %.
"""

from __future__ import annotations

import resource

import pytest

from model.config import VideoConfig
from model.types import Concept
from model.video.video_tracker import VideoTracker
from tests.model.video.video_fakes import ScriptedModel, Square, render

pytestmark = pytest.mark.slow

FRAMES = 5_000
WARM_UP = 500


def scene_at(t: int) -> list[Square]:
    """A red and a blue square cross the frame in opposite directions; a new pair starts every
    60 frames and each square is visible for 70 frames (so pairs overlap in time)."""
    squares = []
    for k in (t // 60 - 1, t // 60):
        if k < 0:
            continue
        first = 60 * k
        for colour, x0, vx, y in (("red", 0.0, 0.35, 2), ("blue", 26.0, -0.35, 14)):
            # Square positions are x + vx * t: shift so that it starts at x0 on its first frame
            squares.append(Square(colour, first, first + 69, x=x0 - vx * first, y=y, vx=vx, size=6))
    return squares


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def test_five_thousand_frames_stay_bounded() -> None:
    cfg = VideoConfig(gap_tolerance_s=0.5)
    tracker = VideoTracker(ScriptedModel(mask_size=16), cfg)
    tracker.add_concept(Concept(text="red"))
    tracker.add_concept(Concept(text="blue"))
    caps = tracker._caps
    started = ended = 0
    peak_objects = 0
    baseline = 0
    for t in range(FRAMES):
        result = tracker.step(render(scene_at(t), t, size=(24, 32)), pts=t)
        started += len(result.started)
        ended += len(result.ended)
        peak_objects = max(peak_objects, len(tracker.object_ids))
        for cond, recent in tracker.memory_stats().values():
            assert cond <= caps.max_cond_frames
            assert recent <= max(caps.max_object_pointers, caps.num_recent + 1)
        if t == WARM_UP:
            baseline = rss_kib()
    assert started > 100 and ended > 100  # objects really came and went
    assert peak_objects <= 8
    assert len(tracker._lifecycle.windows) <= peak_objects
    growth = rss_kib() / baseline - 1
    assert growth < 0.05, f"RSS grew {growth:.1%} after warm-up"
