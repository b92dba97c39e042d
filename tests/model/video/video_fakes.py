"""A scripted `FrameModel` and a synthetic scene for VideoTracker tests (no networks).

The scene draws coloured squares on a black frame. The scripted detector finds the squares of
a concept's colour; the scripted tracker follows the mask stored in an object's newest memory
to the best-overlapping square of the current frame. Memories are the masks themselves, so the
loop's bookkeeping (IDs, hot-start, memory selection, gaps) is what the tests exercise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from model.tracker.memory_bank import MemoryBatch
from model.tracker.types import ObjectPrompt
from model.types import Concept
from model.video.frame_model import FrameDetections, TrackOutput

COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}


@dataclass(frozen=True)
class Square:
    colour: str
    first: int  # first frame it is visible
    last: int  # last frame it is visible
    x: float
    y: float
    vx: float = 0.0
    vy: float = 0.0
    size: int = 8

    def box(self, t: int) -> tuple[int, int, int, int] | None:
        if not self.first <= t <= self.last:
            return None
        x0, y0 = int(round(self.x + self.vx * t)), int(round(self.y + self.vy * t))
        return x0, y0, x0 + self.size, y0 + self.size


def render(squares: Sequence[Square], t: int, size: tuple[int, int] = (48, 64)) -> np.ndarray:
    image = np.zeros((*size, 3), dtype=np.uint8)
    for sq in squares:
        box = sq.box(t)
        if box is not None:
            x0, y0, x1, y1 = box
            image[max(y0, 0) : max(y1, 0), max(x0, 0) : max(x1, 0)] = COLOURS[sq.colour]
    return image


class ScriptedModel:
    """`FrameModel` over rendered frames; features are the frame resampled to the mask grid."""

    def __init__(self, mask_size: int = 32, num_maskmem: int = 7, max_object_pointers: int = 16):
        self._m = mask_size
        self._num_maskmem = num_maskmem
        self._max_ptrs = max_object_pointers
        self.calls: dict[str, int] = {
            "encode_images": 0,
            "detect": 0,
            "track": 0,
            "prompt": 0,
            "memory": 0,
        }
        self.batch_sizes: list[int] = []

    mask_size = property(lambda self: self._m)
    image_size = property(lambda self: 4 * self._m)
    device = property(lambda self: torch.device("cpu"))
    num_maskmem = property(lambda self: self._num_maskmem)
    max_object_pointers = property(lambda self: self._max_ptrs)

    def encode_images(self, images: Sequence[np.ndarray]) -> list[object]:
        self.calls["encode_images"] += 1
        out = []
        for image in images:
            h, w = image.shape[:2]
            ys = (np.arange(self._m) * h // self._m).clip(0, h - 1)
            xs = (np.arange(self._m) * w // self._m).clip(0, w - 1)
            out.append(torch.from_numpy(image[ys][:, xs].copy()))  # m x m x 3
        return out

    def encode_concept(self, concept: Concept) -> object:
        return COLOURS[concept.text or "red"]

    def detect(self, features: object, concepts: Sequence[object]) -> list[FrameDetections]:
        self.calls["detect"] += 1
        frame = features if isinstance(features, torch.Tensor) else torch.as_tensor(features)
        results = []
        for colour in concepts:
            hit = (frame == torch.tensor(colour, dtype=torch.uint8)).all(-1).numpy()
            labels, count = ndimage.label(hit)
            masks = [torch.from_numpy(labels == k + 1) for k in range(count)]
            stack = (
                torch.stack(masks) if masks else torch.zeros(0, self._m, self._m, dtype=torch.bool)
            )
            logits = torch.where(stack, 8.0, -8.0)
            boxes = torch.zeros(len(masks), 4)
            results.append(FrameDetections(torch.full((len(masks),), 0.9), logits, boxes))
        return results

    def _components(self, features: object) -> list[torch.Tensor]:
        frame = features if isinstance(features, torch.Tensor) else torch.as_tensor(features)
        labels, count = ndimage.label(frame.any(-1).numpy())
        return [torch.from_numpy(labels == k + 1) for k in range(count)]

    def _follow(self, features: object, previous: torch.Tensor) -> torch.Tensor:
        best, best_overlap = torch.zeros(self._m, self._m, dtype=torch.bool), 0
        for comp in self._components(features):
            overlap = int((comp & previous).sum())
            if overlap > best_overlap:
                best, best_overlap = comp, overlap
        return best

    def _output(self, masks: list[torch.Tensor], source: float) -> TrackOutput:
        """Pointers say where they come from: `source` (1 tracked, 2 prompted) where present."""
        stack = torch.stack(masks) if masks else torch.zeros(0, self._m, self._m, dtype=torch.bool)
        present = stack.flatten(1).any(1)
        return TrackOutput(
            mask_logits=torch.where(stack, 6.0, -6.0),
            object_score_logits=torch.where(present, 4.0, -4.0),
            iou_scores=torch.full((len(masks),), 0.9),
            pointers=(source * present[:, None].float()).expand(-1, 4).clone(),  # B x 4
        )

    def track(self, features: object, memory: MemoryBatch) -> TrackOutput:
        self.calls["track"] += 1
        self.batch_sizes.append(int(memory.features.shape[0]))
        masks = []
        for b in range(memory.features.shape[0]):
            # follow the newest memory: smallest non-zero offset, else the newest conditioning slot
            valid = memory.valid[b].nonzero().flatten().tolist()
            recent = [s for s in valid if memory.offsets[b, s] > 0]
            slot = min(recent, key=lambda s: int(memory.offsets[b, s])) if recent else valid[-1]
            previous = memory.features[b, slot, 0] > 0
            masks.append(self._follow(features, previous))
        return self._output(masks, source=1.0)

    def prompt(self, features: object, prompts: Sequence[ObjectPrompt]) -> TrackOutput:
        self.calls["prompt"] += 1
        masks = []
        for p in prompts:
            if p.mask is not None:
                masks.append(p.mask.clone())
                continue
            xy, _ = p.points_and_labels()
            cx, cy = (xy.float().mean(0) * self._m / self.image_size).long().tolist()
            area = torch.zeros(self._m, self._m, dtype=torch.bool)
            area[max(cy - 1, 0) : cy + 2, max(cx - 1, 0) : cx + 2] = True
            masks.append(self._follow(features, area))
        return self._output(masks, source=2.0)

    def encode_memory(
        self,
        features: object,
        mask_logits: torch.Tensor,
        object_score_logits: torch.Tensor,
        from_prompt: torch.Tensor,
    ) -> torch.Tensor:
        self.calls["memory"] += 1
        return mask_logits[:, None].clone()  # B x 1 x m x m
