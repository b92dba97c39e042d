"""Video files (mp4, mkv, webm, anything FFmpeg reads) as a source.

* `realtime=True` paces frames to their pts (a file standing in for a camera); `False` decodes as
  fast as the consumer takes them.
* `loop=True` starts again at the end, shifting pts so they keep increasing across loops.
* The hand-off blocks by default (`HandoffPolicy.BLOCK`): no frame is lost, decoding never runs more
  than `queue_size` frames ahead. Pass `policy=HandoffPolicy.LATEST` to drop instead when behind.
* The constructor opens the file once to check it: a folder, an empty file, one FFmpeg cannot read,
  one without a video stream or without a decoder for it raises `SourceError` there, before any
  stream starts.
* A pipe (a FIFO, `/dev/stdin`, or `-` for stdin) is read once, as it comes: the container the
  constructor opened to check it is the one the decoder reads (opening it again would lose what the
  check read). It cannot loop, and needs a format that streams (ts, mkv, webm, raw h264; not an mp4
  whose index is at its end).
"""

from __future__ import annotations

import logging
import os
import stat
import time
from dataclasses import dataclass
from fractions import Fraction

import av
import av.container
import av.error

from streamer.decode import to_rgb, upright_size
from streamer.sources.base import SourceError
from streamer.sources.handoff import HandoffPolicy
from streamer.sources.pyav_io import (
    av_reason,
    decoded_frames,
    make_info,
    stream_fps,
    video_stream,
)
from streamer.sources.threaded import Producer, ThreadedSource
from streamer.types import SourceState

log = logging.getLogger(__name__)

STDIN = "/dev/stdin"  # what `-` reads


@dataclass(frozen=True, slots=True)
class FileConfig:
    realtime: bool = False  # pace frames to their pts
    loop: bool = False
    speed: float = 1.0  # realtime only: 2.0 plays twice as fast
    policy: HandoffPolicy = HandoffPolicy.BLOCK
    queue_size: int = 4
    size: tuple[int, int] | None = None  # (width, height) to scale to while converting

    def __post_init__(self) -> None:
        if self.speed <= 0:
            raise ValueError(f"speed must be > 0, got {self.speed}")


class FileSource(ThreadedSource):
    def __init__(self, path: str | os.PathLike[str], *, stream_id: str = "0",
                 config: FileConfig | None = None) -> None:  # fmt: skip
        self.config = config or FileConfig()
        super().__init__(
            stream_id=stream_id, policy=self.config.policy, capacity=self.config.queue_size
        )
        self.path, self.pipe = local_file(path, self.config)
        self._unread: av.container.InputContainer | None = None  # a pipe's, opened to check it
        if self.pipe:
            self._unread = self._open()  # what this check reads is gone from the pipe: keep it
            return
        self._open().close()  # unreadable, or no video: refused now, not once the stream runs

    async def aclose(self) -> None:
        never_read = self._thread is None  # then no decoder thread will ever take `_unread`
        await super().aclose()
        if never_read and self._unread is not None:
            self._unread.close()
            self._unread = None

    def _describe(self) -> str:
        return f"{'pipe' if self.pipe else 'file'} {self.path}"

    def _produce(self, out: Producer) -> None:
        cfg = self.config
        pts_offset = 0  # added to every pts so that loops keep pts increasing
        clock: tuple[float, float] | None = (
            None  # (wall monotonic, media seconds) of the first frame
        )
        first_pass = True
        while True:
            container = self._unread if self._unread is not None else self._open()
            self._unread = None
            try:
                stream = video_stream(container)
                assert stream is not None
                stream.thread_type = "AUTO"
                time_base = stream.time_base or Fraction(1, 90_000)
                frame_step = _frame_step(stream, time_base)
                last_pts: int | None = None
                end_pts = stream.start_time or 0  # where the video read so far ends (max pts)
                index = 0
                for frame in decoded_frames(container, stream, out):
                    if first_pass and index == 0:
                        size = cfg.size or upright_size(frame)
                        out.info(make_info(self.path, stream, size, live=cfg.realtime))
                        out.status(SourceState.LIVE)
                    pts = frame.pts if frame.pts is not None else index * frame_step
                    shifted = pts + pts_offset
                    if cfg.realtime:
                        clock = self._pace(out, clock, float(shifted * time_base))
                    out.frame(to_rgb(frame, cfg.size), shifted, time_base)
                    last_pts, end_pts = pts, max(end_pts, pts + frame_step)
                    index += 1
                if first_pass and index > 0:
                    played_s = float((end_pts - (stream.start_time or 0)) * time_base)
                    damage = _damage(container, stream, played_s, out.decode_errors)
                    if damage:  # once per stream: a looping file repeats the same damage
                        log.warning("%s: %s (truncated or corrupt file)", self._describe(), damage)
            except av.error.FFmpegError as e:
                raise SourceError(f"{self._describe()}: read failed ({av_reason(e)})") from None
            finally:
                container.close()
            if index == 0:
                raise SourceError(f"{self._describe()}: no decodable video frames")
            if not cfg.loop:
                return
            first_pass = False
            assert last_pts is not None
            pts_offset += last_pts + frame_step - (stream.start_time or 0)

    def _open(self) -> av.container.InputContainer:
        try:
            container = av.open(self.path)
        except av.error.FFmpegError as e:
            raise SourceError(f"cannot open video file {self.path}: {av_reason(e)}") from None
        stream = video_stream(container)
        if stream is None or stream.codec_context is None:
            container.close()
            what = (
                "has no video stream" if stream is None else "has video FFmpeg has no decoder for"
            )
            raise SourceError(f"{self.path} {what}")
        return container

    def _pace(
        self, out: Producer, clock: tuple[float, float] | None, media_s: float
    ) -> tuple[float, float]:
        """Sleep until `media_s` is due on the wall clock; returns the clock's anchor."""
        now = time.monotonic()
        if clock is None:
            return now, media_s
        wall0, media0 = clock
        due = wall0 + (media_s - media0) / self.config.speed
        out.sleep(due - now)
        return clock


