"""What the command-line commands share: loading the model, user errors, signals, serving the API.

`streamer run`, `streamer serve` (streamer/cli.py) and `streamer demo` (streamer/demo.py) all go
through these, so a mistake the user can fix is one `UserError` line wherever it happens.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import os
import re
import signal
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from model.config import CONFIGS
from model.types import Concept
from protocols.credentials import redact_url
from streamer.api import ApiConfig, create_app
from streamer.engine import Engine, EngineConfig
from streamer.inference import StreamTracker
from streamer.model_info import model_info
from streamer.sinks.nats import NatsConfig
from streamer.status import StatusBoard
from streamer.webrtc import WebRtcConfig

EXIT_USAGE = 2
EXIT_FAILED = 1
TOKEN_ENV = "STREAMER_TOKEN"  # the API token, when --token is not given (keeps it out of `ps`)
NATS_SCHEMES = ("nats", "tls", "ws", "wss")
TrackerLoader = Callable[["ModelChoice"], tuple[Callable[[], StreamTracker], str]]


class UserError(Exception):
    """Something the user can fix; printed as one line."""


def prompt_concept(text: str, flag: str = "--prompt") -> Concept:
    """A text concept from the command line; a blank one is refused before any model loads."""
    if not text.strip():
        raise UserError(f"{flag} {text!r}: a prompt needs at least one word, e.g. {flag} person")
    return Concept(text)


@dataclass(frozen=True)
class ModelChoice:
    name: str  # "embedded", "tiny", "sam3", ...
    checkpoint: Path | None
    device: str
    dtype: str = "auto"  # "auto", "float32", "bfloat16" (model.inference_dtype)


def load_tracker_factory(choice: ModelChoice) -> tuple[Callable[[], StreamTracker], str]:
    """Build the model once; return a per-stream tracker factory and a one-line description."""
    from model import (
        CheckpointError,
        VideoTracker,
        build_sam3,
        inference_dtype,
        packaged_checkpoint,
    )

    check_model(choice)  # the CLI checked already; a direct call gets the same sentences
    checkpoint, name, note = choice.checkpoint, choice.name, ""
    if checkpoint is None and name == "embedded":
        checkpoint = packaged_checkpoint(name)
        if checkpoint is None:
            name, note = (
                "tiny",
                " (embedded weights not found: tiny model with RANDOM weights, masks are meaningless)",
            )
    dtype = inference_dtype(choice.device, choice.dtype)
    try:
        model = build_sam3(name, checkpoint, device=choice.device, dtype=dtype)
    except (CheckpointError, OSError, ValueError, KeyError) as error:
        raise UserError(f"cannot load model {name!r} from {checkpoint}: {error}") from None
    model.eval()
    _warm_up(lambda: VideoTracker(model))
    source = f"checkpoint {checkpoint}" if checkpoint is not None else "random weights"
    precision = str(dtype).removeprefix("torch.")
    return (
        lambda: VideoTracker(model)
    ), f"model {name} on {choice.device} in {precision}, {source}{note}"


def _warm_up(factory: Callable[[], StreamTracker], steps: int = 3) -> None:
    """A few throwaway steps: first calls pay for lazy init and kernel selection (seconds on a
    CPU), which would otherwise land on the first frames of the first stream."""
    import numpy as np

    from model.types import Concept

    tracker = factory()
    tracker.add_concept(Concept("warm-up"))  # type: ignore[attr-defined]
    blank = np.zeros((360, 640, 3), dtype=np.uint8)
    for index in range(steps):
        tracker.step(blank, index)


@contextlib.asynccontextmanager
async def stop_on_signals() -> AsyncIterator[asyncio.Event]:
    """SIGINT/SIGTERM set the returned event: a graceful stop. Once it is set, another one aborts.

    Enter it before the engine starts, so that a Ctrl-C at any moment of a run stops it cleanly.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stop.is_set():
            raise KeyboardInterrupt  # a second Ctrl-C during the graceful drain aborts at once
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    try:
        yield stop
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def until_done_or_signal(
    engine: Engine,
    board: StatusBoard,
    stop: asyncio.Event,
    duration: float | None,
    *,
    forever: bool = False,
) -> None:
    """Wait for the streams to end, `duration` seconds, or `stop`; then mark the run as stopping."""
    async with asyncio.TaskGroup() as tg:
        drawing = tg.create_task(board.run())
        waiters: list[asyncio.Task[object]] = [tg.create_task(stop.wait())]
        if not forever:
            waiters.append(tg.create_task(engine.join()))
        if duration is not None:
            waiters.append(tg.create_task(asyncio.sleep(duration)))
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for task in [*waiters, drawing]:
            task.cancel()
    stop.set()  # from here on, a Ctrl-C aborts the drain


def _event_log(events: str | None) -> Path | None:
    if events is None or events == "ws":
        return None
    return Path(events)  # its folder: streamer/preflight.py


@contextlib.asynccontextmanager
async def serve_api(engine: Engine, config: ApiConfig) -> AsyncIterator[str]:
    """Serve the control API, WebSocket events, WHIP/WHEP and the page; yields the base URL."""
    from aiohttp import web

    runner = web.AppRunner(create_app(engine, config), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, config.host, config.port).start()
    except OSError as error:
        await runner.cleanup()
        raise UserError(f"cannot listen on {config.host}:{config.port}: {error.strerror}") from None
    try:
        yield f"http://{config.host}:{config.port}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def maybe_serve(engine: Engine, config: ApiConfig | None) -> AsyncIterator[str | None]:
    if config is None:
        yield None
        return
    async with serve_api(engine, config) as url:
        yield url


