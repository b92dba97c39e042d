"""VideoTracker's loop on a scripted model: IDs, lifecycle, live edits, gaps, determinism."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pytest
import torch

from model.config import VideoConfig
from model.tracker.memory_bank import MemoryBatch
from model.types import Concept, EndReason, FrameTrack, ObjectState, PointPrompt
from model.video.frame_model import FrameDetections, TrackOutput
from model.video.video_tracker import VideoTracker
from tests.model.video.video_fakes import ScriptedModel, Square, render

CFG = VideoConfig(gap_tolerance_s=0.2, nominal_fps=30.0)  # unseen for 6+ frames -> lost

SCENE = (
    Square("red", first=0, last=39, x=4, y=4, vx=0.5),
    Square("red", first=0, last=19, x=40, y=24),  # leaves at frame 20
    Square("blue", first=10, last=39, x=20, y=30, vy=-0.25),  # appears at frame 10
    Square("green", first=0, last=39, x=48, y=4),  # no concept: only a click finds it
)


def run(
    frames: int, cfg: VideoConfig = CFG, scene: tuple[Square, ...] = SCENE
) -> tuple[VideoTracker, list[FrameTrack]]:
    tracker = VideoTracker(ScriptedModel(), cfg)
    tracker.add_concept(Concept(text="red"))
    tracker.add_concept(Concept(text="blue"))
    return tracker, [tracker.step(render(scene, t), pts=t) for t in range(frames)]


def ids(result: FrameTrack) -> list[int]:
    return [o.object_id for o in result.objects]


def test_ids_follow_objects_and_are_never_reused() -> None:
    tracker, results = run(40)
    assert ids(results[0]) == [0, 1]
    assert [e.object_id for e in results[0].started] == [0, 1]
    assert ids(results[10]) == [0, 1, 2] and [e.object_id for e in results[10].started] == [2]
    assert all(r.frame_index == t and r.pts == t for t, r in enumerate(results))
    # object 1 leaves at frame 20 and ends as lost once unseen for longer than 0.2 s
    assert ids(results[20]) == [0, 2]
    lost = [(t, e) for t, r in enumerate(results) for e in r.ended]
    # last seen at 19: 7 frames > 0.2 s
    assert lost == [(26, lost[0][1])] and lost[0][1].object_id == 1
    assert lost[0][1].reason is EndReason.LOST
    assert tracker.object_ids == (0, 2)
    # each object keeps one concept and its mask moves with its square
    assert {o.concept_id for o in results[30].objects} == {0, 1}
    red = next(o for o in results[30].objects if o.object_id == 0)
    assert red.mask.shape == (48, 64) and red.mask.dtype == np.bool_
    x0 = red.box_xyxy[0]
    assert 16 <= x0 <= 22  # the square started at x=4 and moves 0.5 px per frame


def test_deterministic_over_frames() -> None:
    _, a = run(25)
    _, b = run(25)
    for ra, rb in zip(a, b, strict=True):
        assert ids(ra) == ids(rb)
        for oa, ob in zip(ra.objects, rb.objects, strict=True):
            assert np.array_equal(oa.mask, ob.mask) and oa.box_xyxy == ob.box_xyxy


def test_tentative_until_hotstart_window_passes_and_confirm_delay() -> None:
    _, results = run(20)
    assert results[0].objects[0].state is ObjectState.TENTATIVE
    assert results[13].objects[0].state is ObjectState.TENTATIVE
    # frame 14 is the last one on which hot-start may remove it: confirmed once it passes
    assert results[14].objects[0].state is ObjectState.CONFIRMED
    _, delayed = run(20, replace(CFG, confirm_delay=3))
    assert ids(delayed[0]) == [] and ids(delayed[2]) == []
    assert ids(delayed[3]) == [0, 1] and [e.object_id for e in delayed[3].started] == [0, 1]


def test_hotstart_removes_a_masklet_that_is_never_matched() -> None:
    # a red square that the tracker follows but the detector stops seeing: after turning blue
    # (another concept) the red track is unmatched; 8 unmatched frames inside its window
    scene = (Square("red", first=0, last=2, x=4, y=4), Square("blue", first=3, last=30, x=4, y=4))
    tracker = VideoTracker(ScriptedModel(), CFG)
    tracker.add_concept(Concept(text="red"))
    results = [tracker.step(render(scene, t)) for t in range(16)]
    ended = [(t, e.object_id, e.reason) for t, r in enumerate(results) for e in r.ended]
    assert ended == [(10, 0, EndReason.REMOVED)]  # unmatched on frames 3..10


def test_dormant_object_comes_back_under_its_id() -> None:
    """The red square turns blue (hidden from the detector) long enough for hot-start to remove
    it, then red again where it was: with revival it keeps its ID and no event says otherwise."""
    hidden = (Square("red", first=0, last=2, x=4, y=4), Square("blue", first=3, last=12, x=4, y=4))

    def follow(
        revive: int, back_at: int, x: float = 4, frames: int = 0
    ) -> tuple[VideoTracker, list[FrameTrack]]:
        scene = (
            *hidden[:1],
            replace(hidden[1], last=back_at - 1),
            Square("red", back_at, 99, x, 4),
        )
        tracker = VideoTracker(ScriptedModel(), replace(CFG, hotstart_revive_frames=revive))
        tracker.add_concept(Concept(text="red"))
        return tracker, [tracker.step(render(scene, t)) for t in range(frames or back_at + 6)]

    def events(results: list[FrameTrack]) -> list[tuple[int, str, int]]:
        started = [(t, "+", e.object_id) for t, r in enumerate(results) for e in r.started]
        ended = [(t, "-", e.object_id) for t, r in enumerate(results) for e in r.ended]
        return sorted(started + ended)

    _, official = follow(0, back_at=13)  # removed on frame 10, a new ID when it is seen again
    assert events(official) == [(0, "+", 0), (10, "-", 0), (13, "+", 1)]
    tracker, revived = follow(8, back_at=13)
    assert events(revived) == [(0, "+", 0)]
    assert [ids(r) for r in revived[10:16]] == [[], [], [], [0], [0], [0]]
    assert revived[13].objects[0].state is ObjectState.TENTATIVE  # a fresh hot-start window
    assert [(e.object_id, e.reason) for e in tracker.finish()] == [(0, EndReason.STREAM_ENDED)]
    _, late = follow(8, back_at=20)  # the wait ran out on frame 18
    assert events(late) == [(0, "+", 0), (18, "-", 0), (20, "+", 1)]
    assert late[18].ended[0].reason is EndReason.REMOVED
    _, far = follow(8, back_at=13, x=44)  # a red square elsewhere is another object
    assert events(far) == [(0, "+", 0), (13, "+", 1), (18, "-", 0)]
    tracker, _ = follow(8, back_at=40, frames=14)  # the stream ends while it is dormant
    assert [(e.object_id, e.reason) for e in tracker.finish()] == [(0, EndReason.REMOVED)]


def test_reconditioning_re_prompts_the_object_with_its_detection() -> None:
    """Every 16th frame a confident detection re-conditions its object: the memory and the
    object pointer come from prompting with the detection's mask (pointer 2 in the scripted
    model), not from the propagated output (pointer 1), unless `recondition_reprompt` is off."""
    scene = (Square("red", first=0, last=99, x=4, y=4, vx=0.5),)

    def pointers(reprompt: bool) -> dict[int, tuple[bool, float]]:
        tracker = VideoTracker(ScriptedModel(), replace(CFG, recondition_reprompt=reprompt))
        tracker.add_concept(Concept(text="red"))
        out = {}
        for t in range(18):
            tracker.step(render(scene, t))
            entry = tracker._tracks[0].bank._latest
            out[t] = (entry.is_cond, float(entry.pointer[0]))
        return out

    official = pointers(reprompt=True)
    assert official[0] == (True, 2.0) and official[16] == (True, 2.0)
    assert all(official[t] == (False, 1.0) for t in (*range(1, 16), 17))
    kept = pointers(reprompt=False)  # the frame still conditions, on the propagated pointer
    assert kept[16] == (True, 1.0) and {t: kept[t] for t in kept if t != 16} == {
        t: official[t] for t in official if t != 16
    }


class SwellingModel(ScriptedModel):
    """A scripted tracker whose masks swell by one cell around the objects they follow."""

    def track(self, features: object, memory: MemoryBatch) -> TrackOutput:
        out = super().track(features, memory)
        swollen = torch.nn.functional.max_pool2d(out.mask_logits[:, None], 3, 1, 1)[:, 0]
        return out._replace(mask_logits=swollen)


def test_memory_non_overlap_keeps_a_swollen_track_out_of_its_neighbours_memory() -> None:
    """Two red squares one cell apart: their swollen masks overlap. With `memory_non_overlap`
    each contested pixel is remembered by one object only; officially by both."""
    scene = (
        Square("red", first=0, last=99, x=4, y=16),
        Square("red", first=0, last=99, x=14, y=16),
    )

    def overlaps(non_overlap: bool) -> list[int]:
        cfg = replace(CFG, memory_non_overlap=non_overlap)
        tracker = VideoTracker(SwellingModel(), cfg)
        tracker.add_concept(Concept(text="red"))
        out = []
        for t in range(6):
            result = tracker.step(render(scene, t))
            assert ids(result) == [0, 1]
            a, b = (tracker._tracks[oid].bank._latest.features > 0 for oid in (0, 1))
            out.append(int((a & b).sum()))
        return out

    official = overlaps(False)
    assert official[0] == 0 and all(official[1:])  # spawned from disjoint detections
    assert overlaps(True) == [0] * 6


def test_live_edits_leave_other_objects_untouched() -> None:
    _, plain = run(12)
    tracker = VideoTracker(ScriptedModel(), CFG)
    tracker.add_concept(Concept(text="red"))
    tracker.add_concept(Concept(text="blue"))
    edited = []
    for t in range(12):
        if t == 4:
            green = tracker.add_object(points=[PointPrompt((52.0, 8.0))])  # click the green square
        if t == 8:
            tracker.remove_object(1)
            tracker.remove_object(green)
        edited.append(tracker.step(render(SCENE, t), pts=t))
    assert green == 2  # the next free id
    assert [e.object_id for e in edited[4].started] == [green]
    added = next(o for o in edited[4].objects if o.object_id == green)
    assert added.concept_id is None and added.state is ObjectState.CONFIRMED
    assert added.mask[8, 52] and not added.mask[30, 10]
    assert [(e.object_id, e.reason) for e in edited[8].ended] == [
        (1, EndReason.REMOVED),
        (green, EndReason.REMOVED),
    ]
    # a removed concept object that is still in view is detected again, as a new object
    assert [e.object_id for e in edited[8].started] == [3]
    assert ids(edited[10]) == [0, 3, 4]
    for t in range(12):  # object 0 is identical with and without the edits
        a = next(o for o in plain[t].objects if o.object_id == 0)
        b = next(o for o in edited[t].objects if o.object_id == 0)
        assert np.array_equal(a.mask, b.mask)


def test_remove_concept_ends_its_objects() -> None:
    tracker = VideoTracker(ScriptedModel(), CFG)
    red = tracker.add_concept(Concept(text="red"))
    tracker.add_concept(Concept(text="blue"))
    for t in range(12):
        tracker.step(render(SCENE, t))
    tracker.remove_concept(red)
    assert list(tracker.concepts) == [1]
    result = tracker.step(render(SCENE, 12))
    assert sorted((e.object_id, e.reason) for e in result.ended) == [
        (0, EndReason.REMOVED),
        (1, EndReason.REMOVED),
    ]
    assert ids(result) == [2]
    assert tracker.add_concept(Concept(text="red")) == 2  # concept ids are not reused either


def test_gap_within_tolerance_keeps_ids_and_longer_gap_ends_objects() -> None:
    cfg = replace(CFG, gap_tolerance_s=5.0)
    tracker = VideoTracker(ScriptedModel(), cfg)
    tracker.add_concept(Concept(text="red"))
    scene = (Square("red", first=0, last=99, x=4, y=4, vx=1.0),)
    for t in range(5):
        tracker.step(render(scene, t))
    tracker.mark_gap(2.0)  # the square moved on while the source was down
    after = tracker.step(render(scene, 7))
    assert ids(after) == [0] and not after.started and not after.ended
    tracker.mark_gap(6.0)
    late = tracker.step(render(scene, 30))
    assert [(e.object_id, e.reason) for e in late.ended] == [(0, EndReason.LOST)]
    assert ids(late) == [1] and [e.object_id for e in late.started] == [1]


def test_gap_reassociates_a_lost_object_by_its_last_mask() -> None:
    cfg = replace(CFG, gap_tolerance_s=5.0)
    tracker = VideoTracker(ScriptedModel(), cfg)
    tracker.add_concept(Concept(text="red"))
    visible = (Square("red", first=0, last=4, x=20, y=20),)
    for t in range(5):
        tracker.step(render(visible, t))
    for t in range(5, 8):  # gone from view: the tracker's mask is empty
        assert ids(tracker.step(render(visible, t))) == []
    tracker.mark_gap(1.0)
    back = (Square("red", first=0, last=99, x=22, y=20),)  # reappears near where it was
    result = tracker.step(render(back, 40))
    assert ids(result) == [0] and not result.started


def test_reanchoring_gives_a_drifted_objects_detection_back_its_id() -> None:
    """A green square passes behind a still red one; the scripted tracker's red mask merges with
    the green square and leaves with it. The red detector keeps finding the red square."""
    scene = (
        Square("green", first=20, last=99, x=-40, y=14, vx=2.0, size=12),
        Square("red", first=0, last=99, x=24, y=16),
    )
    red_box = (24.0, 17.0, 32.0, 24.0)  # the red square on the 48 x 64 frame (mask grid 32)

    def follow(reanchor_after: int) -> list[FrameTrack]:
        tracker = VideoTracker(ScriptedModel(), replace(CFG, reanchor_after=reanchor_after))
        tracker.add_concept(Concept(text="red"))
        return [tracker.step(render(scene, t)) for t in range(44)]

    official = follow(0)  # the drifted object stays on the green square, red gets a new ID
    assert [e.object_id for r in official for e in r.started] == [0, 1]
    assert next(o for o in official[43].objects if o.object_id == 0).box_xyxy[0] > 40
    anchored = follow(1)  # it takes the red detection back instead
    assert [e.object_id for r in anchored for e in r.started] == [0]
    assert not any(r.ended for r in anchored)
    assert all(ids(r) == [0] and r.objects[0].box_xyxy == red_box for r in anchored[37:])


def test_reanchoring_takes_back_a_detection_its_swollen_mask_swallowed() -> None:
    """A green square stops beside a still red one; the scripted tracker's red mask swells over
    both, so the red detection overlaps it too little to match and too much to be new."""
    scene = (
        Square("green", first=10, last=99, x=12, y=14, size=12),
        Square("red", first=0, last=99, x=24, y=16),
    )
    red_box = (24.0, 17.0, 32.0, 24.0)

    def follow(reanchor_after: int) -> list[FrameTrack]:
        tracker = VideoTracker(ScriptedModel(), replace(CFG, reanchor_after=reanchor_after))
        tracker.add_concept(Concept(text="red"))
        return [tracker.step(render(scene, t)) for t in range(20)]

    official = follow(0)  # the swollen mask stays swollen
    assert all(ids(r) == [0] and r.objects[0].box_xyxy[0] < 20 for r in official[10:])
    anchored = follow(1)  # re-anchored on the red detection every time it swells
    assert all(ids(r) == [0] for r in anchored) and not any(r.ended for r in anchored)
    assert all(r.objects[0].box_xyxy == red_box for r in anchored[11:])


class SprinkledModel(ScriptedModel):
    """A scripted detector whose masks gain a stray pixel in the top-right corner from frame
    `first` on, as a small detector's masks sometimes do."""

    def __init__(self, first: int) -> None:
        super().__init__()
        self.first, self.frame = first, -1

    def detect(self, features: object, concepts: Sequence[object]) -> list[FrameDetections]:
        self.frame += 1
        out = super().detect(features, concepts)
        if self.frame >= self.first:
            for dets in out:
                dets.mask_logits[:, 0, self.mask_size - 1] = 8.0
        return out


