"""Publication of one frame's objects (model/video/frame_io.py `publish`) on hand-made logits."""

from __future__ import annotations

import torch

from model.config import VideoConfig
from model.tracker.memory_bank import MemoryBank, MemoryCaps
from model.video.frame_io import publish
from model.video.lifecycle import Lifecycle, Track

M = 16  # low-res mask grid


def track(object_id: int, concept_id: int | None = 0) -> Track:
    return Track(object_id, concept_id, 0, 0.9, MemoryBank(MemoryCaps()), last_seen_s=0.0)


def blob(y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
    logits = torch.full((M, M), -10.0)
    logits[y0:y1, x0:x1] = 10.0
    return logits


def test_an_object_that_loses_every_pixel_to_a_more_probable_one_is_not_published() -> None:
    life = Lifecycle(VideoConfig())
    owners = [track(0), track(1), track(2, concept_id=None)]
    logits = torch.stack([blob(0, 12, 0, 12), blob(4, 8, 4, 8), blob(4, 8, 4, 8)])
    probs = torch.tensor([0.9, 0.6, 0.5])
    objects, started = publish(life, (32, 32), 0.0, owners, logits, probs, t=0)
    # object 1 lies inside object 0 (same concept, less probable): nothing of it is left;
    # object 2 is a user object, its own group: non-overlap across groups does not apply
    assert [o.object_id for o in objects] == [0, 2]
    assert [e.object_id for e in started] == [0, 2]
    assert all(o.mask.any() for o in objects)
    assert not owners[1].published  # no ObjectStarted for an object no client has seen


def test_empty_logits_publish_nothing_but_record_when_an_object_was_seen() -> None:
    life = Lifecycle(VideoConfig())
    owners = [track(0), track(1)]
    logits = torch.stack([blob(2, 6, 2, 6), torch.full((M, M), -10.0)])
    objects, _ = publish(life, (32, 32), 3.0, owners, logits, torch.tensor([0.9, 0.9]), t=0)
    assert [o.object_id for o in objects] == [0]
    assert owners[0].last_seen_s == 3.0 and owners[1].last_seen_s == 0.0
    assert objects[0].box_xyxy == (4.0, 4.0, 12.0, 12.0)  # from the upsampled mask
