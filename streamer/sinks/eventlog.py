"""The `.msgpack` event log: every event the hub publishes, appended to one file.

The log is an ordinary subscriber with a deep DROP_OLDEST queue, so a slow disk can cost the log
its oldest events (counted, and reported in StreamStatus like any subscriber) but never slows the
pipeline. Writes go through the protocols log writer (length-prefixed frames, readable with
`python -m protocols.dump FILE`) in a thread, a batch of queued events at a time.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from protocols.log import LogWriter
from streamer.channels import ChannelClosed
from streamer.publish import hello
from streamer.sinks.fanout import Subscription

MAX_BATCH = 256


async def write_event_log(subscription: Subscription, path: Path) -> None:
    """Append events from `subscription` to `path` until the hub closes it; then close the file."""
    writer = await asyncio.to_thread(LogWriter, path, flush_each=False)
    try:
        await asyncio.to_thread(writer.write_encoded, hello().data)
        while True:
            try:
                batch = [(await subscription.get()).data]
            except ChannelClosed:
                return
            while len(batch) < MAX_BATCH and (more := _next_nowait(subscription)) is not None:
                batch.append(more)
            await asyncio.to_thread(_write_all, writer, batch)
    finally:
        subscription.close()
        await asyncio.to_thread(writer.close)


def _next_nowait(subscription: Subscription) -> bytes | None:
    try:
        envelope = subscription.queue.get_nowait()
    except ChannelClosed:
        return None
    return None if envelope is None else envelope.data


def _write_all(writer: LogWriter, batch: list[bytes]) -> None:
    for data in batch:
        writer.write_encoded(data)
    writer.flush()  # one flush per batch: a crash loses at most the batch in flight
