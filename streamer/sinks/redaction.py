"""Mask-accurate, fail-closed redaction of one stream, written to video outputs.

Every decoded frame enters a bounded queue (DROP_OLDEST: a frame that falls off is never
written). The sink takes frames in order and waits for *that frame's* result (same seq, hence the
same pts): the masks of the chosen concepts' objects, grown by `margin_px`, are blurred, pixelated
or filled (streamer/blur.py) on the very pixels they were computed from. A frame without its result

  * because the model skipped it (a later frame's result arrived first),
  * because its result is later than `budget_s` after capture (live streams only), or
  * because the stream ended before the model got to it,

leaves fully redacted (`on_missing=blur`, the default) or not at all (`on_missing=drop`); it
never leaves unredacted. Drawing runs in a thread and each output encodes in its own, off the
loop; a file output that falls behind makes frames fall off this sink's queue, never the
pipeline's.

An output that fails (a dead RTSP push, a full disk) stops alone: it is reported once through
`on_output_error` (the session logs it and publishes an `Error` event), the frames it no longer
gets are counted (`redaction_output_failed`), and the other outputs and the stream's events go
on. Failing closed is about never writing an unredacted frame, which a dead output cannot do.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from model.types import Concept, FrameTrack
from streamer.blur import RedactConfig, redact, redact_all
from streamer.channels import Bounded, Overflow
from streamer.outputs import OutputError, VideoOutput
from streamer.types import Frame, SourceInfo

ALL_OBJECTS = "*"


class OnMissing(enum.Enum):
    BLUR = "blur"  # the whole frame leaves redacted
    DROP = "drop"  # the frame does not leave at all


@dataclass(frozen=True)
class RedactionSpec:
    concepts: tuple[str, ...]  # concept texts whose objects are redacted; ("*",) for every object
    draw: RedactConfig = RedactConfig()  # style (blur / pixelate / fill), margin_px, strength
    outputs: tuple[str, ...] = ()  # .mp4/.mkv paths or rtsp:// URLs
    budget_s: float = 1.0  # live: how long after capture a frame may wait for its result
    on_missing: OnMissing = OnMissing.BLUR
    queue: int = 64  # frames waiting for their results


class RedactionSink:
    """A frame sink (see streamer/session.FrameSink) sending redacted frames to video outputs."""

    def __init__(
        self,
        spec: RedactionSpec,
        concepts: Mapping[int, Concept],
        outputs: Sequence[VideoOutput],
    ) -> None:
        self.spec = spec
        self._concepts = concepts  # the session's live concept table
        self._outputs = tuple(outputs)
        self._working = list(outputs)  # the outputs that have not failed
        self.output_errors: list[OutputError] = []
        self.on_output_error: Callable[[OutputError], None] | None = None  # set by the session
        self._missed = 0  # frames failed outputs did not get
        self._live = True  # until stream_started says otherwise: the stricter deadline
        self._frames: Bounded[Frame] = Bounded(spec.queue, Overflow.DROP_OLDEST)
        self._results: dict[int, FrameTrack] = {}
        self._newest_result = -1
        self._ended = False
        self._changed = asyncio.Event()
        self.written = 0  # frames written with their own masks
        self.fully_redacted = 0  # frames written fully redacted (no result in time)
        self.missing_dropped = 0  # frames not written (on_missing=drop)

    # --- FrameSink ----------------------------------------------------------------------
    def stream_started(self, info: SourceInfo | None, live: bool) -> None:
        self._live = live

    def offer_frame(self, frame: Frame) -> None:
        if self._outputs and not self._working:  # every output failed: nothing to draw for
            self._missed += len(self._outputs)
        elif not self._frames.closed:
            self._frames.put_nowait(frame)

    def offer_result(self, frame: Frame, track: FrameTrack) -> None:
        self._results[frame.seq] = track
        self._newest_result = max(self._newest_result, frame.seq)
        self._changed.set()

    def end_input(self) -> None:
        """No more results will come: pending frames are decided by `on_missing` now."""
        self._ended = True
        self._frames.close()
        self._changed.set()

    def drops(self) -> dict[str, int]:
        return {
            "redaction_overflow": self._frames.dropped,
            "redaction_missing": self.missing_dropped,
            "redaction_fully_redacted": self.fully_redacted,
            "redaction_output_failed": self._missed,
            # frames a live output (RTSP push) dropped in its own queue: never sent
            "output_dropped": sum(output.stats.frames_dropped for output in self._outputs),
        }

    async def run(self) -> None:
        try:
            async for frame in self._frames:
                track = await self._result_for(frame)
                if track is None and self.spec.on_missing is OnMissing.DROP:
                    self.missing_dropped += 1
                    continue
                image = await asyncio.to_thread(self._render, frame, track)  # H x W x 3 uint8
                await self._send(replace(frame, rgb=image))
                if track is None:
                    self.fully_redacted += 1
                else:
                    self.written += 1
                if self._outputs and not self._working:
                    return  # the rest is counted by offer_frame
        finally:
            await self._close_all()

    # --- internals ----------------------------------------------------------------------
    async def _result_for(self, frame: Frame) -> FrameTrack | None:
        deadline = frame.captured_ns / 1e9 + self.spec.budget_s if self._live else None
        for seq in [s for s in self._results if s < frame.seq]:  # frames lost to overflow
            del self._results[seq]
        while True:
            if frame.seq in self._results:
                return self._results.pop(frame.seq)
            if self._newest_result > frame.seq or self._ended:
                return None  # skipped by the model, or the stream ended first
            remaining = None if deadline is None else deadline - time.time()
            if remaining is not None and remaining <= 0:
                return None  # late: the model is behind or stalled
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def _send(self, frame: Frame) -> None:
        for output in tuple(self._working):
            try:
                await output.send(frame)
            except OutputError as error:
                self._output_failed(output, error)
        self._missed += len(self._outputs) - len(self._working)

    def _output_failed(self, output: VideoOutput, error: OutputError) -> None:
        self._working.remove(output)
        self.output_errors.append(error)
        if self.on_output_error is not None:
            self.on_output_error(error)

    async def _close_all(self) -> None:
        """Close every output even when one fails (a dead RTSP push must not leave an mp4 without
        its index); a failure while closing is reported like one while sending, and a bug (not an
        OutputError) is raised once all are closed."""
        bug: Exception | None = None
        for output in self._outputs:
            try:
                await output.aclose()
            except OutputError as error:
                if output in self._working:  # a failed output raises its error again: told once
                    self._output_failed(output, error)
            except Exception as error:
                bug = bug or error
        if bug is not None:
            raise bug

    def _render(self, frame: Frame, track: FrameTrack | None) -> np.ndarray:
        if track is None:
            return redact_all(frame.rgb, self.spec.draw)  # fail closed
        masks = [obj.mask for obj in track.objects if self._chosen(obj.concept_id)]
        return redact(frame.rgb, masks, self.spec.draw)

    def _chosen(self, concept_id: int | None) -> bool:
        if ALL_OBJECTS in self.spec.concepts:
            return True
        concept = self._concepts.get(concept_id) if concept_id is not None else None
        return concept is not None and concept.text in self.spec.concepts
