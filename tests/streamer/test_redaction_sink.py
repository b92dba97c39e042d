"""Fail-closed redaction: no frame ever leaves with the chosen objects visible.

The scripted tracker finds the pure-red square of each frame, so "unredacted" is checkable pixel by
pixel: a written frame must hold no pure-red pixel, frames with results must be untouched outside
the (grown) mask, and frames without results must be the fail-closed full-frame redaction.
"""

from __future__ import annotations

import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from model.types import Concept
from streamer.blur import RedactConfig, RedactStyle, redact_all
from streamer.engine import Engine, EngineConfig, StreamSpec
from streamer.outputs import FileOutput, OutputError, RtspOutput
from streamer.sinks.redaction import OnMissing, RedactionSink, RedactionSpec
from streamer.types import Frame
from tests.fakes import (
    COLOURS,
    CollectingWriter,
    FakeSource,
    FakeSources,
    FakeTracker,
    eventually,
    scene,
)
from tests.streamer.conftest import free_port

pytestmark = pytest.mark.timeout(60)
RED = np.array(COLOURS["red"], dtype=np.uint8)


def redaction_engine(tracker: FakeTracker, source: FakeSource, writer: CollectingWriter) -> Engine:
    return Engine(
        lambda: tracker,
        config=EngineConfig(status_interval_s=0.05, drain_timeout_s=5.0),
        source_factory=FakeSources(cam=source),
        redaction_factory=lambda spec, concepts: RedactionSink(spec, concepts, [writer]),
    )


def red_pixels(image: np.ndarray) -> int:
    return int(np.all(image == RED, axis=-1).sum())


async def test_stalled_model_never_lets_an_unredacted_frame_out() -> None:
    stall = threading.Event()  # cleared: the model is frozen on its first frame
    tracker, writer = FakeTracker(stall=stall), CollectingWriter()
    camera = FakeSource(frames=60, paced=True, live=True, fps=100)
    spec = RedactionSpec(concepts=("red",), budget_s=0.1, draw=RedactConfig(margin_px=2))
    async with redaction_engine(tracker, camera, writer) as engine:
        session = await engine.add_stream(
            StreamSpec("cam", concepts=(Concept("red"),), redaction=spec)
        )
        sink = session.frame_sinks[0]
        assert isinstance(sink, RedactionSink)
        await eventually(lambda: sink.fully_redacted >= 10)
        stall.set()
        await engine.join()

    assert writer.closed and len(writer.frames) > 10
    assert sink.written > 0 and sink.fully_redacted >= 10
    for seq, image in writer.frames:
        assert red_pixels(image) == 0, f"frame {seq} left with the red object visible"
    seqs = [seq for seq, _ in writer.frames]
    assert seqs == sorted(seqs)  # order kept
    fail_closed = {
        seq
        for seq, image in writer.frames
        if np.array_equal(image, redact_all(scene(seq), spec.draw))
    }
    assert len(fail_closed) == sink.fully_redacted


async def test_frames_with_results_change_only_inside_the_grown_mask() -> None:
    tracker, writer = FakeTracker(), CollectingWriter()
    clip = FakeSource(frames=8)
    spec = RedactionSpec(concepts=("red",), draw=RedactConfig(style=RedactStyle.FILL, margin_px=3))
    async with redaction_engine(tracker, clip, writer) as engine:
        await engine.add_stream(StreamSpec("cam", concepts=(Concept("red"),), redaction=spec))
        await engine.join()
    assert [seq for seq, _ in writer.frames] == list(
        range(8)
    )  # a file: every frame, each its own mask
    for seq, image in writer.frames:
        original = scene(seq)
        changed = np.any(image != original, axis=-1)
        ys, xs = np.nonzero(changed)
        x = seq % (64 - 12)
        assert (
            ys.min() >= 10 - 3 and ys.max() < 22 + 3 and xs.min() >= x - 3 and xs.max() < x + 12 + 3
        )
        assert red_pixels(image) == 0 and np.all(image[10:22, x : x + 12] == 0)


