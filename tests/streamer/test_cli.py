"""The `streamer` command as a user runs it (subprocesses): clear one-line errors, real outputs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import av
import pytest

from protocols import events as ev
from protocols.log import read_log
from tests.streamer.conftest import Clips

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def streamer(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streamer", *args], capture_output=True, text=True,
                          timeout=200, cwd=cwd)  # fmt: skip


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line or "failed" in line]
    assert len(errors) == 1, result.stderr
    return errors[0]


def test_bad_inputs_end_with_one_clear_line(tmp_path: Path) -> None:
    line = one_line_error(streamer("run", "ftp://camera/1", "--prompt", "person", "--model", "tiny"))
    assert "unsupported" in line
    line = one_line_error(streamer("run", str(tmp_path / "missing.mp4"), "--prompt", "person", "--model", "tiny"))
    assert "missing.mp4" in line
    bad = tmp_path / "weights.safetensors"
    bad.write_bytes(b"\x00" * 64)
    line = one_line_error(streamer("run", "synthetic://64x48@5", "--prompt", "x", "--checkpoint", str(bad)))
    assert "weights.safetensors" in line
    line = one_line_error(streamer("run", "synthetic://64x48@5", "--model", "tiny"))
    assert "--prompt" in line


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


def test_demo_leaves_its_outputs_and_a_summary(tmp_path: Path) -> None:
    result = streamer("demo", "--duration", "3", "--out-dir", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert "processed" in result.stdout and "objects:" in result.stdout
    for name in ("redacted.mp4", "events.msgpack", "overlay.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0, name
