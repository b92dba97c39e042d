"""`streamer demo`: one bounded run that shows every output the engine has.

Runs the default model on the built-in synthetic live scene (or a given file/URL) for a few
seconds with a few concepts, and leaves in `--out-dir`:

    redacted.mp4      the prompts' objects redacted on the frames their masks came from
    events.msgpack    this run's events (read it with `python -m protocols.dump events.msgpack`)
    overlay.png       one frame with its masks, boxes and object IDs drawn

then prints a summary: fps, objects and their IDs, latency, drops, file paths.

With `--serve` the engine's API and live page come up before the stream starts; the demo prints
the page's address (video with masks and IDs over WHEP) and runs until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import cv2
import numpy as np

from model.types import FrameTrack, ObjectState
from streamer.blur import RedactConfig
from streamer.engine import Engine, EngineConfig, StreamSpec
from streamer.inference import StreamTracker
from streamer.launch import (
    UserError,
    api_config,
    maybe_serve,
    model_choice,
    prompt_concept,
    stop_on_signals,
    until_done_or_signal,
)
from streamer.model_info import DEMO_PROMPTS
from streamer.preflight import check_demo
from streamer.sinks.redaction import OnMissing, RedactionSpec
from streamer.sources.base import SourceError
from streamer.status import StatusBoard
from streamer.types import Frame, SourceInfo

DEFAULT_PROMPTS = DEMO_PROMPTS
DEFAULT_DURATION_S = 10.0  # without --serve
FIRST_FRAME_TIMEOUT_S = 30.0  # then the duration runs anyway (the stream's error is reported)
_COLOURS = np.array(
    [[255, 80, 80], [80, 160, 255], [90, 220, 90], [250, 210, 60], [220, 90, 220]], dtype=np.uint8
)


class SnapshotSink:
    """A frame sink that keeps the processed frame with the most confirmed objects (for the
    overlay) and every object's concept (for the summary)."""

    def __init__(self) -> None:
        self.best: tuple[Frame, FrameTrack] | None = None
        self.started: dict[
            int, int | None
        ] = {}  # object id -> concept id (None: a click/box object)
        self._done = asyncio.Event()
        self.first_frame = asyncio.Event()  # set by the stream's first frame, or by its end

    def stream_started(self, info: SourceInfo | None, live: bool) -> None:
        pass

    def offer_frame(self, frame: Frame) -> None:
        self.first_frame.set()

    def offer_result(self, frame: Frame, track: FrameTrack) -> None:
        for event in track.started:
            self.started[event.object_id] = event.concept_id
        if self.best is None or _richness(track) >= _richness(self.best[1]):
            self.best = (frame, track)

    def end_input(self) -> None:
        self.first_frame.set()
        self._done.set()

    def drops(self) -> dict[str, int]:
        return {}

    async def run(self) -> None:
        await self._done.wait()


def _richness(track: FrameTrack) -> tuple[int, int]:
    """Confirmed objects first (tentative ones may still be removed by hot-start), then all."""
    confirmed = sum(o.state is ObjectState.CONFIRMED for o in track.objects)
    return confirmed, len(track.objects)


