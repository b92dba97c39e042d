"""Nothing of a WebRTC peer stays behind: vanished publishers are closed within the ICE consent
timeout, and many connect/disconnect cycles leave no tasks, threads or memory."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import aioice.ice
import pytest

from streamer.engine import Engine, EngineConfig
from streamer.webrtc import GATEWAY
from tests.fakes import FakeTracker, eventually, running_api
from tests.streamer.webrtc_peers import publish

ROOT = Path(__file__).resolve().parents[2]
# aioice checks consent every CONSENT_INTERVAL * (0.8..1.2) s and gives up after CONSENT_FAILURES
CONSENT_TIMEOUT_S = aioice.ice.CONSENT_FAILURES * aioice.ice.CONSENT_INTERVAL * 1.2


# asyncio's default executor (frame conversion, aiortc's codecs) grows lazily to this many threads
DEFAULT_POOL = min(32, (os.cpu_count() or 1) + 4)


def pool_threads() -> int:
    return sum(t.name.startswith("asyncio_") for t in threading.enumerate())


def own_threads() -> int:
    """Threads other than the default executor's bounded pool."""
    return threading.active_count() - pool_threads()


def engine() -> Engine:
    return Engine(FakeTracker, config=EngineConfig(status_interval_s=0.1))


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_publisher_that_vanishes_without_delete_is_closed_within_the_consent_timeout() -> (
    None
):
    async with running_api(engine()) as (eng, client):
        base = str(client.make_url("")).rstrip("/")
        gateway = client.app[GATEWAY]
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.streamer.webrtc_peers", base, "cam",
            cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            assert process.stdout is not None
            assert b"publishing" in await asyncio.wait_for(process.stdout.readline(), 30)
            await eventually(lambda: "cam" in eng.sessions and eng.get("cam").stats.frames_in > 5)
            session = eng.get("cam")
            os.kill(process.pid, signal.SIGKILL)  # no DELETE, no DTLS close: the peer just vanishes
            vanished = time.monotonic()
        finally:
            if process.returncode is None:
                process.kill()
            await process.wait()
        await eventually(lambda: session.state.value == "gap", within_s=5)  # stall_timeout_s = 2
        await eventually(lambda: len(gateway.peers) == 0, within_s=CONSENT_TIMEOUT_S + 5)
        closed_after = time.monotonic() - vanished
        # the closed peer ends the source's track; the session then waits for the publisher to return
        await eventually(lambda: session.state.value == "reconnecting", within_s=3)
        assert closed_after <= CONSENT_TIMEOUT_S + 5, closed_after
        print(f"vanished publisher closed after {closed_after:.1f} s")


@pytest.mark.timeout(180)
async def test_twenty_connect_disconnect_cycles_leave_nothing_behind() -> None:
    async with running_api(engine()) as (eng, client):
        base = str(client.make_url("")).rstrip("/")
        gateway = client.app[GATEWAY]

        async def cycle() -> None:
            publisher = await publish(client.session, base, "cam", query="?concept=red")
            await eventually(lambda: eng.get("cam").stats.frames_in >= 3)
            assert await publisher.delete(client.session, base) == 200
            await eventually(lambda: eng.get("cam").done and len(gateway.peers) == 0)

        for _ in range(3):  # warm-up: thread pools, codecs, caches
            await cycle()
        await asyncio.sleep(0.5)
        gc.collect()
        tasks, threads = len(asyncio.all_tasks()), own_threads()
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        for _ in range(20):
            await cycle()
        await asyncio.sleep(0.5)
        gc.collect()
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
        assert len(asyncio.all_tasks()) <= tasks, [t.get_name() for t in asyncio.all_tasks()]
        assert own_threads() <= threads, [t.name for t in threading.enumerate()]
        assert pool_threads() <= DEFAULT_POOL, [t.name for t in threading.enumerate()]
        assert grown < 2 * 1024 * 1024, f"{grown / 1e6:.1f} MB more allocated after 20 cycles"
        print(f"20 cycles: tasks {tasks}, threads {threads}, allocations grew {grown / 1e3:.0f} kB")