def test_reanchoring_ignores_stray_pixels_of_a_detection() -> None:
    """As the drift test above, but once the tracker has slid off, the red detection carries a
    stray pixel across the frame: its box would span the frame and be judged far."""
    scene = (
        Square("green", first=20, last=99, x=-40, y=14, vx=2.0, size=12),
        Square("red", first=0, last=99, x=24, y=16),
    )
    tracker = VideoTracker(SprinkledModel(first=30), replace(CFG, reanchor_after=1))
    tracker.add_concept(Concept(text="red"))
    results = [tracker.step(render(scene, t)) for t in range(44)]
    assert [e.object_id for r in results for e in r.started] == [0]
    assert all(ids(r) == [0] for r in results[37:])


class TradingModel(ScriptedModel):
    """A scripted tracker that hands its two objects each other's masks on frame `at`, as a
    small tracker does when look-alikes pass close by, and follows the traded masks after."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at

    def track(self, features: object, memory: MemoryBatch) -> TrackOutput:
        out = super().track(features, memory)
        if self.calls["encode_images"] - 1 == self.at and out.mask_logits.shape[0] == 2:
            return TrackOutput(*(x if x is None else x.flip(0) for x in out))
        return out


def test_look_alikes_whose_tracks_trade_objects_keep_their_ids() -> None:
    """Two red squares pass each other, one above the other; on frame 18 the scripted tracker
    trades them. Untangling trades the tracks' memories back at once."""
    scene = (
        Square("red", first=0, last=99, x=4, y=6, vx=1.0),  # object 0, upper, moving right
        Square("red", first=0, last=99, x=40, y=26, vx=-1.0),  # object 1, lower, moving left
    )

    def follow(untangle_margin: float) -> list[FrameTrack]:
        cfg = replace(
            CFG, reanchor_after=1, untangle_margin=untangle_margin, recondition_every_nth_frame=0
        )
        tracker = VideoTracker(TradingModel(at=18), cfg)
        tracker.add_concept(Concept(text="red"))
        return [tracker.step(render(scene, t)) for t in range(30)]

    def upper(result: FrameTrack) -> int:
        return min(result.objects, key=lambda o: o.box_xyxy[1]).object_id

    traded = follow(0.0)
    assert [upper(r) for r in traded[17:20]] == [0, 1, 1]  # the IDs traded objects for good
    untangled = follow(1.0)
    assert all(ids(r) == [0, 1] and upper(r) == 0 for r in untangled)
    assert [e.object_id for r in untangled for e in r.started] == [0, 1]


