"""COCO run-length encoding of binary masks, byte-identical to pycocotools, numpy only.

A mask of shape (H, W) is read column-major (down the first column, then the next), as COCO does.
Its runs alternate zeros and ones and start with zeros, so a mask whose top-left pixel is set starts
with a zero-length run. The compressed form, `Rle.counts`, is pycocotools' ASCII string: each run
(from the fourth on, minus the run two before it) is written as signed 5-bit groups, least
significant first, bit 0x20 meaning "another group follows", each group offset by 48 (`'0'`).

Everything is vectorised: over pixels to find the runs, over runs to write and parse the string.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from protocols.errors import ProtocolError

Runs = npt.NDArray[np.int64]  # uncompressed COCO counts: zeros, ones, zeros, ...
BoolMask = npt.NDArray[np.bool_]

_DENSE_CHANGES = 64  # above H*W/64 changes, find them on a transposed copy instead
_MAX_GROUPS = 12  # 60 bits: every run of any mask that fits in memory, and no int64 overflow


@dataclass(frozen=True, slots=True)
class Rle:
    """A COCO compressed RLE: `size` is (height, width), `counts` the ASCII counts string."""

    size: tuple[int, int]
    counts: bytes

    @property
    def height(self) -> int:
        return self.size[0]

    @property
    def width(self) -> int:
        return self.size[1]

    def to_coco(self) -> dict[str, Any]:
        """The dict pycocotools takes: `{"size": [h, w], "counts": bytes}`."""
        return {"size": [self.size[0], self.size[1]], "counts": self.counts}

    @classmethod
    def from_coco(cls, obj: dict[str, Any]) -> Rle:
        """From pycocotools' dict; `counts` may be bytes or str (the JSON form)."""
        counts = obj["counts"]
        if isinstance(counts, str):
            counts = counts.encode("ascii")
        h, w = obj["size"]
        return cls(size=(int(h), int(w)), counts=bytes(counts))


# --- masks <-> runs -------------------------------------------------------------------------


def mask_to_runs(mask: npt.ArrayLike) -> Runs:
    """Uncompressed COCO counts of a 2-D mask (bool, or numbers where nonzero is set)."""
    m = _as_bool_mask(mask)
    h, w = m.shape
    n = h * w
    if n == 0:
        return np.zeros(1, np.int64)
    down_changes = m[1:] != m[:-1]  # (H-1) x W: row r vs row r+1 of the same column
    if np.count_nonzero(down_changes) > n // _DENSE_CHANGES:
        # Noisy mask: sorting the changes would cost more than one transposing copy.
        flat = m.T.ravel()  # column-major pixels, H*W
        changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    else:
        # Typical mask (a few blobs): the column-major index of every pixel that differs from
        # the pixel before it, found without transposing: changes down a column, then across.
        row, col = np.divmod(np.flatnonzero(down_changes), w)
        across = np.flatnonzero(m[-1, :-1] != m[0, 1:]) + 1  # bottom of col c-1 vs top of col c
        changes = np.concatenate([col * h + row + 1, across * h])
        changes.sort()
    bounds = np.concatenate([[0], changes, [n]])
    runs = np.diff(bounds)
    if m[0, 0]:
        runs = np.concatenate([[0], runs])
    return runs.astype(np.int64, copy=False)


def runs_to_mask(runs: Runs, size: tuple[int, int]) -> BoolMask:
    """Inverse of `mask_to_runs`: an (H, W) bool mask, Fortran-ordered like pycocotools'."""
    h, w = size
    _check_runs(runs, h * w)
    values = np.zeros(len(runs), np.bool_)
    values[1::2] = True
    flat = np.repeat(values, runs)  # column-major pixels, H*W
    return flat.reshape(w, h).T  # W x H (C) -> H x W (F)


# --- runs <-> counts string -----------------------------------------------------------------


def runs_to_string(runs: Runs) -> bytes:
    """pycocotools' compressed counts string for uncompressed counts."""
    x = np.asarray(runs, np.int64).copy()
    x[3:] -= runs[1:-2]  # from the fourth run on: the difference to the run two before
    # groups per value: the fewest 5-bit groups holding x as a signed (two's complement) number
    groups = np.ones(len(x), np.int64)
    limit = 16
    while True:
        wider = (x >= limit) | (x < -limit)
        if not wider.any():
            break
        groups += wider
        limit <<= 5
    width = int(groups.max(initial=1))
    index = np.arange(width)
    chunks = (x[:, None] >> (5 * index)) & 0x1F  # runs x width
    chunks |= (index < groups[:, None] - 1) * 0x20  # "more follows" on all but the last group
    chunks += 48
    return chunks[index < groups[:, None]].astype(np.uint8).tobytes()


