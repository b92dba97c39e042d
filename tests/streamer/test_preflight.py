"""Bad command lines are refused before the model loads: one sentence naming the culprit, exit 2.

The first tests run the real CLI (`python -m streamer`, which imports no torch), one per kind of
bad input; the rest call the checks in streamer/preflight.py directly."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamer.cli import _parser
from streamer.launch import (
    ModelChoice,
    UserError,
    check_checkpoint,
    check_device,
    check_model,
    load_tracker_factory,
)
from streamer.preflight import (
    check_new_file,
    check_new_folder,
    check_output,
    check_port_free,
    check_prompts,
    check_run,
    check_source,
)
from streamer.sources import FileConfig, RtspConfig, WebcamConfig, WorldSourceConfig, resolve_source
from tests.streamer.conftest import free_port

pytestmark = pytest.mark.timeout(120)
SYNTHETIC = "synthetic://64x48@5"


def refused(*argv: str, cwd: Path) -> str:
    """Run the CLI; assert exit 2, no traceback, no model loaded; return the last stderr line."""
    done = subprocess.run([sys.executable, "-m", "streamer", *argv], capture_output=True, text=True,
                          timeout=100, cwd=cwd)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    prefixes = ("streamer: model", "streamer demo: model")  # what a model load prints
    loaded = [line for line in lines + done.stdout.splitlines() if line.startswith(prefixes)]
    assert not loaded, done.stderr
    return lines[-1]


def unwritable(tmp_path: Path) -> Path:
    """A folder no file can be made in: a read-only one, or /sys where root owns everything."""
    for folder in (tmp_path / "locked", Path("/sys")):
        if folder.parent == tmp_path:
            folder.mkdir(exist_ok=True)
            folder.chmod(0o555)
        try:
            tempfile.TemporaryFile(dir=folder).close()
        except OSError:
            return folder
    pytest.skip("no folder here refuses new files")


@pytest.fixture
def listening() -> Iterator[int]:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


# --- the real CLI ----------------------------------------------------------------------------


@pytest.mark.parametrize(("source", "culprit"), [("missing.mp4", "video file not found: missing.mp4"),
                                                  ("folder", "folder is a folder"),
                                                  ("ftp://camera/1", "unsupported source ftp://")])  # fmt: skip
def test_a_bad_source(tmp_path: Path, source: str, culprit: str) -> None:
    (tmp_path / "folder").mkdir()
    assert culprit in refused("run", source, "--prompt", "person", cwd=tmp_path)


@pytest.mark.parametrize(("flags", "culprit"), [(["--prompt", ""], "--prompt ''"),
                                                (["--prompt", "x", "--redact", " "], "--redact ' '")])  # fmt: skip
def test_a_blank_prompt_or_redaction(tmp_path: Path, flags: list[str], culprit: str) -> None:
    line = refused("run", SYNTHETIC, *flags, cwd=tmp_path)
    assert culprit in line and "at least one word" in line


def test_an_output_without_its_folder(tmp_path: Path) -> None:
    line = refused("run", SYNTHETIC, "--prompt", "x", "--redact", "x", "--out", "no/out.mp4",
                   cwd=tmp_path)  # fmt: skip
    assert "--out no/out.mp4: folder no does not exist" in line


def test_an_output_in_a_folder_that_takes_no_files(tmp_path: Path) -> None:
    target = str(unwritable(tmp_path) / "out.mp4")
    line = refused(
        "run", SYNTHETIC, "--prompt", "x", "--redact", "x", "--out", target, cwd=tmp_path
    )
    assert f"--out {target}: cannot write in" in line


def test_an_event_log_without_its_folder(tmp_path: Path) -> None:
    assert "--events no/e.msgpack: folder no" in refused("serve", "--events", "no/e.msgpack",
                                                         cwd=tmp_path)  # fmt: skip


def test_a_cuda_device_this_machine_lacks(tmp_path: Path) -> None:
    # cuda:99 is refused with CUDA (too few devices) and without it (none at all)
    assert "--device cuda:99" in refused("run", SYNTHETIC, "--prompt", "x", "--device", "cuda:99",
                                         cwd=tmp_path)  # fmt: skip


def test_an_unknown_model(tmp_path: Path) -> None:
    line = refused("run", SYNTHETIC, "--prompt", "x", "--model", "huge", cwd=tmp_path)
    assert "--model huge: unknown model; known: embedded, sam3, tiny" in line


@pytest.mark.parametrize(("make", "culprit"), [("missing", "does not exist"), ("empty", "a folder without"),
                                               ("shard", "1 of the 2 shards")])  # fmt: skip
def test_a_bad_checkpoint(tmp_path: Path, make: str, culprit: str) -> None:
    folder = tmp_path / make
    if make != "missing":
        folder.mkdir()
    if make == "shard":
        index = {"weight_map": {"a": "model-1.safetensors", "b": "model-2.safetensors"}}
        (folder / "model.safetensors.index.json").write_text(json.dumps(index))
        (folder / "model-1.safetensors").write_bytes(b"x")
    line = refused("run", SYNTHETIC, "--prompt", "x", "--checkpoint", make, cwd=tmp_path)
    assert f"--checkpoint {make}" in line and culprit in line


@pytest.mark.parametrize("command", [["serve"], ["demo", "--serve"]])
def test_a_busy_port(tmp_path: Path, listening: int, command: list[str]) -> None:
    line = refused(*command, "--port", str(listening), cwd=tmp_path)
    assert line.endswith(f"port {listening} on 127.0.0.1 is in use; pass --port with a free one")


# --- the checks ------------------------------------------------------------------------------


def test_resolving_a_source_opens_nothing() -> None:
    assert isinstance(resolve_source("missing.mp4", loop=True).config, FileConfig)
    assert resolve_source("file:///v/clip.mkv").target == "/v/clip.mkv"
    plan = resolve_source("RTSP://user:pw@no-such-camera.invalid/1")  # not looked up
    assert isinstance(plan.config, RtspConfig) and plan.target.startswith("RTSP://")
    assert resolve_source("v4l2://").target == "/dev/video0"
    assert isinstance(resolve_source("/dev/video7").config, WebcamConfig)
    assert resolve_source("world://64@5").config == WorldSourceConfig(size=64, fps=5.0)


def test_good_sources_pass(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"not checked before it is opened")
    fifo = tmp_path / "video.fifo"
    os.mkfifo(fifo)
    for source in (str(clip), f"file://{clip}", str(fifo), SYNTHETIC, "world://64@5", "rtsp://cam/1",
                   "udp://:5000", "srt://relay:9000?streamid=x"):  # fmt: skip
        check_source(source)


@pytest.mark.parametrize(("source", "needle"), [
    ("rtsp://admin:hunter2@cam:99999/x", "not a valid URL"), ("rtsp://:554/x", "no host"),
    ("mms://cam/1", "unsupported source mms://"), ("synthetic://big", "bad synthetic source"),
    ("world://x", "bad world source"), ("/dev/video99", "no camera at /dev/video99"),
    ("v4l2:///dev/video98", "no camera at /dev/video98"), ("empty.mp4", "is empty"),
])  # fmt: skip
def test_bad_sources(tmp_path: Path, source: str, needle: str) -> None:
    (tmp_path / "empty.mp4").touch()
    source = str(tmp_path / source) if source == "empty.mp4" else source
    with pytest.raises(UserError, match=needle) as info:
        check_source(source)
    assert "hunter2" not in str(info.value)


def test_a_pipe_cannot_loop(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "video.fifo")
    with pytest.raises(UserError, match="read only once"):
        check_source(str(tmp_path / "video.fifo"), loop=True)


def test_prompts() -> None:
    check_prompts(["person", "*", " red car "], "--redact")
    for blank in ("", " ", "\t\n"):
        with pytest.raises(
            UserError, match=re.escape(f"--prompt {blank!r}: a prompt needs at least one word")
        ):
            check_prompts(["person", blank], "--prompt")


def test_outputs(tmp_path: Path) -> None:
    for good in (str(tmp_path / "out.mkv"), "out.mp4", "rtsp://server:8554/redacted"):
        check_output(good)
    (tmp_path / "taken.mp4").mkdir()
    for bad, needle in ((tmp_path / "no" / "out.mp4", "folder .*no does not exist"),
                        (tmp_path / "out.txt", "use one of .m4v, .mkv, .mov, .mp4"),
                        (tmp_path / "taken.mp4", "that is a folder"),
                        ("rtsp://", "no host"), ("RTSPS://u:hunter2@:1/x", "no host")):  # fmt: skip
        with pytest.raises(UserError, match=f"^--out .*{needle}") as info:
            check_output(str(bad))
        assert "hunter2" not in str(info.value)


def test_files_and_folders_to_write(tmp_path: Path) -> None:
    check_new_file(str(tmp_path / "events.msgpack"), "--events")
    check_new_folder(str(tmp_path / "a" / "b"), "--out-dir")  # made later, with its parents
    (tmp_path / "file").touch()
    with pytest.raises(UserError, match="--out-dir .*file is a file, not a folder"):
        check_new_folder(str(tmp_path / "file" / "sub"), "--out-dir")
    locked = unwritable(tmp_path)
    with pytest.raises(UserError, match=r"--events .*: cannot write in .* \(.+\); name a folder"):
        check_new_file(str(locked / "e.msgpack"), "--events")
    with pytest.raises(UserError, match="--out-dir .*: cannot write in"):
        check_new_folder(str(locked / "demo-out"), "--out-dir")


def no_cuda_asked() -> int:
    raise AssertionError("torch is asked about CUDA only for a CUDA device")


@pytest.mark.parametrize(("device", "count", "needle"), [
    ("cuda", 0, "--device cuda: CUDA is not available on this machine; pass --device cpu"),
    ("cuda:1", 1, "--device cuda:1: this machine has 1 CUDA device.s., cuda:0 to cuda:0"),
    ("gpu", 0, "--device gpu: expected cpu, cuda or cuda:N"), ("cuda:x", 0, "expected cpu"),
])  # fmt: skip
def test_devices(device: str, count: int, needle: str) -> None:
    check_device("cpu", no_cuda_asked)
    check_device("cuda:1", lambda: 2)
    with pytest.raises(UserError, match=needle):
        check_device(device, lambda: count)


def test_models_and_checkpoints(tmp_path: Path) -> None:
    check_model(ModelChoice("tiny", None, "cpu"), no_cuda_asked)
    with pytest.raises(UserError, match="--model sam4: unknown model; known: embedded, sam3, tiny"):
        check_model(ModelChoice("sam4", None, "cpu"), no_cuda_asked)
    (tmp_path / "weights.pt").write_bytes(b"junk: checked when it loads")
    for folder, files in (("hf", ["model.safetensors"]), ("official", ["sam3.pt"]),
                          ("shards", ["model-1.safetensors", "model-2.safetensors"])):  # fmt: skip
        (tmp_path / folder).mkdir()
        for name in files:
            (tmp_path / folder / name).touch()
    index = {"weight_map": {"a": "model-1.safetensors", "b": "model-2.safetensors"}}
    (tmp_path / "shards" / "model.safetensors.index.json").write_text(json.dumps(index))
    for good in ("weights.pt", "hf", "official", "shards"):
        check_checkpoint(tmp_path / good)
    (tmp_path / "shards" / "model-2.safetensors").unlink()
    with pytest.raises(UserError, match="1 of the 2 shards .* missing, e.g. model-2.safetensors"):
        check_checkpoint(tmp_path / "shards")
    for junk in ("{not json", '{"weight_map": []}', '{"weight_map": {}}', "[]"):
        (tmp_path / "shards" / "model.safetensors.index.json").write_text(junk)
        with pytest.raises(UserError, match="model.safetensors.index.json .*; download it again"):
            check_checkpoint(tmp_path / "shards")


def test_loading_directly_gets_the_same_sentences(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="--checkpoint .*nope.pt does not exist"):
        load_tracker_factory(ModelChoice("tiny", tmp_path / "nope.pt", "cpu"))


def test_ports(listening: int) -> None:
    check_port_free("127.0.0.1", free_port())
    check_port_free("127.0.0.1", 0)
    with pytest.raises(UserError, match=f"^port {listening} on 127.0.0.1 is in use; pass --port"):
        check_port_free("127.0.0.1", listening)
    with pytest.raises(UserError, match="^--host no-such-host.invalid: not an address"):
        check_port_free("no-such-host.invalid", 8080)


def test_a_good_run_passes_and_ws_checks_its_port(tmp_path: Path, listening: int) -> None:
    (tmp_path / "clip.mp4").write_bytes(b"x")
    argv = ["run", str(tmp_path / "clip.mp4"), SYNTHETIC, "--prompt", "person", "--redact", "*",
            "--out", str(tmp_path / "out.mp4"), "--events", str(tmp_path / "e.msgpack")]  # fmt: skip
    check_run(_parser().parse_args(argv))
    ws = ["run", SYNTHETIC, "--prompt", "x", "--events", "ws", "--port"]
    check_run(_parser().parse_args([*ws, str(free_port())]))
    with pytest.raises(UserError, match="is in use"):
        check_run(_parser().parse_args([*ws, str(listening)]))
    with pytest.raises(UserError, match="give at least one --prompt"):
        check_run(_parser().parse_args(["run", SYNTHETIC]))