async def test_drop_policy_writes_only_frames_with_their_own_masks() -> None:
    stall = threading.Event()
    tracker, writer = FakeTracker(stall=stall), CollectingWriter()
    camera = FakeSource(frames=40, paced=True, live=True, fps=100)
    spec = RedactionSpec(concepts=("*",), budget_s=0.05, on_missing=OnMissing.DROP)
    async with redaction_engine(tracker, camera, writer) as engine:
        session = await engine.add_stream(
            StreamSpec("cam", concepts=(Concept("red"),), redaction=spec)
        )
        sink = session.frame_sinks[0]
        assert isinstance(sink, RedactionSink)
        await eventually(lambda: sink.missing_dropped >= 5)
        stall.set()
        await engine.join()
    assert sink.fully_redacted == 0 and sink.written == len(writer.frames) > 0
    assert all(red_pixels(image) == 0 for _, image in writer.frames)
    assert session.stats.drops["redaction_missing"] == sink.missing_dropped


async def test_objects_of_other_concepts_stay_visible() -> None:
    tracker, writer = FakeTracker(), CollectingWriter()
    both = FakeSource(frames=3, draw=lambda seq: _two_squares(seq))
    spec = RedactionSpec(concepts=("red",))
    async with redaction_engine(tracker, both, writer) as engine:
        await engine.add_stream(
            StreamSpec("cam", concepts=(Concept("red"), Concept("blue")), redaction=spec)
        )
        await engine.join()
    for _, image in writer.frames:
        assert red_pixels(image) == 0
        assert np.all(image[30:40, 40:50] == COLOURS["blue"])


def _two_squares(seq: int) -> np.ndarray:
    image = scene(seq)
    image[30:40, 40:50] = COLOURS["blue"]
    return image


async def test_redacted_mp4_through_the_real_file_output(tmp_path: Path) -> None:
    out = tmp_path / "redacted.mp4"
    clip = FakeSource(frames=12, width=64, height=48)
    spec = RedactionSpec(concepts=("red",), outputs=(str(out),),
                         draw=RedactConfig(style=RedactStyle.FILL, margin_px=2))  # fmt: skip
    engine = Engine(FakeTracker, source_factory=FakeSources(cam=clip))
    async with engine:
        await engine.add_stream(StreamSpec("cam", concepts=(Concept("red"),), redaction=spec))
        await engine.join()
    with av.open(str(out)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == 12
    for seq, image in enumerate(decoded):
        x = seq % (64 - 12)
        square = image[10:22, x : x + 12].astype(int)
        assert square.mean() < 40, f"frame {seq}: the red square is still visible"
        assert abs(image[30:, :].astype(int).mean() - 128) < 10  # the rest of the scene is intact


async def test_bad_output_target_is_refused_before_the_stream_starts(tmp_path: Path) -> None:
    clip = FakeSource(frames=5)
    spec = RedactionSpec(concepts=("red",), outputs=(str(tmp_path / "out.avi"),))
    async with Engine(FakeTracker, source_factory=FakeSources(cam=clip)) as engine:
        with pytest.raises(ValueError, match="out.avi"):
            await engine.add_stream(StreamSpec("cam", redaction=spec))
        assert not engine.sessions and not clip.closed


async def test_a_failing_output_lets_the_others_finish_their_files(tmp_path: Path) -> None:
    dead = RtspOutput(f"rtsp://127.0.0.1:{free_port()}/nobody")  # refused: fails at its first frame
    out = tmp_path / "kept.mp4"
    sink = RedactionSink(RedactionSpec(concepts=("*",)), {}, [dead, FileOutput(out)])
    sink.stream_started(None, live=False)
    for seq in range(6):
        sink.offer_frame(Frame("cam", seq, seq, Fraction(1, 10), time.time_ns(), scene(seq)))
    sink.end_input()  # no results: every frame leaves fully redacted

    reported: list[OutputError] = []
    sink.on_output_error = reported.append
    await sink.run()  # the dead output stops alone
    assert [str(e) for e in reported] == [str(e) for e in sink.output_errors]
    assert len(reported) == 1 and "nobody" in str(reported[0])
    with av.open(str(out)) as container:  # finalised (an mp4 without its index does not open)
        assert sum(1 for _ in container.decode(video=0)) == 6
    # the encoder threads end once their files are closed; under load that may trail run() a
    # little (a thread that never ends still fails here)
    await eventually(
        lambda: (
            not [t for t in threading.enumerate() if t.name.startswith("output-") and t.is_alive()]
        ),
        within_s=30,
    )
