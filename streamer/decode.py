"""Pure image plumbing between the decoder and the model: no I/O, no state.

* `to_rgb(frame, size)`: an `av.VideoFrame` -> H x W x 3 uint8 RGB, upright (turned as the file's
  display matrix says: phones record portrait video as landscape plus a rotation), optionally
  scaled in the same swscale pass (cheaper than decoding at full size and resizing after).
* `upright_size(frame)`: the (width, height) that `to_rgb` returns without scaling.
* `resize(rgb, size)`: area-averaging down, bilinear up.
* `letterbox(rgb, side)` -> `Letterboxed`: fit inside side x side keeping the aspect ratio, pad the
  rest; `Letterboxed.unletterbox(mask)` maps a model-size mask back to the source frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import av
import cv2
import numpy as np


def to_rgb(frame: av.VideoFrame, size: tuple[int, int] | None = None) -> np.ndarray:
    """Decoded frame -> H x W x 3 uint8 RGB, upright, C-contiguous; `size` is the upright
    (width, height)."""
    turns = _quarter_turns(frame)
    if size is not None:
        coded = size if turns % 2 == 0 else (size[1], size[0])  # the size before turning
        if (frame.width, frame.height) != coded:
            frame = frame.reformat(width=coded[0], height=coded[1], format="rgb24")
    rgb = frame.to_ndarray(format="rgb24")  # H x W x 3, as coded
    if turns:
        rgb = np.rot90(rgb, turns)  # counterclockwise quarter turns; H and W swap when odd
    return np.ascontiguousarray(rgb)


def upright_size(frame: av.VideoFrame) -> tuple[int, int]:
    """(width, height) of the frame as it is meant to be seen (after its display rotation)."""
    if _quarter_turns(frame) % 2:
        return frame.height, frame.width
    return frame.width, frame.height


def _quarter_turns(frame: av.VideoFrame) -> int:
    """Counterclockwise quarter turns of the frame's display matrix, 0..3 (0 without one)."""
    return round(frame.rotation / 90) % 4


def resize(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """H x W x C -> size[1] x size[0] x C; INTER_AREA when shrinking (no aliasing), bilinear else."""
    h, w = rgb.shape[:2]
    if (w, h) == size:
        return rgb
    shrinking = size[0] * size[1] < w * h
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


@dataclass(frozen=True, slots=True)
class Letterboxed:
    """An image scaled by `scale` and placed at (`pad_x`, `pad_y`) in a `side` x `side` canvas."""

    image: np.ndarray  # side x side x 3 uint8
    scale: float
    pad_x: int
    pad_y: int
    source_size: tuple[int, int]  # (width, height) of the original frame

    def unletterbox(self, mask: np.ndarray) -> np.ndarray:
        """side x side (or any square model-size) mask -> source H x W mask of the same dtype."""
        side = self.image.shape[0]
        if mask.shape[0] != mask.shape[1]:
            raise ValueError(f"expected a square model-size mask, got shape {mask.shape}")
        if mask.shape[0] != side:  # the model's mask grid is coarser than the canvas
            mask = _resize_mask(mask, (side, side))
        w, h = self.source_size
        inner_w, inner_h = round(w * self.scale), round(h * self.scale)
        crop = mask[self.pad_y : self.pad_y + inner_h, self.pad_x : self.pad_x + inner_w]
        return _resize_mask(crop, (w, h))


def letterbox(rgb: np.ndarray, side: int, fill: int = 0) -> Letterboxed:
    """H x W x 3 -> side x side x 3, aspect kept, centred, padding filled with `fill`."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 image, got shape {rgb.shape}")
    h, w = rgb.shape[:2]
    scale = side / max(w, h)
    inner_w, inner_h = max(1, round(w * scale)), max(1, round(h * scale))
    pad_x, pad_y = (side - inner_w) // 2, (side - inner_h) // 2
    canvas = np.full((side, side, 3), fill, dtype=np.uint8)
    canvas[pad_y : pad_y + inner_h, pad_x : pad_x + inner_w] = resize(rgb, (inner_w, inner_h))
    return Letterboxed(canvas, scale, pad_x, pad_y, (w, h))


def _resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour for bool/int masks, bilinear for float (probability/logit) masks."""
    if mask.dtype == np.bool_:
        return cv2.resize(mask.view(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
    interpolation = (
        cv2.INTER_LINEAR if np.issubdtype(mask.dtype, np.floating) else cv2.INTER_NEAREST
    )
    return cv2.resize(mask, size, interpolation=interpolation)
