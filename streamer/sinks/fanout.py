"""Fan-out of encoded events to subscribers, each behind its own bounded queue.

`Hub.publish` never waits: it appends the envelope to every matching subscription's queue and
returns. A subscriber that cannot keep up only hurts itself: under DROP_OLDEST it loses its own
oldest events (counted in `Subscription.dropped`, reported back to it in StreamStatus), under
DISCONNECT its subscription is closed. The pipeline and the other subscribers never notice.

Events are encoded once, by the publish stage, and every subscriber shares the same bytes.
In-process consumers iterate a `Subscription` directly and read `envelope.event`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from streamer.channels import Bounded, Overflow


@dataclass(frozen=True, slots=True)
class Envelope:
    """One published event: the typed value and its encoded bytes (one WebSocket message)."""

    stream_id: str | None  # None for engine-wide events (Hello, engine errors)
    event: Any  # a protocols event
    data: bytes


class Subscription:
    """One subscriber's view: an async iterator of envelopes through a private bounded queue."""

    def __init__(self, hub: Hub, stream_id: str | None, maxsize: int, overflow: Overflow):
        if overflow is Overflow.BLOCK:
            raise ValueError(
                "a subscriber may not block the pipeline: use drop_oldest or disconnect"
            )
        self.stream_id = stream_id  # None: every stream
        self.queue: Bounded[Envelope] = Bounded(maxsize, overflow)
        self._hub = hub

    @property
    def dropped(self) -> int:
        """Events this subscriber lost to its own overflow policy."""
        return self.queue.dropped

    @property
    def disconnected(self) -> bool:
        return self.queue.disconnected

    def wants(self, stream_id: str | None) -> bool:
        return self.stream_id is None or stream_id is None or stream_id == self.stream_id

    def __aiter__(self) -> AsyncIterator[Envelope]:
        return aiter(self.queue)

    async def get(self) -> Envelope:
        return await self.queue.get()

    def close(self) -> None:
        """Leave the hub; iteration ends after the events already queued. Idempotent."""
        self._hub._remove(self)
        self.queue.close()


class Hub:
    """The set of live subscriptions; `publish` is synchronous and never blocks."""

    def __init__(self) -> None:
        self._subscriptions: list[Subscription] = []
        self.published = 0

    def subscribe(
        self,
        stream_id: str | None = None,
        *,
        maxsize: int = 256,
        overflow: Overflow = Overflow.DROP_OLDEST,
    ) -> Subscription:
        subscription = Subscription(self, stream_id, maxsize, overflow)
        self._subscriptions.append(subscription)
        return subscription

    @property
    def subscribers(self) -> int:
        return len(self._subscriptions)

    def publish(self, envelope: Envelope) -> None:
        self.published += 1
        for subscription in list(self._subscriptions):
            if subscription.wants(envelope.stream_id):
                self._offer(subscription, envelope)

    def publish_each(self, stream_id: str, build: Callable[[Subscription], Envelope]) -> None:
        """Publish an envelope built per subscriber (StreamStatus carries that subscriber's drops)."""
        self.published += 1
        for subscription in list(self._subscriptions):
            if subscription.wants(stream_id):
                self._offer(subscription, build(subscription))

    def close(self) -> None:
        """End every subscription (engine shutdown); queued events stay readable."""
        for subscription in list(self._subscriptions):
            subscription.close()

    def _offer(self, subscription: Subscription, envelope: Envelope) -> None:
        subscription.queue.put_nowait(envelope)
        if subscription.queue.closed:  # DISCONNECT fired
            self._remove(subscription)

    def _remove(self, subscription: Subscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)
