"""The events behind tests/protocols/golden/*.msgpack, one file per event type.

The committed bytes are the wire contract: test_golden.py checks that they decode to these events
and that these events encode to them. Regenerate them only on purpose (a new event type or a new
protocol version, never to make a failing test pass), then review the diff:

    .venv/bin/python -m tests.protocols.golden_events --write
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import numpy as np

from protocols import codec, rle
from protocols.events import (
    ConceptInfo,
    ConceptsChanged,
    DropCounts,
    EndReason,
    Error,
    ErrorCode,
    Exemplar,
    FrameResult,
    Hello,
    ObjectEnded,
    ObjectMask,
    ObjectStarted,
    ObjectState,
    StreamStarted,
    StreamState,
    StreamStatus,
    Thresholds,
    Unknown,
)

GOLDEN_DIR = Path(__file__).parent / "golden"


def _mask() -> np.ndarray:
    """A 6 x 8 mask with a blob touching the top-left pixel and one wrapping a column."""
    m = np.zeros((6, 8), np.bool_)
    m[0:3, 0:2] = True
    m[4:6, 5] = True
    m[0:2, 6] = True
    return m


EXPECTED = {
    "hello": Hello(protocol_version=1, engine_version="0.1.0", capabilities=("redaction", "nats")),
    "stream_started": StreamStarted(
        stream_id="cam1",
        width=1920,
        height=1080,
        fps=30.0,
        time_base=Fraction(1, 90000),
        source="rtsp://camera.local:554/stream1",
    ),
    "frame_result": FrameResult(
        stream_id="cam1",
        seq=42,
        pts=126000,
        time_base=Fraction(1, 90000),
        captured_ns=1_700_000_000_000_000_000,
        published_ns=1_700_000_000_045_000_000,
        width=8,
        height=6,
        objects=(
            ObjectMask(
                object_id=7,
                concept_id=1,
                score=0.875,
                box_xyxy=(0.0, 0.0, 7.0, 6.0),
                area=int(_mask().sum()),
                rle=rle.encode(_mask()),
                state=ObjectState.CONFIRMED,
            ),
            ObjectMask(
                object_id=9,
                concept_id=None,
                score=0.5,
                box_xyxy=(0.0, 0.0, 0.0, 0.0),
                area=0,
                rle=rle.encode(np.zeros((6, 8), np.bool_)),
                state=ObjectState.TENTATIVE,
            ),
        ),
    ),
    "object_started": ObjectStarted(stream_id="cam1", object_id=7, concept_id=1, seq=40),
    "object_ended": ObjectEnded(stream_id="cam1", object_id=7, seq=95, reason=EndReason.LOST),
    "concepts_changed": ConceptsChanged(
        stream_id="cam1",
        concepts=(
            ConceptInfo(
                concept_id=1,
                text="person",
                exemplars=(),
                thresholds=Thresholds(detection=None, new_object=None),
            ),
            ConceptInfo(
                concept_id=2,
                text=None,
                exemplars=(
                    Exemplar(box_xyxy=(10.0, 20.0, 110.0, 220.0), positive=True),
                    Exemplar(box_xyxy=(300.0, 40.0, 350.5, 90.25), positive=False),
                ),
                thresholds=Thresholds(detection=0.4, new_object=0.6),
            ),
        ),
    ),
    "stream_status": StreamStatus(
        stream_id="cam1",
        state=StreamState.LIVE,
        fps_in=30.0,
        fps_out=24.5,
        dropped=17,
        latency_ms_p50=41.5,
        latency_ms_p99=88.0,
        drops=DropCounts(superseded=15, queue_full=0, stale=1, decode_error=1),
        subscriber_dropped=3,
    ),
    "error": Error(
        code=ErrorCode.SOURCE_FAILED, message="cannot open rtsp://camera.local/", stream_id="cam1"
    ),
    # A tag from a future version: decodes as Unknown and re-encodes to the same bytes.
    "unknown": Unknown(type="zone_entered", version=2, fields={"s": "cam1", "zone": 3}),
}


def golden_path(name: str) -> Path:
    return GOLDEN_DIR / f"{name}.msgpack"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="overwrite the committed golden files")
    args = parser.parse_args()
    for name, event in EXPECTED.items():
        data = codec.encode(event)
        path = golden_path(name)
        if args.write:
            path.write_bytes(data)
        same = path.exists() and path.read_bytes() == data
        print(
            f"{path.name:24s} {len(data):5d} bytes  {'written' if args.write else 'same' if same else 'DIFFERS'}"
        )


if __name__ == "__main__":
    main()
