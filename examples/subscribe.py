"""Subscribe to a running engine and print every object of every frame.

    python examples/subscribe.py ws://localhost:8080/v1/streams/cam1/events [--token T] [--masks]
    python examples/subscribe.py nats://localhost:4222/v1/streams/cam1/events --durable viewer

Needs only numpy, msgpack and aiohttp (or nats-py for nats://), not torch.
"""

from __future__ import annotations

import argparse
import asyncio

from protocols import (
    ConceptsChanged,
    FrameResult,
    Hello,
    ObjectEnded,
    ObjectStarted,
    StreamStatus,
    subscribe,
)


async def main(url: str, token: str | None, durable: str | None, masks: bool) -> None:
    async with subscribe(url, token=token, durable=durable) as events:
        async for event in events:
            match event:
                case Hello():
                    print(
                        f"connected: engine {event.engine_version}, protocol {event.protocol_version}"
                    )
                case ConceptsChanged():
                    names = ", ".join(f"{c.concept_id}={c.text!r}" for c in event.concepts)
                    print(f"[{event.stream_id}] concepts: {names}")
                case FrameResult():
                    for obj in event.objects:
                        x0, y0, x1, y1 = obj.box_xyxy
                        line = (
                            f"[{event.stream_id} #{event.seq}] object {obj.object_id} "
                            f"concept {obj.concept_id} score {obj.score:.2f} {obj.state.name.lower()} "
                            f"box ({x0:.0f},{y0:.0f})-({x1:.0f},{y1:.0f}) area {obj.area}"
                        )
                        if masks:  # decoded only when asked for: an (H, W) bool numpy array
                            line += f" mask {obj.mask().shape}"
                        print(line)
                case ObjectStarted():
                    print(f"[{event.stream_id} #{event.seq}] + object {event.object_id}")
                case ObjectEnded():
                    print(
                        f"[{event.stream_id} #{event.seq}] - object {event.object_id} ({event.reason.name.lower()})"
                    )
                case StreamStatus():
                    print(
                        f"[{event.stream_id}] {event.state.name.lower()} in {event.fps_in:.1f} fps, "
                        f"out {event.fps_out:.1f} fps, p50 {event.latency_ms_p50:.0f} ms"
                    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Print the objects an engine publishes.")
    parser.add_argument(
        "url", help="ws://host:port/v1/streams/<id>/events, /v1/events, or nats://..."
    )
    parser.add_argument("--token", help="bearer token (WebSocket)")
    parser.add_argument("--durable", help="JetStream durable consumer name (nats://)")
    parser.add_argument("--masks", action="store_true", help="also decode every mask")
    args = parser.parse_args()
    try:
        asyncio.run(main(args.url, args.token, args.durable, args.masks))
    except KeyboardInterrupt:
        pass