def string_to_runs(counts: bytes) -> Runs:
    """Parse pycocotools' compressed counts string into uncompressed counts."""
    if not isinstance(counts, bytes | bytearray | memoryview):
        raise ProtocolError(f"RLE counts must be bytes, got {type(counts).__name__}")
    b = np.frombuffer(counts, np.uint8).astype(np.int64) - 48
    if b.size == 0:
        return np.zeros(0, np.int64)
    if ((b < 0) | (b > 63)).any():
        raise ProtocolError("RLE counts contain a byte outside '0'..'o'")
    more = (b & 0x20) != 0
    if more[-1]:
        raise ProtocolError("RLE counts end in the middle of a number")
    ends = np.flatnonzero(~more)  # last group of each value
    starts = np.concatenate([[0], ends[:-1] + 1])
    groups = ends - starts + 1
    if groups.max() > _MAX_GROUPS:
        raise ProtocolError("RLE counts hold a number too large for any mask")
    position = np.arange(b.size) - np.repeat(starts, groups)  # group index within its value
    x = np.add.reduceat((b & 0x1F) << (5 * position), starts)
    negative = (b[ends] & 0x10) != 0
    x[negative] -= np.left_shift(1, 5 * groups[negative])  # sign-extend the last group
    runs = x
    runs[1::2] = np.cumsum(x[1::2])  # undo the differences, along odd and even runs separately
    runs[2::2] = np.cumsum(x[2::2])
    return runs


# --- the public codec -----------------------------------------------------------------------


def encode(mask: npt.ArrayLike) -> Rle:
    """Compressed COCO RLE of one (H, W) mask; same bytes as `pycocotools.mask.encode`."""
    m = _as_bool_mask(mask)
    return Rle(size=(int(m.shape[0]), int(m.shape[1])), counts=runs_to_string(mask_to_runs(m)))


def decode(rle: Rle) -> BoolMask:
    """The (H, W) bool mask of an RLE (Fortran-ordered). Raises ProtocolError if malformed."""
    return runs_to_mask(string_to_runs(rle.counts), rle.size)


def area(rle: Rle) -> int:
    """Number of set pixels, without decoding the mask."""
    runs = string_to_runs(rle.counts)
    return int(runs[1::2].sum())


def bbox(rle: Rle) -> tuple[int, int, int, int]:
    """Tight box (x0, y0, x1, y1) of the set pixels, x1/y1 exclusive; (0, 0, 0, 0) when empty.

    Same box as `pycocotools.mask.toBbox` (which returns x, y, w, h), without decoding the mask.
    """
    h = rle.size[0]
    runs = string_to_runs(rle.counts)
    runs = runs[: len(runs) // 2 * 2]  # a trailing zeros run does not matter
    if runs.size == 0 or h == 0:
        return (0, 0, 0, 0)
    ends = np.cumsum(runs)
    first = ends[0::2]  # first pixel of each ones run
    last = ends[1::2] - 1  # last pixel of each ones run
    x_first, y_first = np.divmod(first, h)
    x_last, y_last = np.divmod(last, h)
    if (x_first < x_last).any():  # a run that wraps into the next column spans every row
        y0, y1 = 0, h - 1
    else:
        y0, y1 = int(min(y_first.min(), y_last.min())), int(max(y_first.max(), y_last.max()))
    x0, x1 = int(min(x_first.min(), x_last.min())), int(max(x_first.max(), x_last.max()))
    return (x0, y0, x1 + 1, y1 + 1)


# --- batched --------------------------------------------------------------------------------


def encode_batch(masks: npt.ArrayLike) -> list[Rle]:
    """Encode N masks of one size, (N, H, W) -> N RLEs."""
    stack = np.asarray(masks)
    if stack.ndim != 3:
        raise ValueError(f"expected masks of shape (N, H, W), got {stack.shape}")
    return [encode(m) for m in stack]


def decode_batch(rles: Sequence[Rle]) -> BoolMask:
    """Decode N RLEs of one size into an (N, H, W) bool array."""
    if not rles:
        raise ValueError("decode_batch needs at least one RLE (it cannot infer a size)")
    size = rles[0].size
    if any(r.size != size for r in rles):
        raise ValueError("decode_batch needs RLEs of one size")
    out = np.empty((len(rles), *size), np.bool_)
    for i, r in enumerate(rles):
        out[i] = decode(r)
    return out


def area_batch(rles: Sequence[Rle]) -> npt.NDArray[np.int64]:
    """Areas of N RLEs, shape (N,)."""
    return np.array([area(r) for r in rles], np.int64)


def bbox_batch(rles: Sequence[Rle]) -> npt.NDArray[np.int64]:
    """Boxes of N RLEs, shape (N, 4) xyxy, x1/y1 exclusive."""
    return np.array([bbox(r) for r in rles], np.int64).reshape(len(rles), 4)


# --- helpers --------------------------------------------------------------------------------


def _as_bool_mask(mask: npt.ArrayLike) -> BoolMask:
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"expected a 2-D (H, W) mask, got shape {m.shape}")
    return m if m.dtype == np.bool_ else m != 0


def _check_runs(runs: Runs, pixels: int) -> None:
    if runs.size and runs.min() < 0:
        raise ProtocolError("RLE counts contain a negative run")
    total = int(runs.sum())
    if total != pixels:
        raise ProtocolError(f"RLE counts cover {total} pixels, the size says {pixels}")
