"""COCO RLE: byte-identical to pycocotools on every kind of mask, plus round trips and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis.extra import numpy as hnp
from pycocotools import mask as coco

from protocols import rle
from protocols.errors import ProtocolError
from protocols.rle import Rle


def _coco(mask: np.ndarray) -> dict:
    return coco.encode(np.asfortranarray(mask.astype(np.uint8)))


def _blobs(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.ogrid[:h, :w]
    m = np.zeros((h, w), np.bool_)
    for _ in range(3):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(2, max(h, w) / 3)
        m |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    return m


def _cases() -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    cases = [
        ("empty", np.zeros((37, 53), np.bool_)),
        ("full", np.ones((37, 53), np.bool_)),
        ("1x1 set", np.ones((1, 1), np.bool_)),
        ("1x1 clear", np.zeros((1, 1), np.bool_)),
        ("1xN", rng.random((1, 97)) < 0.5),
        ("Nx1", rng.random((97, 1)) < 0.5),
        ("odd random sparse", rng.random((31, 17)) < 0.05),
        ("odd random dense", rng.random((29, 41)) < 0.5),
        ("noise 480p", rng.random((480, 640)) < 0.5),  # the transposing path
        ("blobs 1080p", _blobs(1080, 1920, 1)),
        ("blobs odd", _blobs(333, 501, 2)),
        ("top-left only", np.pad(np.ones((1, 1), np.bool_), ((0, 8), (0, 6)))),
        ("bottom-right only", np.pad(np.ones((1, 1), np.bool_), ((8, 0), (6, 0)))),
        ("column wrap", np.eye(9, 7, k=-2, dtype=np.bool_) | np.eye(9, 7, k=6, dtype=np.bool_)),
    ]
    # long runs whose differences need many 5-bit groups, positive and negative
    stripes = np.zeros((4000, 3), np.bool_)
    stripes[:3999, 0] = True
    stripes[5:, 2] = True
    cases.append(("huge runs", stripes))
    return cases


CASES = _cases()


@pytest.mark.parametrize(("name", "mask"), CASES, ids=[n for n, _ in CASES])
def test_matches_pycocotools(name: str, mask: np.ndarray) -> None:
    ours, ref = rle.encode(mask), _coco(mask)
    assert ours.counts == ref["counts"]
    assert list(ours.size) == ref["size"]
    assert rle.area(ours) == int(coco.area(ref)) == int(mask.sum())
    x0, y0, x1, y1 = rle.bbox(ours)
    assert [x0, y0, x1 - x0, y1 - y0] == coco.toBbox(ref).tolist()
    decoded = rle.decode(ours)
    assert decoded.dtype == np.bool_ and decoded.shape == mask.shape
    np.testing.assert_array_equal(decoded, coco.decode(ref).astype(np.bool_))
    np.testing.assert_array_equal(decoded, mask)


@settings(max_examples=200, deadline=None)
@given(hnp.arrays(np.bool_, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=24)))
def test_random_masks_match_pycocotools(mask: np.ndarray) -> None:
    ours = rle.encode(mask)
    assert ours.counts == _coco(mask)["counts"]
    np.testing.assert_array_equal(rle.decode(ours), mask)


def test_accepts_uint8_and_non_contiguous_masks() -> None:
    mask = _blobs(60, 80, 3)
    expected = rle.encode(mask).counts
    assert rle.encode(mask.astype(np.uint8) * 255).counts == expected
    assert rle.encode(np.asfortranarray(mask)).counts == expected
    wide = np.zeros((60, 160), np.bool_)
    wide[:, ::2] = mask
    assert rle.encode(wide[:, ::2]).counts == expected


def test_batched_equals_single() -> None:
    masks = np.stack([_blobs(45, 70, s) for s in range(5)] + [np.zeros((45, 70), np.bool_)])
    rles = rle.encode_batch(masks)
    assert rles == [rle.encode(m) for m in masks]
    np.testing.assert_array_equal(rle.decode_batch(rles), masks)
    np.testing.assert_array_equal(rle.area_batch(rles), masks.sum(axis=(1, 2)))
    assert rle.bbox_batch(rles).tolist() == [list(rle.bbox(r)) for r in rles]
    assert rle.bbox_batch([]).shape == (0, 4)


def test_pycocotools_dict_interop() -> None:
    mask = _blobs(30, 40, 4)
    ours = rle.encode(mask)
    assert Rle.from_coco(_coco(mask)) == ours
    assert Rle.from_coco({"size": [30, 40], "counts": ours.counts.decode()}) == ours
    np.testing.assert_array_equal(coco.decode(ours.to_coco()), mask)


@pytest.mark.parametrize(
    ("counts", "size", "message"),
    [
        (b"0", (2, 2), "cover 0 pixels, the size says 4"),
        (b"5", (2, 2), "cover 5 pixels"),
        (b"\x01", (1, 1), "outside '0'..'o'"),
        (b"0`", (1, 1), "end in the middle of a number"),
        (b"`" * 13 + b"1", (1, 1), "too large"),
        (b"O5", (2, 2), "negative run"),  # runs -1, 5,
    ],
)
def test_malformed_counts_raise_protocol_error(counts: bytes, size, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        rle.decode(Rle(size=size, counts=counts))


def test_bad_masks_raise_value_error() -> None:
    with pytest.raises(ValueError, match=r"2-D \(H, W\) mask"):
        rle.encode(np.zeros((2, 3, 4), np.bool_))
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        rle.encode_batch(np.zeros((3, 4), np.bool_))