def engine_config(args: argparse.Namespace) -> EngineConfig:
    """EngineConfig from `--device`, `--events FILE` and `--nats URL`."""
    nats = None
    if getattr(args, "nats", None):
        parts = urlsplit(args.nats)
        if parts.scheme not in NATS_SCHEMES or not parts.hostname:
            shown = redact_url(args.nats)
            raise UserError(
                f"--nats {shown!r}: expected nats://HOST[:PORT] (or tls://, ws://, wss://)"
            )
        nats = NatsConfig(url=args.nats)
    return EngineConfig(
        device=args.device, event_log=_event_log(getattr(args, "events", None)), nats=nats
    )


def api_config(args: argparse.Namespace) -> ApiConfig:
    """ApiConfig from `--host`, `--port`, `--token` (or $STREAMER_TOKEN), `--ice-host` and
    `--out-dir` (the only folder API clients may name video files in)."""
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port {args.port}: expected 0..65535")
    for host in args.ice_host:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise UserError(
                f"--ice-host {host!r}: expected an IP address of this machine"
            ) from None
    token = args.token or os.environ.get(TOKEN_ENV) or None
    webrtc = WebRtcConfig(ice_hosts=tuple(args.ice_host) if args.ice_host else None)
    choice = model_choice(args)
    out_dir = getattr(args, "out_dir", None)  # demo: its own outputs' folder
    return ApiConfig(
        host=args.host, port=args.port, token=token, webrtc=webrtc,
        model=model_info(choice.name, choice.checkpoint),
        out_dir=Path(out_dir) if out_dir else None,
    )  # fmt: skip


def model_choice(args: argparse.Namespace) -> ModelChoice:
    return ModelChoice(
        args.model, Path(args.checkpoint) if args.checkpoint else None, args.device, args.dtype
    )


HF_WEIGHTS = "model.safetensors"
HF_INDEX = "model.safetensors.index.json"  # with shards: {"weight_map": {key: shard file}}
OFFICIAL_WEIGHTS = "sam3.pt"
_DEVICE = re.compile(r"^(cpu|cuda)(?::(\d+))?$")
CudaCount = Callable[[], int]  # CUDA devices torch sees (0: none, or no CUDA build)


# --- the model -------------------------------------------------------------------------------


def check_model(choice: ModelChoice, cuda_count: CudaCount | None = None) -> None:
    """`--model`, `--checkpoint` and `--device` (`cuda_count`: tests; default asks torch)."""
    if choice.name not in CONFIGS:
        raise UserError(
            f"--model {choice.name}: unknown model; known: {', '.join(sorted(CONFIGS))}"
        )
    if choice.checkpoint is not None:
        check_checkpoint(choice.checkpoint)
    check_device(choice.device, cuda_count or _cuda_count)


def check_checkpoint(path: Path) -> None:
    """The file or folder exists, and a folder is an HF one (whose shards are all there) or holds
    sam3.pt: what model/checkpoint/read.py reads. A file's bytes are checked when it loads."""
    flag = f"--checkpoint {path}"
    if not path.exists():
        raise UserError(f"{flag} does not exist; pass sam3.pt, an HF facebook/sam3 folder "
                        "or a .safetensors file")  # fmt: skip
    if not path.is_dir():
        return
    index = path / HF_INDEX
    if index.is_file():
        shards = _index_shards(index, flag)
        missing = [shard for shard in shards if not (path / shard).is_file()]
        if missing:
            raise UserError(f"{flag}: {len(missing)} of the {len(shards)} shards {HF_INDEX} lists "
                            f"are missing, e.g. {missing[0]}; download them all")  # fmt: skip
        return
    if not (path / HF_WEIGHTS).is_file() and not (path / OFFICIAL_WEIGHTS).is_file():
        raise UserError(f"{flag} is a folder without {HF_WEIGHTS}, {HF_INDEX} or {OFFICIAL_WEIGHTS}; "
                        "pass an HF facebook/sam3 folder or the checkpoint file itself")  # fmt: skip


def _index_shards(index: Path, flag: str) -> list[str]:
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
        shards = sorted(set(weight_map.values()))
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise UserError(f"{flag}: {HF_INDEX} is not an index of shards ({type(error).__name__}); "
                        "download it again") from None  # fmt: skip
    if not shards or not all(isinstance(shard, str) for shard in shards):
        raise UserError(f"{flag}: {HF_INDEX} lists no shard files; download it again")
    return shards


def check_device(device: str, cuda_count: CudaCount) -> None:
    match = _DEVICE.match(device)
    if match is None:
        raise UserError(f"--device {device}: expected cpu, cuda or cuda:N")
    if match.group(1) != "cuda":
        return
    count = cuda_count()
    if count == 0:
        raise UserError(f"--device {device}: CUDA is not available on this machine; "
                        "pass --device cpu")  # fmt: skip
    index = int(match.group(2) or 0)
    if index >= count:
        raise UserError(f"--device {device}: this machine has {count} CUDA device(s), "
                        f"cuda:0 to cuda:{count - 1}")  # fmt: skip


def _cuda_count() -> int:
    import torch  # seconds to import: only for a CUDA device

    return torch.cuda.device_count() if torch.cuda.is_available() else 0
