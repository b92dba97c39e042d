"""bench/video.py cannot rot: at the tiny config its exact-N steady runs hold and print counts.

Not timed (speed lives in bench/RESULTS.md). The bench's own check must also fail when the
loop's object count moves: a scene that adds a detection mid-run raises `NotExact`.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence

import pytest
import torch

from bench.scene import ExactScene, squares
from bench.steady import NotExact, random_frames, run_steady
from model.build import build_sam3
from model.video.frame_model import FrameDetections
from model.video.sam3_frame_model import Sam3FrameModel
from model.video.video_tracker import VideoTracker

pytestmark = pytest.mark.slow  # ~60 frames per object count to fill the memory banks


def test_counts_print_for_one_and_four_objects() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench.video", "--counts", "--config", "tiny", "--objects", "1",
         "4", "--threads", "1"],
        capture_output=True, text=True, check=True, timeout=900,
    ).stdout  # fmt: skip
    rows = [line.split("|") for line in out.splitlines() if line.startswith("| tiny |")]
    assert [int(r[2]) for r in rows] == [1, 4], out
    for row in rows:
        assert row[3].strip() == "10 / 18", row  # steady: 4 + 6 spatial memories, 18 pointers
        assert float(row[4]) > 0 and int(row[9].split()[0]) > 0 and int(row[11]) > 0, row


def test_steady_frames_hold_exactly_n_objects() -> None:
    torch.manual_seed(0)
    scene = ExactScene(Sam3FrameModel(build_sam3("tiny")), 4)
    tracker = VideoTracker(scene)
    run = run_steady(scene, [tracker], random_frames(96, 128, 2), 2)
    assert len(run.frames) == 2 and run.warmup_frames > 16
    assert all(f.memory == (4, 10, 18) for f in run.frames)
    assert all(sizes == run.caps for sizes in tracker.memory_stats().values())


class OneMoreOnFrame3(ExactScene):
    """The scene's detector reports a fifth square from frame 3 on: a new object spawns."""

    frame = 0

    def detect(self, features: object, concepts: Sequence[object]) -> list[FrameDetections]:
        out = super().detect(features, concepts)
        self.frame += 1
        if self.frame <= 3:
            return out
        extra = squares(self.n + 1, self.mask_size)[self.n :].to(self.device)
        return [
            FrameDetections(
                torch.cat([d.scores, torch.full((1,), 0.95, device=self.device)]),
                torch.cat([d.mask_logits, extra]),
                torch.cat([d.boxes, d.boxes[:1]]),
            )
            for d in out
        ]


def test_a_spawn_breaks_the_exact_count() -> None:
    torch.manual_seed(0)
    scene = OneMoreOnFrame3(Sam3FrameModel(build_sam3("tiny")), 4)
    with pytest.raises(NotExact, match="frame 3"):
        run_steady(scene, [VideoTracker(scene)], random_frames(96, 128, 2), 1)
