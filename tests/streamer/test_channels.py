"""Latest / Bounded semantics: overflow policies, drop counts, close, errors, cancellation."""

from __future__ import annotations

import asyncio

import pytest

from streamer.channels import Bounded, ChannelClosed, Disconnected, Latest, Overflow


async def test_latest_keeps_newest_and_counts_replaced() -> None:
    slot: Latest[int] = Latest()
    for i in range(5):
        slot.put(i)
    assert slot.dropped == 4
    assert await slot.get() == 4
    assert slot.get_nowait() is None


async def test_latest_get_waits_for_put() -> None:
    slot: Latest[str] = Latest()
    getter = asyncio.create_task(slot.get())
    await asyncio.sleep(0)
    assert not getter.done()
    slot.put("frame")
    assert await asyncio.wait_for(getter, 1) == "frame"


async def test_close_drains_then_ends_iteration() -> None:
    slot: Latest[int] = Latest()
    slot.put(7)
    slot.close()
    slot.close()  # idempotent
    assert [i async for i in slot] == [7]
    with pytest.raises(ChannelClosed):
        slot.put(8)


async def test_close_with_error_reaches_the_consumer_after_items() -> None:
    queue: Bounded[int] = Bounded(4, Overflow.BLOCK)
    await queue.put(1)
    queue.close(RuntimeError("decoder died"))
    seen = []
    with pytest.raises(RuntimeError, match="decoder died"):
        async for item in queue:
            seen.append(item)
    assert seen == [1]


async def test_drop_oldest_keeps_the_newest_maxsize() -> None:
    queue: Bounded[int] = Bounded(3, Overflow.DROP_OLDEST)
    for i in range(10):
        assert queue.put_nowait(i)
    queue.close()
    assert [i async for i in queue] == [7, 8, 9]
    assert queue.dropped == 7


async def test_block_waits_for_room_and_loses_nothing() -> None:
    queue: Bounded[int] = Bounded(2, Overflow.BLOCK)

    async def produce() -> None:
        for i in range(20):
            await queue.put(i)
        queue.close()

    async def consume() -> list[int]:
        out = []
        async for item in queue:
            out.append(item)
            await asyncio.sleep(0)
        return out

    async with asyncio.TaskGroup() as tg:
        tg.create_task(produce())
        consumer = tg.create_task(consume())
    assert consumer.result() == list(range(20))
    assert queue.dropped == 0


async def test_blocked_producer_is_woken_by_close() -> None:
    queue: Bounded[int] = Bounded(1, Overflow.BLOCK)
    await queue.put(0)
    producer = asyncio.create_task(queue.put(1))
    for _ in range(10):  # the producer runs up to its wait (loop turns, not wall time)
        await asyncio.sleep(0)
    assert not producer.done()
    queue.close()
    with pytest.raises(ChannelClosed):
        await asyncio.wait_for(producer, 1)


async def test_disconnect_policy_closes_with_reason() -> None:
    queue: Bounded[int] = Bounded(2, Overflow.DISCONNECT)
    assert queue.put_nowait(0) and queue.put_nowait(1)
    assert not queue.put_nowait(2)
    assert queue.disconnected and queue.closed
    with pytest.raises(Disconnected):
        await queue.get()


async def test_cancelled_getter_leaves_channel_usable() -> None:
    queue: Bounded[int] = Bounded(2, Overflow.DROP_OLDEST)
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    getter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await getter
    queue.put_nowait(5)
    assert await asyncio.wait_for(queue.get(), 1) == 5


def test_bounded_rejects_zero_size() -> None:
    with pytest.raises(ValueError, match="maxsize"):
        Bounded(0, Overflow.BLOCK)