def local_file(path: str | os.PathLike[str], config: FileConfig) -> tuple[str, bool]:
    """The path a file source reads (`-` is stdin) and whether it is a pipe (read once).

    Raises SourceError for what no reader could fix, from the file system alone (nothing is
    opened, so a pipe loses nothing): a folder, a missing file, a terminal, an empty file, a
    pipe asked to loop. What FFmpeg makes of the bytes is the constructor's check.
    """
    path = STDIN if os.fspath(path) == "-" else os.fspath(path)
    if _is_pipe(path):
        if config.loop:
            raise SourceError(f"{path} is a pipe: it can be read only once (no loop)")
        return path, True
    if os.path.isdir(path):
        raise SourceError(f"{path} is a folder, not a video file")
    if not os.path.exists(path):
        raise SourceError(f"video file not found: {path}")
    if not os.path.isfile(path):
        what = "a terminal" if _is_terminal(path) else "not a regular file or a pipe"
        raise SourceError(f"{path} is {what}: pipe a video into it, or name a file")
    if os.path.getsize(path) == 0:
        raise SourceError(f"video file {path} is empty (0 bytes)")
    return path, False


def _is_pipe(path: str) -> bool:
    try:
        return stat.S_ISFIFO(os.stat(path).st_mode)
    except OSError:
        return False


def _is_terminal(path: str) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError:
        return False
    try:
        return os.isatty(fd)
    finally:
        os.close(fd)


def _damage(
    container: av.container.InputContainer, stream: av.VideoStream, played_s: float, errors: int
) -> str:
    """What one whole pass says about a file's damage ("" if none): its video ended well before
    the duration its header declares (a cut file; FFmpeg just stops), or the decoder rejected
    packets (counted in SourceStats.decode_errors, and skipped)."""
    if stream.duration and stream.time_base:
        declared_s: float | None = float(stream.duration * stream.time_base)
    else:
        declared_s = container.duration / av.time_base if container.duration else None
    problems = []
    step_s = 1 / stream_fps(stream) if stream_fps(stream) > 0 else 0.1
    if declared_s is not None and played_s < declared_s - max(0.5, 2 * step_s):
        problems.append(f"its video ends at {played_s:.1f} s of the {declared_s:.1f} s it declares")
    if errors:
        problems.append(f"{errors} packet{'s' if errors > 1 else ''} could not be decoded")
    return "; ".join(problems)


def _frame_step(stream: av.VideoStream, time_base: Fraction) -> int:
    """One frame's duration in time_base units (for pts-less frames and loop offsets)."""
    rate = stream.average_rate or stream.guessed_rate or Fraction(30)
    return max(1, round(1 / (rate * time_base)))