def test_finish_and_bad_input() -> None:
    tracker, _ = run(3)
    events = tracker.finish()
    assert [(e.object_id, e.reason) for e in events] == [
        (0, EndReason.STREAM_ENDED),
        (1, EndReason.STREAM_ENDED),
    ]
    with pytest.raises(ValueError, match="H x W x 3"):
        tracker.step(np.zeros((4, 4), dtype=np.uint8))
    with pytest.raises(TypeError, match="uint8 numpy arrays, got a float32 array"):
        tracker.step(np.zeros((4, 4, 3), dtype=np.float32))
    with pytest.raises(KeyError):
        tracker.remove_object(99)
    with pytest.raises(ValueError, match="box, points"):
        tracker.add_object()


def test_step_many_shares_one_backbone_call() -> None:
    model = ScriptedModel()
    a, b = VideoTracker(model, CFG), VideoTracker(model, CFG)
    a.add_concept(Concept(text="red"))
    b.add_concept(Concept(text="blue"))
    frames = [render(SCENE, 12), render(SCENE, 12)]
    ra, rb = VideoTracker.step_many([a, b], frames, [None, None])
    assert model.calls["encode_images"] == 1
    assert {o.concept_id for o in ra.objects} == {0} and len(ra.objects) == 2
    assert len(rb.objects) == 1
    with pytest.raises(ValueError, match="share one model"):
        VideoTracker.step_many([a, VideoTracker(ScriptedModel(), CFG)], frames, [None, None])


def test_one_batched_tracker_call_per_frame() -> None:
    tracker, _ = run(12)
    model = tracker._model
    assert isinstance(model, ScriptedModel)
    assert model.calls["detect"] == 12  # all concepts in one detector pass per frame
    assert model.calls["track"] == 11  # frame 0 has nothing to propagate
    assert model.calls["memory"] == 12
    assert model.batch_sizes[-1] == 3


def test_trackers_on_one_sam3_share_one_adapter() -> None:
    import torch

    from model.build import build_sam3

    torch.set_num_threads(2)
    model = build_sam3("tiny")
    a, b = VideoTracker(model, CFG), VideoTracker(model, CFG)
    a.add_concept(Concept(text="cat"))
    b.add_concept(Concept(text="dog"))
    frame = np.zeros((40, 50, 3), dtype=np.uint8)
    ra, rb = VideoTracker.step_many([a, b], [frame, frame], [0, 0])
    assert (ra.width, ra.height, rb.frame_index) == (50, 40, 0)
