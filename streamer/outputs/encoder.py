"""`EncodingOutput`: frames in on the loop, H.264 out of a PyAV container in a thread.

Subclasses only say which container to open (`_open_container`). The loop side is `send` and
`aclose`; everything PyAV does (open, encode, mux, flush, close) runs in the output's thread, which
starts with the first frame because the stream's size comes from it.

Timestamps: the output time base is the first frame's (split into ticks of at most 1 ms); every
frame's pts is rescaled to it exactly (a `Fraction`), so the file carries the source's timing. A
repeated pts, or one a frame or less behind the last (a muxer's glitch), is written 1 ms after the
last frame and the frames after it keep their own times. If pts go further back (the source
reconnected and its clock restarted) the rest are shifted to continue one frame after the last.
Both are counted (`pts_rebased`).

Sizes: H.264 in 4:2:0 needs even sizes, so an odd last row or column is cut off (a 1-pixel side is
repeated instead). The first frame sets the video's size; a later frame of another size (the source
changed resolution mid-stream) is scaled to fit inside it with its aspect ratio kept, centred on
black (letterbox / pillarbox), since players handle a size change inside one file badly.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from fractions import Fraction

import av
import av.container
import av.error
import numpy as np

from streamer.outputs.base import EncoderConfig, OutputError, OutputStats, OverflowPolicy
from streamer.types import Frame

log = logging.getLogger(__name__)

_CLOSE = object()  # the sentinel that tells the thread to flush and finish
DROP_LOG_EVERY_S = 10.0  # a live output that keeps dropping says so at most this often


class _InputQueue:
    """Loop -> thread, bounded; `BLOCK` makes `put` wait, `DROP_OLDEST` drops and counts."""

    def __init__(self, capacity: int, policy: OverflowPolicy) -> None:
        if capacity < 1:
            raise ValueError(f"queue capacity must be >= 1, got {capacity}")
        self.capacity, self.policy, self.dropped = capacity, policy, 0
        self._items: deque[object] = deque()
        self._ready = threading.Condition()
        self._space: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._aborted = False  # the thread is gone: puts are discarded

    async def put(self, item: object, *, force: bool = False) -> None:
        while True:
            with self._ready:
                if self._aborted:
                    return
                full = len(self._items) >= self.capacity
                if not full or force or self.policy is OverflowPolicy.DROP_OLDEST:
                    if full and not force:
                        self._items.popleft()
                        self.dropped += 1
                    self._items.append(item)
                    self._ready.notify()
                    return
                self._loop = asyncio.get_running_loop()
                space = self._space = self._loop.create_future()
            await space

    def get(self) -> object:
        """Thread side: wait for the next item."""
        with self._ready:
            while not self._items:
                self._ready.wait()
            item = self._items.popleft()
            self._wake_sender_locked()
        return item

    def abort(self) -> None:
        """Thread side, on exit: discard what is queued and release a sender waiting for room."""
        with self._ready:
            self._aborted = True
            self._items.clear()
            self._wake_sender_locked()

    def _wake_sender_locked(self) -> None:
        space, self._space = self._space, None
        if space is not None and self._loop is not None:
            try:
                self._loop.call_soon_threadsafe(_resolve, space)
            except RuntimeError:  # the loop is gone
                pass


class EncodingOutput(ABC):
    def __init__(
        self,
        *,
        name: str,
        encoder: EncoderConfig,
        policy: OverflowPolicy,
        queue_size: int,
        close_timeout_s: float = 10.0,
    ) -> None:
        self.name = name  # credential-free, for messages
        self.encoder = encoder
        self.close_timeout_s = close_timeout_s
        self._queue = _InputQueue(queue_size, policy)
        self._thread: threading.Thread | None = None
        self._done: asyncio.Future[None] | None = None
        self._error: OutputError | None = None
        self._closed = False
        self._written = 0
        self._rebased = 0
        self._drops_told = 0  # frames dropped when the last warning was logged
        self._drops_told_at: float | None = None

    # -- the VideoOutput contract ---------------------------------------------------------------

    async def send(self, frame: Frame) -> None:
        if self._error is not None:
            raise self._error
        if self._closed:
            raise OutputError(f"{self.name}: send() after aclose()")
        if self._thread is None:
            loop = asyncio.get_running_loop()
            self._done = loop.create_future()
            self._thread = threading.Thread(
                target=self._run, args=(loop, self._done), name=f"output-{self.name}", daemon=True
            )
            self._thread.start()
        await self._queue.put(frame)
        if self._queue.dropped > self._drops_told and self._written > 0:  # not while connecting
            self._tell_drops()

    def _tell_drops(self, *, final: bool = False) -> None:
        """A warning line for frames the input queue dropped: at the first once frames flow, then
        at most every DROP_LOG_EVERY_S with the total, and once more at the end unless the output
        failed (its error is the line then). The count is `stats.frames_dropped`."""
        now = time.monotonic()
        recent = self._drops_told_at is not None and now - self._drops_told_at < DROP_LOG_EVERY_S
        if recent and not final:
            return
        self._drops_told, self._drops_told_at = self._queue.dropped, now
        log.warning(
            "%s: dropped %d of %d frames so far: the encoder or the server is slower than the "
            "stream (streamer_dropped_frames_total{cause=\"output_dropped\"})",
            self.name, self._queue.dropped, self._written + self._queue.dropped,
        )  # fmt: skip

    async def aclose(self) -> None:
        if self._closed:
            if self._error is not None:
                raise self._error
            return
        self._closed = True
        if self._thread is None or self._done is None:
            return  # nothing was ever sent: no file is written
        await self._queue.put(_CLOSE, force=True)
        done, _ = await asyncio.wait({self._done}, timeout=self.close_timeout_s)
        if self._queue.dropped > self._drops_told and self._error is None:  # a failure says more
            self._tell_drops(final=True)
        if not done:
            self._error = OutputError(
                f"{self.name}: the encoder did not finish within {self.close_timeout_s:g} s"
            )
        if self._error is not None:
            raise self._error

    @property
    def stats(self) -> OutputStats:
        return OutputStats(self._written, self._queue.dropped, self._rebased)

    # -- for subclasses -------------------------------------------------------------------------

    @abstractmethod
    def _open_container(self) -> av.container.OutputContainer:
        """Open the output container (file or network target); called on the encoder thread."""

    # -- the encoder thread ---------------------------------------------------------------------

    def _run(self, loop: asyncio.AbstractEventLoop, done: asyncio.Future[None]) -> None:
        try:
            self._encode_all()
        except OutputError as e:
            e.__cause__ = e.__context__ = None  # FFmpeg's exception text carries the raw URL
            self._error = e
        except av.error.FFmpegError as e:
            self._error = OutputError(f"{self.name}: {e.strerror or type(e).__name__}")
        except Exception as e:  # a bug: keep the type in the message, log the traceback
            log.exception("%s: encoder thread crashed", self.name)
            self._error = OutputError(f"{self.name}: encoder crashed ({type(e).__name__})")
        finally:
            self._queue.abort()
            if self._error is not None:  # raised to the sender, who reports it (one line)
                log.debug("%s", self._error)
            try:
                loop.call_soon_threadsafe(_resolve, done)
            except RuntimeError:
                pass

    def _encode_all(self) -> None:
        item = self._queue.get()
        if item is _CLOSE:
            return
        assert isinstance(item, Frame)
        time_base = _ms_ticks(item.time_base) if item.pts is not None else Fraction(1, 90_000)
        container = self._open_container()
        try:
            stream = self._add_stream(container, item, time_base)
            clock = _PtsClock(time_base, self.encoder.fps, item.captured_ns)
            while item is not _CLOSE:
                assert isinstance(item, Frame)
                rgb = _fitted(_even_sized(item.rgb), stream.width, stream.height)
                video = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                video.pts, rebased = clock.pts(item)
                video.time_base = time_base
                self._rebased += rebased
                container.mux(stream.encode(video))  # PyAV converts to yuv420p at the stream size
                self._written += 1
                item = self._queue.get()
            container.mux(stream.encode(None))  # flush delayed frames
        finally:
            container.close()  # writes the trailer (mp4 moov) even after an error

    def _add_stream(
        self, container: av.container.OutputContainer, first: Frame, time_base: Fraction
    ) -> av.VideoStream:
        cfg = self.encoder
        stream = container.add_stream(cfg.codec, rate=Fraction(cfg.fps).limit_denominator(1001))
        assert isinstance(stream, av.VideoStream), f"{cfg.codec} is not a video codec"
        stream.height, stream.width = _even_sized(first.rgb).shape[:2]
        stream.pix_fmt = cfg.pix_fmt
        stream.codec_context.time_base = time_base
        stream.codec_context.options = cfg.codec_options()
        return stream


def _even_sized(rgb: np.ndarray) -> np.ndarray:
    """H x W x 3 -> the even size that 4:2:0 needs, pixel for pixel: an odd last row or column is
    cut off, and a side of 1 pixel is repeated to 2 (cutting it would leave nothing to encode)."""
    h, w = rgb.shape[:2]
    rgb = rgb[: max(1, h & ~1), : max(1, w & ~1)]
    rgb = np.pad(rgb, ((0, int(h == 1)), (0, int(w == 1)), (0, 0)), mode="edge")
    return np.ascontiguousarray(rgb)  # even H x even W x 3


def _ms_ticks(time_base: Fraction) -> Fraction:
    """`time_base`, split so that one tick is at most 1 ms (1/30 -> 1/1020): room to place a frame
    whose pts repeats the last one's just after it, before the next frame's own time."""
    return time_base / math.ceil(time_base * 1000) if time_base > Fraction(1, 1000) else time_base


def _fitted(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """H x W x 3 -> height x width x 3: scaled to fit with its aspect ratio kept, centred on black."""
    h, w = rgb.shape[:2]
    if (w, h) == (width, height):
        return rgb
    scale = min(width / w, height / h)
    fit_w, fit_h = min(width, max(1, round(w * scale))), min(height, max(1, round(h * scale)))
    scaled = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(fit_w, fit_h)
    canvas = np.zeros((height, width, 3), np.uint8)  # height x width x 3, black
    top, left = (height - fit_h) // 2, (width - fit_w) // 2
    canvas[top : top + fit_h, left : left + fit_w] = scaled.to_ndarray(format="rgb24")
    return canvas


class _PtsClock:
    """Frame -> output pts in `time_base`, kept strictly increasing."""

    def __init__(self, time_base: Fraction, fps: float, first_captured_ns: int) -> None:
        self.time_base = time_base
        self.step = max(1, round(1 / (Fraction(fps).limit_denominator(1001) * time_base)))
        self.nudge = max(1, round(Fraction(1, 1000) / time_base))  # 1 ms: after a repeated pts
        self.first_captured_ns = first_captured_ns
        self.offset = 0
        self.last: int | None = None

    def pts(self, frame: Frame) -> tuple[int, bool]:
        if frame.pts is None:  # no source clock: use the wall clock of capture
            seconds = Fraction(frame.captured_ns - self.first_captured_ns, 1_000_000_000)
            raw = round(seconds / self.time_base)
        else:
            raw = round(frame.pts * frame.time_base / self.time_base)
        pts = raw + self.offset
        if self.last is None or pts > self.last:
            self.last = pts
            return pts, False
        if (
            pts >= self.last - self.step
        ):  # repeated, or a frame late: the next ones keep their times
            self.last += self.nudge
        else:  # the clock restarted: shift the rest to go on one frame after the last
            self.offset += self.last + self.step - pts
            self.last += self.step
        return self.last, True


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
