"""A scene of exactly N still objects, played through the real video loop.

`ExactScene` is a `FrameModel` (model/video/frame_model.py) around the real one: every network
call of the loop runs as it would on a live stream (backbone, detector on every frame, batched
propagation, prompts on spawning and re-conditioning frames, memory encoding), with its real
shapes and dtypes. Only the *values* the loop decides on are the scene's, because with random
weights they mean nothing (a random tracker's masks are speckle, its scores arbitrary, so every
detection would start a new object and no memory would be selected):

* the detector's Q outputs keep their tensors' shapes; the first N queries report N
  non-overlapping squares on the tracker's mask grid (probabilities 0.9 ... just below, so the
  spawn order, and so the IDs, follow the squares), the other Q - N score 0 (dropped);
* propagation reports each object's own square, confidently visible (object-score logit +10,
  predicted IoU 1): what a tracker that follows still objects reports.

So on frame 0 the loop spawns N objects, and from then on each detection matches its object
(IoU 1): nothing spawns, nothing is suppressed or removed, every frame's memory is selected,
and every `recondition_every_nth_frame`-th frame re-conditions all N objects from their
detections, as the official loop does for confidently tracked objects. The bench asserts the N
(bench/steady.py). The scene's own tensors are made once; handing them out costs one clone per
frame (the loop edits propagated masks in place), done outside the counted ops.

`Probe` lets a caller mark which network call is running (bench/counting.py counts per stage).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Protocol

import numpy as np
import torch

from model.tracker.memory_bank import MemoryBatch
from model.tracker.types import ObjectPrompt
from model.types import Concept
from model.video.frame_model import FrameDetections, FrameModel, TrackOutput

VISIBLE_LOGIT = 10.0  # object-score logit of a propagated object: clearly visible


class Probe(Protocol):
    def stage(self, name: str) -> AbstractContextManager[None]: ...

    def uncounted(self) -> AbstractContextManager[None]: ...


class NoProbe:
    def stage(self, name: str) -> AbstractContextManager[None]:
        return nullcontext()

    def uncounted(self) -> AbstractContextManager[None]:
        return nullcontext()


def squares(n: int, m: int) -> torch.Tensor:
    """n non-overlapping squares on an m x m grid, row by row: (n, m, m) logits +-10."""
    per_row = int(np.ceil(np.sqrt(n)))
    size = m // per_row - 1
    if size < 1:
        raise ValueError(f"{n} squares do not fit a {m} x {m} mask grid")
    masks = torch.full((n, m, m), -10.0)
    for k in range(n):
        y, x = divmod(k, per_row)
        masks[k, y * (size + 1) : y * (size + 1) + size, x * (size + 1) : x * (size + 1) + size] = (
            10
        )
    return masks


class ExactScene:
    """`FrameModel` that runs `inner`'s networks and reports n still squares (module docstring)."""

    def __init__(self, inner: FrameModel, n: int, probe: Probe | None = None) -> None:
        if n < 1:
            raise ValueError(f"the scene needs at least one object, got {n}")
        self.inner, self.n = inner, n
        self.probe: Probe = probe if probe is not None else NoProbe()
        self.sync_stages = False  # True: the device is synchronised around every network call
        self._squares = squares(n, inner.mask_size).to(inner.device)  # n x m x m
        self._detections: FrameDetections | None = None  # made on the first detector pass
        self.memory_shapes: list[tuple[int, int, int]] = []  # (B, S, P) of each propagation

    # --- the FrameModel properties are the inner model's -------------------------------------

    @property
    def mask_size(self) -> int:
        return self.inner.mask_size

    @property
    def image_size(self) -> int:
        return self.inner.image_size

    @property
    def device(self) -> torch.device:
        return self.inner.device

    @property
    def num_maskmem(self) -> int:
        return self.inner.num_maskmem

    @property
    def max_object_pointers(self) -> int:
        return self.inner.max_object_pointers

    # --- network calls: real, then the scene's values ----------------------------------------

    def encode_images(self, images: Sequence[np.ndarray]) -> list[object]:
        with self._stage("backbone"):
            return self.inner.encode_images(images)

    def encode_concept(self, concept: Concept) -> object:
        with self._stage("text"):
            return self.inner.encode_concept(concept)

    def detect(self, features: object, concepts: Sequence[object]) -> list[FrameDetections]:
        with self._stage("detect"):
            real = self.inner.detect(features, concepts)
        with self.probe.uncounted():
            return [self._scene_detections(out) for out in real]

    def track(self, features: object, memory: MemoryBatch) -> TrackOutput:
        b, s = memory.valid.shape
        self.memory_shapes.append((b, s, memory.pointer_valid.shape[1]))
        with self._stage("track"):
            real = self.inner.track(features, memory)
        if b > self.n:
            raise AssertionError(f"the loop propagated {b} objects, the scene has {self.n}")
        with self.probe.uncounted():
            return real._replace(
                mask_logits=self._squares[:b].to(real.mask_logits.dtype, copy=True),
                object_score_logits=torch.full_like(real.object_score_logits, VISIBLE_LOGIT),
                iou_scores=torch.ones_like(real.iou_scores),
            )

    def prompt(self, features: object, prompts: Sequence[ObjectPrompt]) -> TrackOutput:
        with self._stage("prompt"):
            return self.inner.prompt(features, prompts)

    def encode_memory(
        self,
        features: object,
        mask_logits: torch.Tensor,
        object_score_logits: torch.Tensor,
        from_prompt: torch.Tensor,
    ) -> torch.Tensor:
        with self._stage("memory"):
            return self.inner.encode_memory(features, mask_logits, object_score_logits, from_prompt)

    # --- helpers ---------------------------------------------------------------------------------

    def _scene_detections(self, real: FrameDetections) -> FrameDetections:
        q = real.scores.shape[0]
        if q < self.n:
            raise ValueError(f"the detector has {q} queries, fewer than the {self.n} objects")
        if self._detections is None or self._detections.scores.shape[0] != q:
            scores = torch.zeros(q, device=self.device)
            scores[: self.n] = 0.9 - 1e-3 * torch.arange(self.n, device=self.device) / self.n
            m = self.mask_size
            logits = torch.full((q, m, m), -10.0, device=self.device)
            logits[: self.n] = self._squares
            self._detections = FrameDetections(scores, logits, real.boxes)
        d = self._detections
        return FrameDetections(
            d.scores.to(real.scores.dtype), d.mask_logits.to(real.mask_logits.dtype), real.boxes
        )

    @contextmanager
    def _stage(self, name: str) -> Iterator[None]:
        with self.probe.stage(name):
            if self.sync_stages:
                _synchronize(self.device)
            yield
            if self.sync_stages:
                _synchronize(self.device)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
