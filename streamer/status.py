"""The terminal view of a running engine: one live line per stream, a progress bar for files, and
the summary at the end.

    door    live          in  30.0  out  11.8 fps  p50   84 ms  p99  131 ms  objects  3  drops 362
    clip    live          [##########----------]  50%  out  24.1 fps  p50   40 ms  objects  1

On a terminal the lines are redrawn in place (ANSI cursor-up); elsewhere (pipes, CI logs) the
board stays silent and only the final summary is printed, so logs are not flooded.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Mapping
from typing import TextIO

import av

from streamer.engine import Engine
from streamer.session import Session

BAR = 20


class StatusBoard:
    """Redraws one line per stream every `interval_s` while `run()` is awaited."""

    def __init__(
        self,
        sessions: Mapping[str, Session],
        *,
        totals: Mapping[str, int] | None = None,  # stream id -> frames in the file, if known
        out: TextIO = sys.stderr,
        interval_s: float = 0.5,
    ) -> None:
        self.sessions = sessions
        self.totals = dict(totals or {})
        self.out = out
        self.interval_s = interval_s
        self.enabled = out.isatty()
        self._drawn = 0  # lines drawn last time (to move the cursor back over them)

    async def run(self) -> None:
        if not self.enabled:
            return
        try:
            while True:
                self.draw()
                await asyncio.sleep(self.interval_s)
        finally:
            self.draw()  # the last state stays on screen

    def draw(self) -> None:
        lines = [self.line(session) for session in self.sessions.values()]
        up = f"\x1b[{self._drawn}F" if self._drawn else ""
        self.out.write(up + "".join(f"\x1b[2K{line}\n" for line in lines))
        self.out.flush()
        self._drawn = len(lines)

    def line(self, session: Session) -> str:
        stats = session.stats
        total = self.totals.get(session.stream_id)
        if total:
            done = min(stats.frames_out + stats.dropped, total)
            filled = round(BAR * done / total)
            head = f"[{'#' * filled}{'-' * (BAR - filled)}] {100 * done / total:3.0f}%"
        else:
            head = f"in {stats.fps_in.per_second():5.1f}"
        return (
            f"{session.stream_id:<10.10} {session.state.value:<12} {head}  "
            f"out {stats.fps_out.per_second():5.1f} fps  "
            f"p50 {stats.latency_ms.percentile(50):5.0f} ms  "
            f"p99 {stats.latency_ms.percentile(99):5.0f} ms  "
            f"objects {stats.objects:3d}  drops {stats.dropped}"
        )


def print_summary(engine: Engine, file: TextIO | None = None) -> bool:
    """The end-of-run lines (on stderr by default): failed streams and outputs, then each stream's
    totals. True if anything failed (a stream, or an output whose stream went on without it)."""
    file = file or sys.stderr  # looked up now: tests and callers may have replaced it
    for stream_id, error in engine.errors.items():
        print(f"streamer: stream {stream_id} failed: {error}", file=file)
    for session in engine.sessions.values():
        for output_error in session.output_errors:
            print(f"streamer: stream {session.stream_id}: output failed: {output_error}", file=file)
    for session in engine.sessions.values():
        s = session.stats
        # what the redacted video lost or blurred whole is not what the model skipped
        video = {
            cause.removeprefix("redaction_").replace("_", " "): n
            for cause, n in sorted(s.drops.items())
            if cause.startswith("redaction_") and n
        }
        line = (
            f"streamer: {session.stream_id}: {s.frames_out} frames processed, "
            f"{s.dropped - sum(video.values())} skipped, p50 {s.latency_ms.percentile(50):.0f} ms"
        )
        if video:
            line += "; redacted video: " + ", ".join(f"{n} {cause}" for cause, n in video.items())
        print(line, file=file)
    return bool(engine.errors) or any(s.output_errors for s in engine.sessions.values())


def probe_frame_count(path: str) -> int | None:
    """Frames in a local video file (container header, else duration x rate); None if unknown."""
    if "://" in path and not path.startswith("file://"):
        return None
    path = path.removeprefix("file://")
    if not os.path.isfile(path):
        return None
    with contextlib.suppress(av.error.FFmpegError, IndexError), av.open(path) as container:
        stream = container.streams.video[0]
        if stream.frames:
            return int(stream.frames)
        if stream.duration and stream.time_base and stream.average_rate:
            return int(stream.duration * stream.time_base * stream.average_rate)
    return None
