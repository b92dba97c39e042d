"""The stream snapshot codec: round trip, the 64 KiB budget at SAM 3 sizes, one error for junk."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest

from protocols import rle
from protocols.events import ConceptInfo, Exemplar, Thresholds
from protocols.snapshot import (
    MAX_SNAPSHOT_BYTES,
    SnapshotError,
    SnapshotObject,
    StreamSnapshot,
    decode_snapshot,
    encode_snapshot,
    pointer_bytes,
)


def _blob(side: int, rng: np.random.Generator) -> np.ndarray:
    """An object-like mask: an ellipse with a ragged edge, somewhere in a side x side grid."""
    yy, xx = np.mgrid[:side, :side]
    cy, cx = rng.uniform(0.2, 0.8, 2) * side
    ry, rx = rng.uniform(0.04, 0.15, 2) * side
    wobble = 1 + 0.15 * np.sin(np.arctan2(yy - cy, xx - cx) * rng.integers(3, 9))
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= wobble**2


def _snapshot(objects: int, side: int = 288, dim: int = 256, seed: int = 0) -> StreamSnapshot:
    rng = np.random.default_rng(seed)
    concepts = (
        ConceptInfo(0, "person", (), Thresholds(None, None)),
        ConceptInfo(1, None, (Exemplar((1.0, 2.0, 30.0, 40.0), True),), Thresholds(0.4, 0.6)),
    )
    objs = []
    for i in range(objects):
        mask = _blob(side, rng)
        ys, xs = np.nonzero(mask)
        box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
        objs.append(
            SnapshotObject(
                object_id=3 * i + 1, concept_id=i % 2 if i % 5 else None, score=0.5 + i / 100,
                box_xyxy=box, mask=rle.encode(mask),
                pointer=pointer_bytes(rng.standard_normal(dim)),
                last_seen_s=12.5 - i / 30, published=i % 3 != 0, confirmed=i % 4 != 0,
            )
        )  # fmt: skip
    return StreamSnapshot(
        stream_id="cam-1", owner="host:123", taken_ns=1_700_000_000_000_000_000, next_seq=901,
        frame_index=880, clock_s=29.3, next_object_id=3 * objects + 5, next_concept_id=2,
        concepts=concepts, objects=tuple(objs),
    )  # fmt: skip


def test_round_trip_keeps_every_field() -> None:
    snapshot = _snapshot(5)
    assert decode_snapshot(encode_snapshot(snapshot)) == snapshot
    obj = decode_snapshot(encode_snapshot(snapshot)).objects[1]
    assert obj.mask_array().shape == (288, 288) and obj.pointer_array().dtype == np.float16
    assert obj.pointer_array().shape == (256,)


def test_32_objects_at_sam3_sizes_fit_64_kib_at_full_resolution() -> None:
    snapshot = _snapshot(32)
    data = encode_snapshot(snapshot)
    assert len(data) <= MAX_SNAPSHOT_BYTES
    assert decode_snapshot(data) == snapshot  # nothing had to be downsampled


def test_masks_are_halved_until_the_snapshot_fits() -> None:
    snapshot = _snapshot(32, seed=1)
    full = len(encode_snapshot(snapshot))
    data = encode_snapshot(snapshot, max_bytes=full - 2000)  # full-size masks do not fit
    assert len(data) <= full - 2000
    back = decode_snapshot(data)
    assert {o.mask_array().shape for o in back.objects} == {(144, 144)}
    before, after = snapshot.objects[7], back.objects[7]
    assert after.box_xyxy == tuple(v / 2 for v in before.box_xyxy)
    assert after.object_id == before.object_id and after.pointer == before.pointer
    small = before.mask_array().reshape(144, 2, 144, 2).any(axis=(1, 3))
    assert np.array_equal(after.mask_array(), small)


def test_a_snapshot_that_cannot_fit_is_refused_in_one_sentence() -> None:
    with pytest.raises(SnapshotError, match="over the limit of 2000 bytes.*track fewer objects"):
        encode_snapshot(_snapshot(40), max_bytes=2000)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\xc1\xff junk", "not msgpack"),
        (msgpack.packb({"t": "frame_result", "v": 1}), "no 'sam3.snapshot' kind marker"),
        (msgpack.packb([1, 2, 3]), "kind marker"),
        (msgpack.packb({"k": "sam3.snapshot", "v": 99}), "version 99 was written by a newer"),
        (msgpack.packb({"k": "sam3.snapshot", "v": "1"}), "bad version"),
        (msgpack.packb({"k": "sam3.snapshot", "v": 1}), "missing field 'cs'"),
    ],
)
def test_bad_payloads_raise_one_error(payload: bytes, message: str) -> None:
    with pytest.raises(SnapshotError, match=message):
        decode_snapshot(payload)


def test_mistyped_fields_and_bad_masks_raise_one_error() -> None:
    body = msgpack.unpackb(encode_snapshot(_snapshot(2)))
    body["o"][0]["id"] = "7"
    with pytest.raises(SnapshotError, match="malformed stream snapshot: expected an int"):
        decode_snapshot(msgpack.packb(body))
    body = msgpack.unpackb(encode_snapshot(_snapshot(2)))
    body["o"][1]["m"][2] = b"\x7f\x7f"  # not COCO counts
    with pytest.raises(SnapshotError, match="malformed stream snapshot"):
        decode_snapshot(msgpack.packb(body))
    with pytest.raises(SnapshotError, match="must be bytes"):
        decode_snapshot("text")  # type: ignore[arg-type]
