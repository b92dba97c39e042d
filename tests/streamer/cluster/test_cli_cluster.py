"""`streamer serve --cluster` as a user runs it: a local Ray and nats-server started by the
command, one worker actor with the tiny model, the API on loopback; Ctrl-C stops it all."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.streamer.cluster.conftest import free_port

ROOT = Path(__file__).resolve().parents[3]


def _json(url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, json.loads(response.read() or b"null")


@pytest.mark.timeout(240)
def test_serve_cluster_places_a_stream_on_a_worker_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamer", "serve", "--cluster", "--workers", "1",
             "--model", "tiny", "--port", str(port)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while "control API at" not in log.read_text():
            assert proc.poll() is None, f"serve --cluster exited: {log.read_text()}"
            assert time.monotonic() < deadline, f"serve --cluster did not start: {log.read_text()}"
            time.sleep(0.2)
        assert "cluster of 1 workers (w0)" in log.read_text()
        base = f"http://127.0.0.1:{port}"
        body = {
            "source": "synthetic://64x48@5",
            "stream_id": "door",
            "concepts": [{"text": "ring"}],
        }
        status, stream = _json(f"{base}/v1/streams", body)
        assert status == 201 and stream["worker"] == "w0"
        while _json(f"{base}/v1/streams/door")[1]["frames_out"] < 3:
            assert time.monotonic() < deadline, "no frames processed on the worker"
            time.sleep(0.2)
        _, workers = _json(f"{base}/v1/workers")
        assert workers["workers"][0]["streams"] == ["door"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
