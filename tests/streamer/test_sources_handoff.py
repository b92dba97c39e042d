"""The decoder-thread -> loop hand-off: policies, notices, close and errors."""

from __future__ import annotations

import asyncio
import threading
import time
from fractions import Fraction

import numpy as np
import pytest

from streamer.sources.handoff import Handoff, HandoffClosed, HandoffPolicy
from streamer.types import Frame


def frame(seq: int) -> Frame:
    return Frame("s", seq, seq, Fraction(1, 30), 0, np.zeros((2, 2, 3), np.uint8))


async def test_latest_keeps_the_newest_frames_and_every_notice() -> None:
    handoff: Handoff[str] = Handoff(2, HandoffPolicy.LATEST)
    handoff.put_frame(frame(0))
    handoff.put_notice("gap")
    for seq in (1, 2, 3):
        handoff.put_frame(frame(seq))
    handoff.finish()
    items = []
    with pytest.raises(StopAsyncIteration):
        while True:
            items.append(await handoff.get())
    assert [i if isinstance(i, str) else i.seq for i in items] == ["gap", 2, 3]
    assert handoff.dropped == 2


async def test_block_makes_the_producer_wait_and_close_releases_it() -> None:
    handoff: Handoff[str] = Handoff(1, HandoffPolicy.BLOCK)
    outcome: list[str] = []

    def produce() -> None:
        try:
            for seq in range(100):
                handoff.put_frame(frame(seq))
        except HandoffClosed:
            outcome.append("closed")

    thread = threading.Thread(target=produce)
    thread.start()
    got = [await handoff.get() for _ in range(5)]
    assert [f.seq for f in got] == [0, 1, 2, 3, 4]  # type: ignore[union-attr]
    handoff.close()
    thread.join(2)
    assert not thread.is_alive() and outcome == ["closed"] and handoff.dropped == 0


async def test_producer_error_arrives_after_the_frames_before_it() -> None:
    handoff: Handoff[str] = Handoff(4, HandoffPolicy.BLOCK)

    def produce() -> None:
        time.sleep(0.05)  # the loop is already waiting: exercises the wake-up path
        handoff.put_frame(frame(0))
        handoff.finish(RuntimeError("boom"))

    thread = threading.Thread(target=produce)
    thread.start()
    first = await asyncio.wait_for(handoff.get(), 2)
    assert isinstance(first, Frame) and first.seq == 0
    with pytest.raises(RuntimeError, match="boom"):
        await handoff.get()
    thread.join()


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity"):
        Handoff(0, HandoffPolicy.LATEST)
