"""End-to-end pipeline benchmark: N live 1080p30 streams through the real engine.

    .venv/bin/python bench/pipeline.py [--streams 2] [--seconds 10] [--model scripted|tiny|embedded]
                                       [--model-ms 30] [--objects 4] [--decode]

Sources are D1's synthetic live scene at 1920x1080@30 (`--decode`: a 1080p H.264 file encoded
first and decoded by the file source, paced to real time, so decoding is really paid). The model
is either `scripted` (a stand-in that sleeps `--model-ms` and returns `--objects` 1080p masks, to
isolate the engine's own cost) or a real model config. Everything else is the product: worker
batching, latest-frame slots, RLE + msgpack publishing, fan-out to an in-process subscriber.

Prints device, dtype, commit and date, then throughput, end-to-end latency p50/p99, drops by
cause, and the per-frame cost outside the model (decode + convert, hand-off, RLE + encode +
fan-out) next to the model's own time. Goal: outside-model overhead <= 8 ms per 1080p frame on
the CPU machines, <= 5 % of model time on a GPU.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from model.types import Concept, FrameTrack, ObjectState, TrackedObject  # noqa: E402
from streamer.engine import Engine, EngineConfig, StreamSpec  # noqa: E402

W, H = 1920, 1080


class ScriptedModel:
    """Stands in for VideoTracker: sleeps `model_ms` (the model's time) and returns `objects`
    rectangle masks at the frame's size, each with a stable ID."""

    def __init__(self, model_ms: float, objects: int) -> None:
        self.model_ms = model_ms
        self.objects = objects
        self.index = 0

    def add_concept(self, concept: Concept) -> int:
        return 0

    def mark_gap(self, seconds: float) -> None:
        pass

    def finish(self) -> tuple[()]:
        return ()

    def step(self, image: np.ndarray, pts: int | None = None) -> FrameTrack:
        time.sleep(self.model_ms / 1e3)
        h, w = image.shape[:2]
        objects = []
        for k in range(self.objects):
            mask = np.zeros((h, w), dtype=bool)  # H x W, like the tracker's output
            x = (self.index * 7 + k * w // max(self.objects, 1)) % (w - 200)
            mask[100 + 50 * k : 400 + 50 * k, x : x + 200] = True
            objects.append(TrackedObject(k + 1, 0, 0.9, (x, 100.0 + 50 * k, x + 200.0, 400.0 + 50 * k),
                                         mask, ObjectState.CONFIRMED))  # fmt: skip
        self.index += 1
        return FrameTrack(self.index - 1, pts, w, h, tuple(objects))

    @staticmethod
    def step_many(
        trackers: list[ScriptedModel], images: list[np.ndarray], pts: list[int | None]
    ) -> list[FrameTrack]:
        # one sleep for the batch, like one batched backbone call
        time.sleep(trackers[0].model_ms / 1e3)
        saved = [t.model_ms for t in trackers]
        for t in trackers:
            t.model_ms = 0.0
        try:
            return [t.step(i, p) for t, i, p in zip(trackers, images, pts, strict=True)]
        finally:
            for t, ms in zip(trackers, saved, strict=True):
                t.model_ms = ms


def encode_clip(path: Path, seconds: float) -> None:
    from streamer.sources.synthetic import SyntheticConfig, SyntheticScene

    scene = SyntheticScene(SyntheticConfig(width=W, height=H))
    with av.open(str(path), "w") as container:
        stream = container.add_stream(
            "libx264", rate=30, options={"preset": "ultrafast", "g": "30"}
        )
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for i in range(int(seconds * 30)):
            frame = av.VideoFrame.from_ndarray(scene.render(i), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 30)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def decode_ms_per_frame(path: Path) -> float:
    """Decode + RGB conversion cost per 1080p frame, measured alone."""
    with av.open(str(path)) as container:
        start, n = time.perf_counter(), 0
        for frame in container.decode(video=0):
            frame.to_ndarray(format="rgb24")
            n += 1
    return (time.perf_counter() - start) / max(n, 1) * 1e3


def publish_ms_per_frame(objects: int) -> float:
    """RLE + event building + msgpack for one 1080p frame with `objects` masks, measured alone."""
    from streamer.publish import Publisher
    from streamer.types import Frame

    image = np.zeros((H, W, 3), dtype=np.uint8)
    track = ScriptedModel(0.0, objects).step(image, 0)
    publisher, frame = Publisher("bench"), Frame("bench", 0, 0, Fraction(1, 30), 0, image)
    for _ in range(3):
        publisher.frame(frame, track, 0)
    start, repeats = time.perf_counter(), 30
    for _ in range(repeats):
        publisher.frame(frame, track, 0)
    return (time.perf_counter() - start) / repeats * 1e3


def stage_mean_ms(engine: Engine, stream: str, stage: str) -> float:
    reg = engine.metrics.registry
    labels = {"stream": stream, "stage": stage}
    total = reg.get_sample_value("streamer_stage_seconds_sum", labels) or 0.0
    count = reg.get_sample_value("streamer_stage_seconds_count", labels) or 0.0
    return total / count * 1e3 if count else float("nan")


async def run(args: argparse.Namespace, sources: list[str], factory: object) -> Engine:
    engine = Engine(factory, config=EngineConfig(device=args.device, max_batch=args.streams))  # type: ignore[arg-type]
    async with engine:
        subscription = engine.hub.subscribe(
            maxsize=100_000
        )  # an in-process subscriber, like a client
        for i, source in enumerate(sources):
            await engine.add_stream(StreamSpec(source, stream_id=f"cam{i}", realtime=True,
                                               concepts=(Concept(args.prompt),)))  # fmt: skip
        drain = asyncio.get_running_loop().create_task(_drain(subscription))
        await asyncio.sleep(args.seconds)
        await engine.shutdown()
        await drain
    return engine


async def _drain(subscription: object) -> None:
    async for _ in subscription:  # type: ignore[attr-defined]
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--model", default="scripted", help="scripted, tiny, embedded, sam3")
    parser.add_argument(
        "--model-ms", type=float, default=30.0, help="scripted model: time per batch"
    )
    parser.add_argument("--objects", type=int, default=4, help="scripted model: objects per frame")
    parser.add_argument("--prompt", default="red circle")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--decode", action="store_true", help="decode a 1080p H.264 file instead of rendering"
    )
    args = parser.parse_args()

    import torch

    torch.set_num_threads(2)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    print(f"bench/pipeline.py  commit {commit}  {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC  "
          f"device {args.device}  dtype float32  torch {torch.__version__}")  # fmt: skip
    if args.model == "scripted":
        factory: object = lambda: ScriptedModel(args.model_ms, args.objects)  # noqa: E731
        print(
            f"model: scripted stand-in, {args.model_ms:g} ms per batch, {args.objects} objects per frame"
        )
    else:
        from streamer.cli import ModelChoice, load_tracker_factory

        factory, described = load_tracker_factory(ModelChoice(args.model, None, args.device))
        print(described)

    with tempfile.TemporaryDirectory() as tmp:
        decode_ms = float("nan")
        if args.decode:
            clip = Path(tmp) / "clip1080p.mp4"
            encode_clip(clip, args.seconds + 2)
            decode_ms = decode_ms_per_frame(clip)
            sources = [str(clip)] * args.streams
        else:
            sources = ["synthetic://1920x1080@30"] * args.streams
        engine = asyncio.run(run(args, sources, factory))

    print(
        f"\n{args.streams} x 1080p30 for {args.seconds:g} s ({'decoded H.264 file' if args.decode else 'synthetic render'})"
    )
    print(
        f"{'stream':8} {'in fps':>7} {'out fps':>7} {'p50 ms':>7} {'p99 ms':>7} {'drops':>6}  causes"
    )
    total_out = 0.0
    for sid, session in engine.sessions.items():
        s = session.stats
        fps_in, fps_out = s.frames_in / args.seconds, s.frames_out / args.seconds
        total_out += fps_out
        print(f"{sid:8} {fps_in:7.1f} {fps_out:7.1f} {s.latency_ms.percentile(50):7.1f} "
              f"{s.latency_ms.percentile(99):7.1f} {s.dropped:6d}  {dict(s.drops)}")  # fmt: skip
    batches = dict(sorted(engine.worker.batches.items()))
    print(f"throughput: {total_out:.1f} frames/s processed; model calls by batch size: {batches}")
    first = next(iter(engine.sessions))
    model_ms = stage_mean_ms(engine, first, "model")
    queue_ms = stage_mean_ms(engine, first, "queue")
    publish_ms = stage_mean_ms(engine, first, "publish")
    print("\nper frame (stream cam0, means)")
    print(f"  model call (whole batch)          {model_ms:7.2f} ms")
    print(f"  waiting in the latest-frame slot  {queue_ms:7.2f} ms  (waiting, not work)")
    print(
        f"  publish stage in the pipeline     {publish_ms:7.2f} ms  (includes waiting for the loop)"
    )
    alone_ms = publish_ms_per_frame(args.objects)
    print(
        f"  RLE + events + msgpack (alone)    {alone_ms:7.2f} ms  ({args.objects} objects of 1080p)"
    )
    if args.decode:
        print(f"  decode + RGB convert (alone)      {decode_ms:7.2f} ms")
    overhead = alone_ms + (decode_ms if args.decode else 0.0)
    print(f"  overhead outside the model        {overhead:7.2f} ms  (goal <= 8 ms on CPU)"
          + ("" if args.decode else "; add --decode to include H.264 decoding"))  # fmt: skip


if __name__ == "__main__":
    main()
