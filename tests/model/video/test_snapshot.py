"""Export / restore of a tracker's durable state with the embedded model on a world clip: a
fresh tracker restored from a snapshot gives the objects still in view their IDs back."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from model import CONFIGS, VideoTracker, build_sam3
from model.embedded.world import ClipConfig, Split, WorldConfig, clip_sample
from model.sam3 import Sam3
from model.snapshot import TrackerSnapshot
from model.types import Concept, EndReason

CONCEPTS = (Concept(text="star"), Concept(text="circle"))


@pytest.fixture(scope="module")
def model() -> Sam3:
    torch.set_num_threads(1)
    return build_sam3("embedded").eval()


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    side = CONFIGS["embedded"].vit.image_size
    config = dataclasses.replace(
        ClipConfig(world=WorldConfig(height=side, width=side), num_frames=32),
        num_objects=(3, 3), passer_rate=0.0, occluder_rate=0.0,
    )  # fmt: skip
    return [f.image for f in clip_sample(Split.HELD_OUT_SEEDS, 7, config).frames]


def _tracker(model: Sam3) -> VideoTracker:
    tracker = VideoTracker(model)
    for concept in CONCEPTS:
        tracker.add_concept(concept)
    return tracker


def test_restored_tracker_gives_objects_in_view_their_ids_back(
    model: Sam3, frames: list[np.ndarray]
) -> None:
    before = _tracker(model)
    seen = [{o.object_id for o in before.step(f).objects} for f in frames[:20]]
    snapshot = before.export_state()
    assert isinstance(snapshot, TrackerSnapshot) and len(snapshot.objects) == 3
    assert all(
        isinstance(o.mask, np.ndarray) and o.pointer.shape == (64,) for o in snapshot.objects
    )
    in_view = seen[-1]
    assert len(in_view) == 3  # the fixture clip: three objects, all visible

    after = VideoTracker(model)  # a fresh tracker, as a new engine builds it
    after.restore_state(snapshot)
    assert dict(after.concepts) == dict(enumerate(CONCEPTS))
    assert after.frame_index == 20
    results = [after.step(f) for f in frames[20:]]
    ids = [{o.object_id for o in r.objects} for r in results]
    assert ids[0] == in_view, ids  # taken back on the first frame after the restore
    assert all(frame_ids == in_view for frame_ids in ids), ids
    assert not any(r.started for r in results)  # no second started event for the same objects
    assert not any(r.ended for r in results)
    states = {o.state.value for r in results for o in r.objects}
    assert states == {"confirmed"}  # they had passed hot-start: they do not go through it again
    again = after.export_state()  # a second failover would find them as well
    assert {o.object_id for o in again.objects} == in_view
    assert again.next_object_id == snapshot.next_object_id


def test_new_objects_get_new_ids_and_unmatched_ones_end_lost(
    model: Sam3, frames: list[np.ndarray]
) -> None:
    before = _tracker(model)
    for f in frames[:20]:
        before.step(f)
    snapshot = before.export_state()
    # the objects moved out of where they were: shift each frame by half its width
    moved = [np.roll(f, f.shape[1] // 2, axis=1) for f in frames[20:]]
    video = dataclasses.replace(model.config.video, gap_tolerance_s=0.2)  # 6 frames at 30 fps
    after = VideoTracker(model, video)
    after.restore_state(snapshot)
    results = [after.step(f) for f in moved]
    started = {s.object_id for r in results for s in r.started}
    old = {o.object_id for o in snapshot.objects}
    assert all(oid >= snapshot.next_object_id for oid in started), started  # none reused
    ended = {e.object_id: e.reason for r in results[:8] for e in r.ended}
    live = {o.object_id for r in results for o in r.objects}
    for oid in old - live:  # not found again: lost after the usual tolerance
        assert ended.get(oid) is EndReason.LOST, (oid, ended)
    assert not any(e.object_id in old for r in results[:6] for e in r.ended)  # not before


def test_restore_needs_a_fresh_tracker(model: Sam3, frames: list[np.ndarray]) -> None:
    tracker = _tracker(model)
    snapshot = tracker.export_state()
    with pytest.raises(ValueError, match="needs a fresh tracker"):
        tracker.restore_state(snapshot)
