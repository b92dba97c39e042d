"""FileSource on pipes: a FIFO and stdin (`-`) are read once, as they come, every frame in order."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from streamer.sources import FileConfig, FileSource, SourceError, open_source
from tests.streamer.conftest import encode_clip, level_of

pytestmark = pytest.mark.timeout(60)


def feed(fifo: Path, data: bytes) -> threading.Thread:
    """Write `data` into `fifo` from a thread (opening a FIFO waits for the other end)."""

    def write() -> None:
        with fifo.open("wb") as pipe:
            pipe.write(data)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("suffix", [".mkv", ".ts"])
async def test_a_fifo_is_read_once_every_frame_in_order(tmp_path: Path, suffix: str) -> None:
    clip = encode_clip(tmp_path / f"clip{suffix}", frames=12, fps=10, size=(32, 24))
    fifo = tmp_path / "video.fifo"
    os.mkfifo(fifo)
    writer = feed(fifo, clip.read_bytes())
    source = open_source(str(fifo))  # was: 'video file not found'
    assert isinstance(source, FileSource) and source.pipe
    levels = [int(frame.rgb[12, 16, 0]) async for frame in source]
    writer.join(5)
    assert len(levels) == 12
    assert all(abs(got - level_of(i)) <= 3 for i, got in enumerate(levels))
    assert source.info is not None and source.info.url == str(fifo) and not source.info.live


def test_dash_reads_stdin(tmp_path: Path) -> None:
    clip = encode_clip(tmp_path / "clip.mkv", frames=7, fps=10, size=(32, 24))
    count = (
        "import asyncio\n"
        "from streamer.sources import open_source\n"
        "async def main():\n"
        "    print(sum([1 async for _ in open_source('-')]))\n"
        "asyncio.run(main())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", count], input=clip.read_bytes(), capture_output=True, timeout=60,
        cwd=Path(__file__).parents[2],
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().strip() == "7"


async def test_a_pipe_cannot_loop_and_an_unread_one_is_closed(tmp_path: Path) -> None:
    fifo = tmp_path / "video.fifo"
    os.mkfifo(fifo)
    with pytest.raises(SourceError, match=r"video.fifo is a pipe: it can be read only once"):
        FileSource(fifo, config=FileConfig(loop=True))
    clip = encode_clip(tmp_path / "clip.mkv", frames=3, fps=10, size=(32, 24))
    writer = feed(fifo, clip.read_bytes())
    source = FileSource(fifo)
    await source.aclose()  # never iterated: the container opened to check the pipe is closed
    writer.join(5)
    assert source._unread is None
