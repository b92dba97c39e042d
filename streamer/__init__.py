"""The asyncio engine: sources -> inference worker -> publish -> sinks (see docs/engine.md).

Public surface: `Engine`, `EngineConfig`, `StreamSpec`, `RedactionSpec`, `OnMissing`.
"""

from streamer.engine import Engine, EngineConfig, StreamSpec
from streamer.sinks.redaction import OnMissing, RedactionSpec

__all__ = ["Engine", "EngineConfig", "OnMissing", "RedactionSpec", "StreamSpec"]
