"""The demo's picture of one frame: which frame it keeps and how it is drawn."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from model.types import FrameTrack, ObjectStartedEvent, ObjectState, TrackedObject
from streamer.demo import SnapshotSink, overlay
from streamer.types import Frame


def frame(seq: int) -> Frame:
    return Frame("demo", seq, seq, Fraction(1, 15), 0, np.full((40, 60, 3), 30, np.uint8))


def track(seq: int, *states: ObjectState) -> FrameTrack:
    objects = []
    for i, state in enumerate(states):
        mask = np.zeros((40, 60), bool)
        mask[5:15, 10 * i + 2 : 10 * i + 9] = True
        objects.append(
            TrackedObject(i, 0, 0.9, (10.0 * i + 2, 5.0, 10.0 * i + 9, 15.0), mask, state)
        )
    started = tuple(ObjectStartedEvent(o.object_id, 0) for o in objects)
    return FrameTrack(seq, seq, 60, 40, tuple(objects), started)


def test_the_snapshot_prefers_confirmed_objects_to_many_tentative_ones() -> None:
    sink = SnapshotSink()
    tentative, confirmed = ObjectState.TENTATIVE, ObjectState.CONFIRMED
    sink.offer_result(frame(0), track(0, tentative, tentative, tentative))
    sink.offer_result(frame(1), track(1, confirmed, tentative))
    sink.offer_result(frame(2), track(2, confirmed))
    assert sink.best is not None and sink.best[0].seq == 1
    assert sink.started == {0: 0, 1: 0, 2: 0}


def test_overlay_tints_masks_and_leaves_the_frame_alone() -> None:
    f, t = frame(0), track(0, ObjectState.CONFIRMED)
    drawn = overlay(f, t, {0: "ring"})
    assert drawn.shape == f.rgb.shape and (f.rgb == 30).all()
    assert (drawn[8:12, 4:7] != 30).any(axis=-1).all()  # inside the mask: tinted
    assert (drawn[30:, 40:] == 30).all()  # far from the object: untouched
