"""VideoTracker: one stream's online tracking loop, frame in -> results for that frame out.

Per frame (docs/video.md, "Per frame", with the streaming changes it lists):

    edits -> detect all concepts (one pass) -> propagate all objects (one batched call)
          -> associate by mask IoU -> spawn / hot-start / re-condition
          -> occlusion suppression -> memory encoding (one batched call) -> outputs

There is no look-ahead and no output delay: `step` returns frame t's objects at frame t. State
is bounded: per-object memory banks with fixed caps, hot-start counters that die with the
window, and objects that end once unseen for longer than the gap tolerance.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from types import MappingProxyType

import numpy as np
import torch

from model.config import VideoConfig
from model.snapshot import TrackerSnapshot
from model.tracker.memory_bank import MemoryCaps
from model.types import (
    BoxPrompt,
    Concept,
    EndReason,
    FrameTrack,
    ObjectEndedEvent,
    PointPrompt,
)
from model.video.frame import FrameState, run_frame
from model.video.frame_model import FrameModel
from model.video.lifecycle import Lifecycle, Track
from model.video.sam3_frame_model import as_frame_model
from model.video.snapshot import export_state, restore_state


class VideoTracker:
    """One stream's state machine over a shared model (`Sam3` or any `FrameModel`).

    Edits (`add_*`, `refine_object`, `remove_*`) take effect at the next `step`; coordinates are
    input-image pixels. Object IDs are per stream, increasing, never reused.
    """

    def __init__(self, model: object, config: VideoConfig | None = None) -> None:
        self._model: FrameModel = as_frame_model(model)
        self.config = config if config is not None else _default_config(model)
        self._caps = MemoryCaps(
            max_cond_frames=self.config.max_cond_frames,
            num_recent=self._model.num_maskmem - 1,
            max_object_pointers=self._model.max_object_pointers,
            use_memory_selection=self.config.use_memory_selection,
            selection_threshold=self.config.memory_selection_threshold,
            clear_around_condition=self.config.clear_memory_around_condition,
        )
        self._lifecycle = Lifecycle(self.config)
        self._concepts: dict[int, Concept] = {}
        self._concept_prompts: dict[int, object] = {}
        self._next_concept_id = 0
        self._tracks: dict[int, Track] = {}
        self._pending_prompts: dict[int, tuple[BoxPrompt | None, tuple[PointPrompt, ...]]] = {}
        self._pending_removals: dict[int, EndReason] = {}
        self._frame_index = 0
        self._clock_s = 0.0
        self._gap_pending = False

    # --- read-only views ---------------------------------------------------------------------

    @property
    def concepts(self) -> Mapping[int, Concept]:
        return MappingProxyType(self._concepts)

    @property
    def object_ids(self) -> tuple[int, ...]:
        return tuple(sorted(self._tracks))

    @property
    def frame_index(self) -> int:
        """Index of the next frame `step` will process (frames processed so far)."""
        return self._frame_index

    def memory_stats(self) -> dict[int, tuple[int, int]]:
        """object id -> (conditioning, recent) memories held: bounded by the caps."""
        return {oid: track.bank.sizes() for oid, track in self._tracks.items()}

    def limit_objects(self, max_objects: int) -> None:
        """Hold at most `max_objects` live objects (detections over it are counted in
        `FrameTrack.capped`); lowers, never raises, the config's `max_num_objects`."""
        if max_objects < 1:
            raise ValueError(f"max_objects must be >= 1, got {max_objects}")
        cap = min(max_objects, self.config.max_num_objects)
        self.config = dataclasses.replace(self.config, max_num_objects=cap)

    # --- edits -------------------------------------------------------------------------------

    def add_concept(self, concept: Concept) -> int:
        concept_id = self._next_concept_id
        self._next_concept_id += 1
        self._concept_prompts[concept_id] = self._model.encode_concept(concept)
        self._concepts[concept_id] = concept
        return concept_id

    def remove_concept(self, concept_id: int) -> None:
        """The concept stops detecting at once; its objects end (removed) at the next step."""
        if concept_id not in self._concepts:
            raise KeyError(f"no concept {concept_id} in this stream")
        del self._concepts[concept_id], self._concept_prompts[concept_id]
        for track in [*self._tracks.values(), *self._lifecycle.dormant_tracks.values()]:
            if track.concept_id == concept_id:
                self._pending_removals[track.object_id] = EndReason.REMOVED

    def add_object(
        self, *, box: BoxPrompt | None = None, points: Sequence[PointPrompt] = ()
    ) -> int:
        """Start tracking the object under a box and/or clicks; returns its new id."""
        _check_prompt(box, points)
        object_id = self._lifecycle.allocate_id()
        self._pending_prompts[object_id] = (box, tuple(points))
        return object_id

    def refine_object(
        self, object_id: int, *, box: BoxPrompt | None = None, points: Sequence[PointPrompt] = ()
    ) -> None:
        """Re-prompt one object on the next frame; that frame becomes a conditioning memory."""
        _check_prompt(box, points)
        if object_id not in self._tracks and object_id not in self._pending_prompts:
            raise KeyError(f"no object {object_id} in this stream")
        self._pending_prompts[object_id] = (box, tuple(points))

    def remove_object(self, object_id: int) -> None:
        if object_id in self._pending_prompts and object_id not in self._tracks:
            del self._pending_prompts[object_id]  # never started: nothing to report
            return
        if object_id not in self._tracks and object_id not in self._lifecycle.dormant:
            raise KeyError(f"no object {object_id} in this stream")
        self._pending_prompts.pop(object_id, None)
        self._pending_removals[object_id] = EndReason.REMOVED

    def mark_gap(self, seconds: float) -> None:
        """The source dropped `seconds` of video. Memories are kept; objects unseen for longer
        than `gap_tolerance_s` end as lost at the next step, the others may be re-associated."""
        if seconds < 0:
            raise ValueError(f"a gap cannot be negative: {seconds}")
        self._clock_s += seconds
        self._gap_pending = True

    # --- frames ------------------------------------------------------------------------------

    def step(self, image: np.ndarray, pts: int | None = None) -> FrameTrack:
        """Track one HxWx3 uint8 RGB frame and return its results."""
        return VideoTracker.step_many([self], [image], [pts])[0]

    @staticmethod
    def step_many(
        trackers: Sequence[VideoTracker],
        images: Sequence[np.ndarray],
        pts: Sequence[int | None],
    ) -> list[FrameTrack]:
        """Several streams' frames ready together: one backbone call, then per-stream logic."""
        if not (len(trackers) == len(images) == len(pts)):
            raise ValueError("step_many needs one image and one pts per tracker")
        if not trackers:
            return []
        model = trackers[0]._model
        if any(t._model is not model for t in trackers):
            raise ValueError("step_many needs trackers that share one model")
        for image in images:
            _check_image(image)
        start = time.perf_counter()
        with torch.inference_mode():
            features = model.encode_images(images)
            backbone_ms = (time.perf_counter() - start) * 1e3 / len(trackers)
            results = []
            for tracker, image, frame_pts, feats in zip(
                trackers, images, pts, features, strict=True
            ):
                result = tracker._step_features(feats, image.shape[:2], frame_pts)
                result.timings_ms["backbone"] = backbone_ms
                results.append(result)
        return results

    def finish(self) -> tuple[ObjectEndedEvent, ...]:
        """End of stream: every live object ends with `stream_ended`."""
        events = []
        for object_id in sorted(self._tracks):
            event = self._lifecycle.end(self._tracks.pop(object_id), EndReason.STREAM_ENDED)
            if event is not None:
                events.append(event)
        events.extend(self._lifecycle.expire(self._frame_index, everything=True))  # removed
        self._pending_prompts.clear()
        self._pending_removals.clear()
        return tuple(events)

    # --- one frame -----------------------------------------------------------------------------

    def _step_features(
        self, features: object, size: tuple[int, int], pts: int | None
    ) -> FrameTrack:
        ended: list[ObjectEndedEvent] = []
        for object_id, reason in sorted(self._pending_removals.items()):
            track = self._tracks.pop(object_id, None) or self._lifecycle.wake(object_id)
            if track is not None and (event := self._lifecycle.end(track, reason)) is not None:
                ended.append(event)
        self._pending_removals.clear()
        if self._gap_pending:  # objects unseen for too long do not come back after a gap
            for track in [
                t for t in self._tracks.values() if self._lifecycle.is_lost(t, self._clock_s)
            ]:
                event = self._lifecycle.end(self._tracks.pop(track.object_id), EndReason.LOST)
                if event is not None:
                    ended.append(event)

        state = FrameState(
            frame_index=self._frame_index,
            clock_s=self._clock_s,
            after_gap=self._gap_pending,
            image_size=size,
            tracks=self._tracks,
            concepts=self._concepts,
            concept_prompts=self._concept_prompts,
            prompts=dict(self._pending_prompts),
            caps=self._caps,
        )
        result = run_frame(self._model, self.config, self._lifecycle, state, features, pts)
        self._pending_prompts.clear()
        self._gap_pending = False
        self._frame_index += 1
        self._clock_s += 1.0 / self.config.nominal_fps
        if ended:
            result = dataclasses.replace(result, ended=tuple(ended) + result.ended)
        return result

    # --- durable state (model/video/snapshot.py) ---------------------------------------------

    def export_state(self) -> TrackerSnapshot:
        """Concepts, next IDs and live objects as plain numpy (no memory banks)."""
        return export_state(self)

    def restore_state(self, snapshot: TrackerSnapshot) -> None:
        """On a fresh tracker: the snapshot's concepts and counters; its objects take back their
        IDs when detections find them again, or end as lost."""
        restore_state(self, snapshot)


def _default_config(model: object) -> VideoConfig:
    config = getattr(model, "config", None)
    video = getattr(config, "video", None)
    return video if isinstance(video, VideoConfig) else VideoConfig()


def _check_prompt(box: BoxPrompt | None, points: Sequence[PointPrompt]) -> None:
    if box is None and not points:
        raise ValueError("an object prompt needs a box, points, or both")
    if box is not None:
        x0, y0, x1, y1 = box.xyxy
        if not (x1 > x0 and y1 > y0):
            raise ValueError(f"box must be x0 < x1 and y0 < y1 in pixels, got {box.xyxy}")


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        got = f"{image.dtype} array" if isinstance(image, np.ndarray) else type(image).__name__
        raise TypeError(f"frames must be uint8 numpy arrays, got a {got}")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"frames must be H x W x 3 RGB, got shape {image.shape}")


__all__ = ["VideoTracker"]
