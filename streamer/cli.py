"""`streamer`: run streams from the command line, serve the control API, or run the demo.

    streamer run rtsp://cam/1 clip.mp4 --prompt person --redact person --out redacted.mp4
    STREAMER_TOKEN=... streamer serve --port 8080 --nats nats://127.0.0.1:4222
    streamer serve --cluster --workers 2          # Ray worker actors (docs/cluster.md)
    streamer demo [SOURCE] [--duration 10] [--serve]

Every user error (bad URL, unreadable file, bad checkpoint, bad flag) ends with one line on
stderr and a non-zero exit code, never a traceback. Ctrl-C stops gracefully (queued frames are
finished, objects end with reason stream_ended); a second Ctrl-C aborts.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from streamer.blur import RedactConfig, RedactStyle
from streamer.demo import demo
from streamer.engine import Engine, StreamSpec
from streamer.launch import (
    EXIT_FAILED,
    EXIT_USAGE,
    TOKEN_ENV,
    TrackerLoader,
    UserError,
    api_config,
    engine_config,
    load_tracker_factory,
    maybe_serve,
    model_choice,
    prompt_concept,
    serve_api,
    stop_on_signals,
    until_done_or_signal,
)
from streamer.model_info import DEMO_SOURCE
from streamer.preflight import check_run, check_serve
from streamer.sinks.redaction import RedactionSpec
from streamer.sources.base import SourceError
from streamer.status import StatusBoard, print_summary, probe_frame_count


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("streamer.sources").setLevel(logging.INFO)  # "connecting to rtsp://..."
    try:
        if args.command == "demo":
            return asyncio.run(demo(args, load_tracker_factory))
        return asyncio.run(_run(args) if args.command == "run" else _serve(args))
    except UserError as error:
        print(f"streamer: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("streamer: aborted", file=sys.stderr)
        return 130


# --- model -----------------------------------------------------------------------------------


# --- commands --------------------------------------------------------------------------------


async def _run(args: argparse.Namespace, load: TrackerLoader = load_tracker_factory) -> int:
    check_run(args)  # every input that needs no model: refused before it loads (seconds)
    api = api_config(args) if args.events == "ws" else None
    if api is None and (args.ice_host or args.token):
        raise UserError("--ice-host and --token configure the HTTP API: add --events ws")
    config = engine_config(args)
    specs = [_spec(args, i, source) for i, source in enumerate(args.sources)]
    factory, described = load(model_choice(args))
    print(f"streamer: {described}", file=sys.stderr)
    async with (
        stop_on_signals() as stop,
        Engine(factory, config=config) as engine,
        maybe_serve(engine, api) as url,
    ):
        # The API is up before the first stream is added: its WebRTC gateway registers the frame
        # tap that gives every later stream its WHEP egress (a stream added earlier has none).
        # Its address is printed once the streams are there to be asked for.
        for spec in specs:
            await _add(engine, spec)
        if url:
            print(f"streamer: API at {url}/v1, events at {url}/v1/events (WebSocket), page at {url}/",
                  file=sys.stderr)  # fmt: skip
        board = StatusBoard(engine.sessions, totals={s.stream_id: n for s in specs
                                                     if s.stream_id and (n := probe_frame_count(s.source))})  # fmt: skip
        await until_done_or_signal(engine, board, stop, args.duration)
    return _report(engine)


async def _serve(args: argparse.Namespace, load: TrackerLoader = load_tracker_factory) -> int:
    check_serve(args)
    if args.cluster or args.ray_address:  # Ray worker actors (docs/cluster.md); Ray loads here
        try:
            from streamer.cluster.launch import serve_cluster
        except ModuleNotFoundError as error:
            raise UserError(f"cluster mode needs {error.name}: pip install '.[cluster]'") from None
        return await serve_cluster(args)
    api, config = api_config(args), engine_config(args)
    factory, described = load(model_choice(args))
    async with (
        stop_on_signals() as stop,
        Engine(factory, config=config) as engine,
        serve_api(engine, api) as url,
    ):
        print(f"streamer: {described}; control API at {url}/v1 (docs: {url}/v1/openapi.json), "
              f"page at {url}/", file=sys.stderr)  # fmt: skip
        board = StatusBoard(engine.sessions)
        await until_done_or_signal(engine, board, stop, None, forever=True)
    return 0


async def _add(engine: Engine, spec: StreamSpec) -> None:
    try:
        await engine.add_stream(spec)
    except (SourceError, ValueError) as error:
        raise UserError(str(error)) from None


def _report(engine: Engine) -> int:
    return EXIT_FAILED if print_summary(engine) else 0


# --- arguments -------------------------------------------------------------------------------


def _spec(args: argparse.Namespace, index: int, source: str) -> StreamSpec:
    redaction = None
    for text in args.redact or ():
        prompt_concept(text, "--redact")
    if args.redact:
        outputs = tuple(_per_stream(out, index, len(args.sources)) for out in args.out)
        redaction = RedactionSpec(
            concepts=tuple(args.redact), outputs=outputs,
            draw=RedactConfig(style=RedactStyle(args.style), margin_px=args.margin),
        )  # fmt: skip
    elif args.out:
        raise UserError("--out writes the redacted video: say what to redact with --redact CONCEPT")
    return StreamSpec(
        source=source, stream_id=f"s{index + 1}", concepts=tuple(prompt_concept(text) for text in args.prompt),
        realtime=args.realtime, loop=args.loop, redaction=redaction, max_attempts=args.max_reconnects,
    )  # fmt: skip


def _per_stream(target: str, index: int, count: int) -> str:
    """With several sources, one --out becomes out-s1.mp4, out-s2.mp4, ... (RTSP: /s1, /s2)."""
    if count == 1:
        return target
    if target.startswith(("rtsp://", "rtsps://")):
        return f"{target.rstrip('/')}/s{index + 1}"
    path = Path(target)
    return str(path.with_name(f"{path.stem}-s{index + 1}{path.suffix}"))


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamer", description="SAM 3 concept tracking on live video."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def model_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--model", default="embedded", help="config name: embedded (default), tiny, sam3"
        )
        p.add_argument(
            "--checkpoint", help="sam3.pt, an HF facebook/sam3 folder, or a .safetensors file"
        )
        p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1, ...")
        p.add_argument(
            "--dtype",
            default="auto",
            choices=["auto", "float32", "bfloat16"],
            help="auto (default): bfloat16 where the device computes it natively (CUDA; CPUs with AMX or AVX512-BF16), else float32",
        )

    def api_flags(p: argparse.ArgumentParser, port: int) -> None:
        p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
        p.add_argument("--port", type=int, default=port, help=f"default {port}")
        p.add_argument(
            "--token",
            help=f"require 'Authorization: Bearer TOKEN' on the API (default: ${TOKEN_ENV})",
        )
        p.add_argument("--ice-host", action="append", default=[], metavar="ADDR",
                       help="an IP address WebRTC peers can reach this machine at (repeatable; "
                            "default: follow --host)")  # fmt: skip

    def out_dir_flag(p: argparse.ArgumentParser) -> None:
        p.add_argument("--out-dir", metavar="DIR",
                       help="the folder API clients may write video files in (default: the "
                            "working directory); a path outside it is refused")  # fmt: skip

    def nats_flag(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--nats",
            metavar="URL",
            help="also publish every event to NATS JetStream (nats://host:4222)",
        )

    def cluster_flags(p: argparse.ArgumentParser) -> None:  # docs/cluster.md
        group = p.add_argument_group("cluster mode (pip install .[cluster])")
        group.add_argument(
            "--cluster",
            action="store_true",
            help="run streams on Ray worker actors of a local Ray started for you",
        )
        group.add_argument(
            "--ray-address", metavar="ADDR", help="join this Ray cluster instead (needs --nats)"
        )
        group.add_argument(
            "--workers",
            type=_positive_int,
            metavar="N",
            help="worker actors (default: one per GPU; 1 with --device cpu)",
        )
        group.add_argument(
            "--worker-capacity",
            type=float,
            metavar="OBJECT_FRAMES",
            help="a worker's budget in object-frames/s (default: the table in docs/cluster.md)",
        )
        group.add_argument("--frame-cost", type=float, default=4.0, metavar="OBJECTS",
                           help="with --worker-capacity: a frame's fixed cost, in objects (default 4)")  # fmt: skip

    run = commands.add_parser("run", help="track concepts on one or more sources")
    run.add_argument(
        "sources",
        nargs="+",
        metavar="SOURCE",
        help="rtsp://..., a video file, /dev/videoN, synthetic://WxH@FPS, world://SIDE@FPS",
    )
    run.add_argument(
        "--prompt",
        action="append",
        default=[],
        metavar="TEXT",
        help="a concept to track (repeatable)",
    )
    run.add_argument(
        "--redact",
        action="append",
        default=[],
        metavar="CONCEPT",
        help="a prompt to redact, or '*' (repeatable)",
    )
    run.add_argument("--style", default="blur", choices=[s.value for s in RedactStyle])
    run.add_argument(
        "--margin", type=int, default=8, metavar="PX", help="grow redaction masks by PX pixels"
    )
    run.add_argument(
        "--out",
        action="append",
        default=[],
        metavar="FILE|rtsp://...",
        help="redacted video output (repeatable)",
    )
    run.add_argument(
        "--events",
        metavar="FILE|ws",
        help="write events to a .msgpack log, or serve them over WebSocket",
    )
    run.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    run.add_argument(
        "--realtime",
        action="store_true",
        help="pace files to their frame rate (else as fast as the model)",
    )
    run.add_argument("--loop", action="store_true", help="restart files at their end")
    run.add_argument("--max-reconnects", type=_positive_int, metavar="N",
                     help="network sources: fail the stream after N failed connection attempts in a row "
                          "(default: reconnect forever)")  # fmt: skip
    nats_flag(run)
    model_flags(run)
    api_flags(run, 8080)
    out_dir_flag(run)

    serve = commands.add_parser("serve", help="serve the HTTP control API and WebSocket events")
    serve.add_argument("--events", metavar="FILE", help="also write every event to a .msgpack log")
    nats_flag(serve)
    model_flags(serve)
    api_flags(serve, 8080)
    cluster_flags(serve)
    out_dir_flag(serve)

    demo = commands.add_parser(
        "demo", help="a short self-contained run: redacted mp4, event log, overlay PNG"
    )
    demo.add_argument(
        "source",
        nargs="?",
        default=DEMO_SOURCE,
        help="default: a live scene of the concept world the embedded model knows",
    )
    demo.add_argument(
        "--prompt", action="append", metavar="TEXT", help="default: 'ring', 'purple square'"
    )
    demo.add_argument("--duration", type=float, metavar="S",
                      help="seconds to run (default 10; with --serve, until Ctrl-C)")  # fmt: skip
    demo.add_argument(
        "--out-dir", default="demo-out", help="where the outputs go (default ./demo-out)"
    )
    demo.add_argument(
        "--serve",
        action="store_true",
        help="also serve the live page and the API; run until Ctrl-C",
    )
    model_flags(demo)
    api_flags(demo, 8080)
    return parser
