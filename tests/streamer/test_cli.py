"""The `streamer` command: flags -> configs and in-process runs with a fake tracker (fast), and
as a user runs it (subprocesses, slow): clear one-line errors, real outputs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Awaitable, Callable
from fractions import Fraction
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import aiohttp
import av
import numpy as np
import pytest
import torch

from model.types import Concept
from protocols import events as ev
from protocols.codec import decode
from protocols.log import LogWriter, read_log
from streamer.cli import _parser, _run
from streamer.demo import DEFAULT_DURATION_S, demo
from streamer.launch import (
    EXIT_FAILED,
    TOKEN_ENV,
    ModelChoice,
    UserError,
    api_config,
    engine_config,
    load_tracker_factory,
    model_choice,
)
from tests.fakes import FakeTracker, eventually
from tests.streamer.conftest import Clips, free_port
from tests.streamer.webrtc_peers import view

pytestmark = pytest.mark.timeout(240)
slow = pytest.mark.slow
T = TypeVar("T")


def test_api_and_engine_flags_become_configs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, "from-env")
    args = _parser().parse_args(["serve", "--nats", "nats://broker:4222", "--host", "0.0.0.0", "--port", "9000",
                                 "--ice-host", "10.0.0.5", "--ice-host", "fd00::5"])  # fmt: skip
    api, engine = api_config(args), engine_config(args)
    assert (api.host, api.port, api.token) == ("0.0.0.0", 9000, "from-env")
    assert api.webrtc is not None and api.webrtc.ice_hosts == ("10.0.0.5", "fd00::5")
    assert engine.nats is not None and engine.nats.url == "nats://broker:4222"
    args = _parser().parse_args(["serve", "--token", "from-flag"])
    assert api_config(args).token == "from-flag"  # the flag wins over the environment
    monkeypatch.delenv(TOKEN_ENV)
    api, engine = (
        api_config(_parser().parse_args(["serve"])),
        engine_config(_parser().parse_args(["serve"])),
    )
    assert api.token is None and engine.nats is None
    assert api.webrtc is not None and api.webrtc.ice_hosts is None  # follow the bind address


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["serve", "--nats", "http://broker:4222"], "expected nats://"),
        (["serve", "--nats", "nats://user:hunter2@"], "expected nats://"),
        (["serve", "--ice-host", "cam.local"], "expected an IP address"),
        (["serve", "--port", "70000"], "expected 0..65535"),
    ],
)
def test_bad_api_and_engine_flags_are_user_errors(argv: list[str], needle: str) -> None:
    args = _parser().parse_args(argv)
    with pytest.raises(UserError, match=needle) as info:
        api_config(args)
        engine_config(args)
    assert "hunter2" not in str(info.value)


async def test_run_refuses_api_flags_without_an_api_before_loading_the_model() -> None:
    def no_model(choice: object) -> NoReturn:
        raise AssertionError("the model must not be loaded for a bad command line")

    args = _parser().parse_args(
        ["run", "synthetic://64x48@5", "--prompt", "red", "--ice-host", "10.0.0.5"]
    )
    with pytest.raises(UserError, match="add --events ws"):
        await _run(args, load=no_model)


def streamer(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streamer", *args], capture_output=True, text=True,
                          timeout=200, cwd=cwd)  # fmt: skip


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line or "failed" in line]
    assert len(errors) == 1, result.stderr
    return errors[0]


def fake_model(choice: object) -> tuple[type[FakeTracker], str]:
    return FakeTracker, "fake tracker"


async def wait_for_api(base: str, http: aiohttp.ClientSession, run: asyncio.Task[int]) -> None:
    for _ in range(500):
        assert not run.done(), "the command ended before its API came up"
        with contextlib.suppress(aiohttp.ClientConnectionError):
            async with http.get(f"{base}/v1/health") as r:
                if r.status == 200:
                    return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{base} did not come up")


async def wait_for_stream(
    base: str, http: aiohttp.ClientSession, stream_id: str, token: str
) -> None:
    """The API comes up before the command adds its streams (sources are opened off the loop)."""
    headers = {"Authorization": f"Bearer {token}"}
    for _ in range(500):
        async with http.get(f"{base}/v1/streams/{stream_id}", headers=headers) as r:
            if r.status == 200:
                return
        await asyncio.sleep(0.02)
    raise AssertionError(f"stream {stream_id} was never added")


async def test_run_events_ws_serves_ws_and_whep_for_its_own_streams(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    token, port = "tok-7f3a9c", free_port()
    monkeypatch.setenv(TOKEN_ENV, token)
    args = _parser().parse_args(["run", "synthetic://64x48@15", "--prompt", "red", "--events", "ws",
                                 "--port", str(port)])  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    run = asyncio.create_task(_run(args, load=fake_model))
    try:
        async with aiohttp.ClientSession() as http:
            await wait_for_api(base, http, run)
            await wait_for_stream(base, http, "s1", token)
            with pytest.raises(aiohttp.WSServerHandshakeError, match="401"):
                await http.ws_connect(f"{base}/v1/streams/s1/events")  # the token is required
            async with http.ws_connect(f"{base}/v1/streams/s1/events?token={token}") as ws:
                events = [decode(await ws.receive_bytes(timeout=10))]
                while not any(isinstance(e, ev.FrameResult) for e in events):
                    events.append(decode(await ws.receive_bytes(timeout=10)))
            # the stream was added after the WebRTC gateway came up: it has a WHEP egress (not 409)
            viewer = await view(http, base, "s1", token=token)
            try:
                await eventually(lambda: any(isinstance(e, ev.FrameResult) for e in viewer.events))
            finally:
                await viewer.pc.close()
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C: graceful stop
        assert await asyncio.wait_for(run, 10) == 0
    finally:
        run.cancel()
    assert isinstance(events[0], ev.Hello)
    assert isinstance(viewer.events[0], ev.Hello)
    output = capsys.readouterr()
    assert f"events at {base}/v1/events" in output.err
    assert token not in output.out + output.err


async def test_refused_rtsp_with_max_reconnects_fails_alone(
    capsys: pytest.CaptureFixture[str],
) -> None:
    refused, port = (
        f"rtsp://127.0.0.1:{free_port()}/cam",
        free_port(),
    )  # nothing listens on the first
    args = _parser().parse_args([
        "run", refused, "synthetic://64x48@15", "--prompt", "red", "--max-reconnects", "2",
        "--events", "ws", "--port", str(port),
    ])  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    run = asyncio.create_task(_run(args, load=fake_model))
    try:
        async with aiohttp.ClientSession() as http:
            await wait_for_api(base, http, run)

            async def stream(stream_id: str) -> dict[str, Any]:
                async with http.get(f"{base}/v1/streams/{stream_id}") as r:
                    return await r.json()  # type: ignore[no-any-return]

            s1 = await poll(  # two refused attempts and their back-off: slower under load
                lambda: stream("s1"), lambda s: s["state"] == "failed", within_s=60
            )
            assert s1["error"] == f"{refused}: Connection refused (gave up after 2 attempts)"
            frames = (await stream("s2"))["frames_out"]
            s2 = await poll(
                lambda: stream("s2"), lambda s: s["frames_out"] >= frames + 5, within_s=60
            )
            assert s2["state"] == "live"
            # the same bound through the HTTP API
            async with http.post(
                f"{base}/v1/streams", json={"source": refused, "max_attempts": 1}
            ) as r:
                assert r.status == 201, await r.text()
                added = (await r.json())["stream_id"]
            failed = await poll(lambda: stream(added), lambda s: s["state"] == "failed")
            assert "gave up after 1 attempt)" in failed["error"]
        os.kill(os.getpid(), signal.SIGINT)
        assert await asyncio.wait_for(run, 10) == EXIT_FAILED
    finally:
        run.cancel()
    failures = [line for line in capsys.readouterr().err.splitlines() if "failed" in line]
    assert (
        len(failures) == 2
        and "stream s1 failed: " in failures[0]
        and "gave up after 2" in failures[0]
    )


async def test_demo_serve_serves_the_page_until_ctrl_c(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    args = _parser().parse_args(["demo", "synthetic://160x120@15", "--prompt", "red", "--serve", "--port", str(port),
                                 "--out-dir", str(tmp_path)])  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    run = asyncio.create_task(demo(args, fake_model))
    try:
        async with aiohttp.ClientSession() as http:
            await wait_for_api(base, http, run)
            async with http.get(f"{base}/") as r:
                assert r.status == 200 and r.content_type == "text/html"
                assert '<script type="module" src="/web/app.js">' in await r.text()
            async with http.get(f"{base}/v1/streams/demo") as r:
                assert (await r.json())["state"] == "live"
            await asyncio.sleep(DEFAULT_DURATION_S / 10)
            assert not run.done()  # no duration with --serve: it runs until Ctrl-C
        os.kill(os.getpid(), signal.SIGINT)
        assert await asyncio.wait_for(run, 10) == 0
    finally:
        run.cancel()
    out = capsys.readouterr().out
    assert f"watch it live at {base}/?source=stream&stream=demo&autostart=1" in out
    assert "objects: 1 'red': IDs [1]" in out  # the synthetic scene's red circle
    for name in ("redacted.mp4", "events.msgpack", "frame.png", "overlay.png"):
        assert (tmp_path / name).stat().st_size > 0, name


async def test_demo_bad_source_is_a_user_error(tmp_path: Path) -> None:
    args = _parser().parse_args(
        ["demo", "ftp://camera/1", "--prompt", "red", "--out-dir", str(tmp_path)]
    )
    with pytest.raises(UserError, match="unsupported"):  # itself, not inside an ExceptionGroup
        await demo(args, fake_model)


async def poll(
    get: Callable[[], Awaitable[T]], ok: Callable[[T], bool], within_s: float = 10.0
) -> T:
    for _ in range(int(within_s / 0.05)):
        if ok(value := await get()):
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"condition not met within {within_s} s (last: {value})")


@slow
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_dtype_flag_reaches_the_model(dtype: str) -> None:
    choice = model_choice(
        _parser().parse_args(["run", "x.mp4", "--model", "tiny", "--dtype", dtype])
    )
    assert choice == ModelChoice("tiny", None, "cpu", dtype)
    factory, described = load_tracker_factory(choice)
    assert f"on cpu in {dtype}" in described
    tracker = factory()
    assert next(tracker._model.model.parameters()).dtype == getattr(torch, dtype)
    tracker.add_concept(Concept("person"))
    assert tracker.step(np.zeros((48, 64, 3), np.uint8), 0).frame_index == 0


def test_bad_inputs_end_with_one_clear_line(tmp_path: Path) -> None:
    line = one_line_error(
        streamer("run", "ftp://camera/1", "--prompt", "person", "--model", "tiny")
    )
    assert "unsupported" in line
    line = one_line_error(
        streamer("run", str(tmp_path / "missing.mp4"), "--prompt", "person", "--model", "tiny")
    )
    assert "missing.mp4" in line
    (tmp_path / "empty.mp4").touch()
    result = streamer("run", str(tmp_path / "empty.mp4"), "--prompt", "person", "--model", "tiny")
    assert result.returncode == 2 and "empty.mp4 is empty" in one_line_error(result)
    bad = tmp_path / "weights.safetensors"
    bad.write_bytes(b"\x00" * 64)
    line = one_line_error(
        streamer("run", "synthetic://64x48@5", "--prompt", "x", "--checkpoint", str(bad))
    )
    assert "weights.safetensors" in line
    line = one_line_error(streamer("run", "synthetic://64x48@5", "--model", "tiny"))
    assert "--prompt" in line


@slow
def test_run_writes_events_and_a_redacted_video(clips: Clips, tmp_path: Path) -> None:
    events, video = tmp_path / "events.msgpack", tmp_path / "redacted.mp4"
    result = streamer("run", str(clips.mp4), "--prompt", "grey square", "--redact", "grey square",
                      "--out", str(video), "--events", str(events), "--model", "tiny")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "RANDOM weights" not in result.stderr  # tiny was asked for explicitly
    logged = list(read_log(events, strict=True))
    assert isinstance(logged[0], ev.Hello)
    assert len([e for e in logged if isinstance(e, ev.FrameResult)]) == clips.frames
    with av.open(str(video)) as container:
        assert sum(1 for _ in container.decode(video=0)) == clips.frames


@slow
def test_demo_leaves_its_outputs_and_a_summary(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    with contextlib.closing(LogWriter(tmp_path / "out" / "events.msgpack")) as earlier_run:
        earlier_run.write(ev.StreamStarted("demo", 64, 48, 5.0, Fraction(1, 5), "world://64@5"))
    result = streamer("demo", "--duration", "3", "--out-dir", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert "processed" in result.stdout and "objects:" in result.stdout
    for name in ("redacted.mp4", "events.msgpack", "frame.png", "overlay.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0, name
    logged = list(read_log(tmp_path / "out" / "events.msgpack", strict=True))  # this run's alone
    assert isinstance(logged[0], ev.Hello)
    assert len([e for e in logged if isinstance(e, ev.StreamStarted)]) == 1


@slow
def test_demo_serve_runs_until_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "streamer", "demo", "synthetic://160x120@10", "--model", "tiny", "--serve",
               "--port", str(port), "--out-dir", str(tmp_path)]  # fmt: skip
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None
            lines = []
            while not (lines and "watch it live at" in lines[-1]):
                lines.append(process.stdout.readline())
                assert lines[-1], (
                    f"the demo ended early: {lines} {process.stderr.read() if process.stderr else ''}"
                )
            page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10)
            assert page.status == 200 and b"/web/app.js" in page.read()
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=60)
        finally:
            process.kill()
    assert process.returncode == 0, err
    assert "Traceback" not in err and "processed" in out