def overlay(frame: Frame, track: FrameTrack, names: Mapping[int, str] | None = None) -> np.ndarray:
    """H x W x 3 RGB: masks tinted, boxes outlined, `#id concept` labels (`names`: concept id -> text)."""
    image = frame.rgb.copy()
    for obj in track.objects:
        colour = _COLOURS[obj.object_id % len(_COLOURS)]
        image[obj.mask] = (0.5 * image[obj.mask] + 0.5 * colour).astype(np.uint8)
        x0, y0, x1, y1 = (int(v) for v in obj.box_xyxy)
        cv2.rectangle(image, (x0, y0), (x1, y1), colour.tolist(), 2)
        name = (names or {}).get(obj.concept_id) if obj.concept_id is not None else None
        label = f"#{obj.object_id} {name}" if name else f"#{obj.object_id}"
        cv2.putText(image, label, (x0, max(12, y0 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    colour.tolist(), 1, cv2.LINE_AA)  # fmt: skip
    return image


async def demo(
    args: argparse.Namespace,
    load_tracker_factory: Callable[..., tuple[Callable[[], StreamTracker], str]],
) -> int:
    check_demo(args)  # every input that needs no model: refused before it loads (seconds)
    out_dir = Path(args.out_dir)
    api = api_config(args) if args.serve else None
    duration = args.duration if args.duration is not None or api is not None else DEFAULT_DURATION_S
    video, log = out_dir / "redacted.mp4", out_dir / "events.msgpack"
    try:
        await asyncio.to_thread(out_dir.mkdir, parents=True, exist_ok=True)
        # the event log appends (it is a log); a demo's files are this run's alone
        await asyncio.to_thread(log.unlink, missing_ok=True)
    except OSError as error:
        raise UserError(f"cannot prepare {out_dir}: {error.strerror}") from None
    prompts = tuple(args.prompt or DEFAULT_PROMPTS)
    concepts = tuple(prompt_concept(p) for p in prompts)  # checked before the model loads
    factory, described = load_tracker_factory(model_choice(args))
    still, png = out_dir / "frame.png", out_dir / "overlay.png"
    how_long = f"{duration:g} s" if duration is not None else "until Ctrl-C"
    print(
        f"streamer demo: {described}\nstreamer demo: {args.source}, prompts {list(prompts)}, {how_long}"
    )
    # Frames the model skips are dropped from the video (never written unredacted); the budget
    # is generous because a loaded CPU can take seconds for a frame.
    redaction = RedactionSpec(concepts=prompts, outputs=(str(video),), draw=RedactConfig(),
                              on_missing=OnMissing.DROP, budget_s=5.0)  # fmt: skip
    spec = StreamSpec(args.source, stream_id="demo", concepts=concepts,
                      realtime=True, redaction=redaction)  # fmt: skip
    snapshot = SnapshotSink()
    started = time.monotonic()
    config = EngineConfig(device=args.device, event_log=log)
    # the page (its WebRTC gateway) comes up before the stream, which then gets a WHEP egress
    async with (
        stop_on_signals() as stop,
        Engine(factory, config=config) as engine,
        maybe_serve(engine, api) as url,
    ):
        try:
            await engine.add_stream(spec, frame_sinks=(snapshot,))
        except (SourceError, ValueError) as error:
            raise UserError(str(error)) from None
        if url is not None:
            login = (
                " (the API has a token: add #token=YOUR_TOKEN to the address)"
                if api and api.token
                else ""
            )
            print(f"streamer demo: watch it live at {url}/?source=stream&stream=demo&autostart=1{login}; "
                  "Ctrl-C to stop", flush=True)  # fmt: skip
        # the duration counts from the first frame: opening a source (a camera, the world's first
        # clip) can take seconds
        waiters = [asyncio.ensure_future(event.wait()) for event in (snapshot.first_frame, stop)]
        await asyncio.wait(
            waiters, timeout=FIRST_FRAME_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
        )
        for waiter in waiters:
            waiter.cancel()
        await until_done_or_signal(
            engine, StatusBoard(engine.sessions), stop, duration, forever=url is not None
        )
        session = engine.sessions.get("demo")
    elapsed = time.monotonic() - started
    if (
        snapshot.best is not None
    ):  # the frame with the most confirmed objects, as it came and annotated
        cv2.imwrite(str(still), cv2.cvtColor(snapshot.best[0].rgb, cv2.COLOR_RGB2BGR))
        names = {cid: c.text for cid, c in session.concepts.items() if c.text} if session else {}
        cv2.imwrite(str(png), cv2.cvtColor(overlay(*snapshot.best, names), cv2.COLOR_RGB2BGR))
    for stream_id, failure in engine.errors.items():
        print(f"streamer demo: stream {stream_id} failed: {failure}")
    if session is None:
        return 1
    s = session.stats
    ids = snapshot.started
    by_concept = {text: sorted(i for i, c in ids.items() if c is not None and session.concepts[c].text == text)
                  for text in prompts}  # fmt: skip
    print(f"processed {s.frames_out} frames in {elapsed:.1f} s: "
          f"{s.frames_out / max(elapsed, 1e-9):.1f} fps out, {s.fps_in.per_second():.1f} fps in; "
          f"latency p50 {s.latency_ms.percentile(50):.0f} ms, p99 {s.latency_ms.percentile(99):.0f} ms; "
          f"{s.drops['superseded'] + s.drops['stale']} frames skipped (model behind)")  # fmt: skip
    if others := {
        cause: n for cause, n in s.drops.items() if n and cause not in ("superseded", "stale")
    }:
        print("drops: " + ", ".join(f"{n} {cause}" for cause, n in sorted(others.items())))
    print(
        f"objects: {len(ids)} "
        + ", ".join(f"{text!r}: IDs {idl}" for text, idl in by_concept.items())
    )
    for label, path in (
        ("redacted video", video),
        ("event log", log),
        ("still frame", still),
        ("overlay", png),
    ):
        print(f"  {label:15} {path}" + ("" if path.exists() else "  (not written)"))
    return 1 if engine.errors else 0
