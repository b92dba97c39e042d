"""Print events as JSON lines: `python -m protocols.dump SOURCE`.

SOURCE is an event log file (see log.py) or a subscription URL (ws://, wss://, nats://; see
subscribe.py). Field names are the Python attribute names, enums their lower-case names, a
Fraction "num/den"; masks are summarised (area and box are fields of every object already; the RLE
is replaced by its size and byte count). Exit status: 0, or 1 on a protocol or connection error.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import enum
import json
import os
import sys
from collections.abc import Iterable
from fractions import Fraction
from typing import Any

from protocols.errors import ProtocolError
from protocols.events import Event, Unknown
from protocols.log import LogReader
from protocols.rle import Rle

_URL_SCHEMES = ("ws://", "wss://", "nats://", "tls://")


def to_json(event: Event) -> dict[str, Any]:
    """A JSON-ready summary of one event: {"type": tag, <field>: value, ...}."""
    if isinstance(event, Unknown):
        return {"type": event.type, "version": event.version, "unknown": _plain(dict(event.fields))}
    return {"type": type(event).TAG, **_plain(event)}


def _plain(value: Any) -> Any:
    if isinstance(value, Rle):
        return {"size": list(value.size), "rle_bytes": len(value.counts)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.name.lower()
    if isinstance(value, Fraction):
        return f"{value.numerator}/{value.denominator}"
    if isinstance(value, bytes | bytearray | memoryview):
        return {"bytes": len(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)  # msgpack extension types in an Unknown event


def _print(events: Iterable[Event], limit: int | None) -> int:
    count = 0
    for event in events:
        if limit is not None and count >= limit:
            break
        print(json.dumps(to_json(event), separators=(",", ":")), flush=True)
        count += 1
    return count


async def _print_subscription(url: str, token: str | None, limit: int | None) -> None:
    from protocols.subscribe import subscribe  # aiohttp / nats are imported only by a URL

    count = 0
    async with subscribe(url, token=token) as events:
        async for event in events:
            print(json.dumps(to_json(event), separators=(",", ":")), flush=True)
            count += 1
            if limit is not None and count >= limit:
                return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m protocols.dump", description=__doc__)
    parser.add_argument("source", help="event log file, or ws:// / nats:// URL")
    parser.add_argument("--limit", type=int, default=None, help="stop after N events")
    parser.add_argument("--token", default=None, help="bearer token for a ws:// URL")
    parser.add_argument("--strict", action="store_true", help="fail on a truncated last log record")
    args = parser.parse_args(argv)
    try:
        if args.source.startswith(_URL_SCHEMES):
            asyncio.run(_print_subscription(args.source, args.token, args.limit))
        else:
            reader = LogReader(args.source, strict=args.strict)
            _print(reader, args.limit)
            if reader.truncated_bytes:
                print(
                    f"note: {args.source} ends in a truncated record "
                    f"({reader.truncated_bytes} bytes), not printed",
                    file=sys.stderr,
                )
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly
        sys.stdout = open(os.devnull, "w")  # so the exit-time flush cannot fail
        return 0
    except (ProtocolError, ConnectionError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
