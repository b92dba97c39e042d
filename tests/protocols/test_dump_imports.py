"""`python -m protocols.dump` and the dependency rule: protocols imports without torch (and
without aiohttp / nats-py until a URL needs them)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from protocols.framing import frame
from protocols.log import LogWriter
from tests.protocols.golden_events import EXPECTED

ROOT = Path(__file__).resolve().parents[2]

# Makes the named modules unimportable (an import of them raises ImportError), then runs `code`.
BLOCK = "import sys\nfor name in {blocked!r}: sys.modules[name] = None\n"


def _run(code: str, blocked: tuple[str, ...], *args: str) -> subprocess.CompletedProcess[str]:
    script = BLOCK.format(blocked=blocked) + code
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_protocols_imports_without_torch_aiohttp_or_nats() -> None:
    code = (
        "import protocols, protocols.subscribe, protocols.dump, protocols.log\n"
        "from protocols import decode, encode, rle\n"
        "leaked = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'model', 'streamer', 'aiohttp', 'nats') and sys.modules[m] is not None)\n"
        "assert not leaked, leaked\n"
        "print('ok')\n"
    )
    result = _run(code, ("torch", "aiohttp", "nats"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_the_block_really_blocks() -> None:
    result = _run("import torch\n", ("torch",))
    assert result.returncode != 0 and "import of torch halted" in result.stderr


def _dump(*args: str) -> subprocess.CompletedProcess[str]:
    code = "import runpy\nsys.argv = ['dump', *sys.argv[1:]]\nrunpy.run_module('protocols.dump', run_name='__main__')\n"
    return _run(code, ("torch", "aiohttp", "nats"), *args)


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    path = tmp_path / "events.msgpack"
    with LogWriter(path) as log:
        for event in EXPECTED.values():
            log.write(event)
    return path


def test_dump_prints_one_json_line_per_event(log_file: Path) -> None:
    result = _dump(str(log_file))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["type"] for line in lines] == [
        getattr(e, "TAG", "zone_entered") for e in EXPECTED.values()
    ]
    frame_line = next(line for line in lines if line["type"] == "frame_result")
    first = frame_line["objects"][0]
    assert first["area"] == 10 and first["box_xyxy"] == [0.0, 0.0, 7.0, 6.0]
    assert first["rle"] == {"size": [6, 8], "rle_bytes": 8}  # summarised, not dumped
    assert first["state"] == "confirmed" and frame_line["objects"][1]["concept_id"] is None
    assert frame_line["time_base"] == "1/90000"
    status = next(line for line in lines if line["type"] == "stream_status")
    assert status["state"] == "live" and status["drops"]["superseded"] == 15
    unknown = lines[-1]
    assert unknown == {"type": "zone_entered", "version": 2, "unknown": {"s": "cam1", "zone": 3}}


def test_dump_limit_and_truncated_tail(log_file: Path) -> None:
    with open(log_file, "ab") as f:
        f.write(frame(b"\x81\xa1t\xa5hello")[:6])
    result = _dump(str(log_file), "--limit", "2")
    assert result.returncode == 0 and len(result.stdout.splitlines()) == 2
    result = _dump(str(log_file))
    assert result.returncode == 0
    assert len(result.stdout.splitlines()) == len(EXPECTED)
    assert "truncated record (6 bytes)" in result.stderr
    strict = _dump(str(log_file), "--strict")
    assert (
        strict.returncode == 1 and "error:" in strict.stderr and "truncated last" in strict.stderr
    )


def test_dump_reports_errors_in_one_line(tmp_path: Path) -> None:
    missing = _dump(str(tmp_path / "nope.msgpack"))
    assert missing.returncode == 1 and missing.stderr.startswith("error:")
    bad = tmp_path / "bad.msgpack"
    bad.write_bytes(frame(b"\xc1"))
    result = _dump(str(bad))
    assert result.returncode == 1 and "record 0: not a msgpack message" in result.stderr
    assert "Traceback" not in result.stderr
