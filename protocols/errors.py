"""The one exception the wire layer raises."""

from __future__ import annotations


class ProtocolError(ValueError):
    """Bytes or values that do not form a valid event (or RLE) of this protocol.

    `decode` raises this and nothing else for any input; `encode` raises it for an event whose
    values cannot be put on the wire. It subclasses ValueError so generic handlers still catch it.
    """
