"""The OpenAPI document is valid (openapi-spec-validator), and the real server keeps it
(schemathesis, fuzz and stateful, bounded): no 5xx, no undocumented status, responses conform,
schema-valid requests accepted and schema-violating ones refused.

The server is the real aiohttp app over a real Engine on 127.0.0.1, on its own loop in a thread;
the tracker is scripted (FakeTracker, open-vocabulary), sources are real synthetic:// ones (anything else is
refused with 422 after the real text check), and redaction writes no files (the fuzzer would
name paths anywhere).
"""

from __future__ import annotations

import asyncio
import threading
import zlib
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import hypothesis
import pytest
import schemathesis
from aiohttp import web
from openapi_spec_validator import validate as validate_spec
from schemathesis import GenerationMode

from model.types import Concept
from streamer.api import ApiConfig, create_app
from streamer.engine import Engine, EngineConfig, StreamSpec
from streamer.openapi import document
from streamer.sinks.redaction import RedactionSink
from streamer.sources import open_source, resolve_source
from streamer.sources.base import Source, SourceError
from tests.fakes import FakeTracker

pytestmark = pytest.mark.timeout(300)

SOURCE = "synthetic://32x24@5"
ANSWERED: list[tuple[str, int]] = []  # (operation, status) of every call the runs made


class AnyWordTracker(FakeTracker):
    """The scripted tracker with an open vocabulary, as SAM 3 has: a word it does not know is
    looked for as red (the fake's own vocabulary is colours)."""

    def add_concept(self, concept: Concept) -> int:
        if concept.text is not None and concept.text not in ("red", "green", "blue", "white"):
            concept = replace(concept, text="red")
        return super().add_concept(concept)


def synthetic_only(spec: StreamSpec, stream_id: str) -> Source:
    resolve_source(spec.source)
    if not spec.source.startswith("synthetic://"):
        raise SourceError(f"cannot open {spec.source}: this test engine opens synthetic:// only")
    return open_source(spec.source, stream_id=stream_id)


class ServerThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.stop: asyncio.Event | None = None
        self.port = 0
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._main(),))

    async def _main(self) -> None:
        self.stop = asyncio.Event()
        engine = Engine(
            AnyWordTracker, config=EngineConfig(status_interval_s=0.5, max_streams=4),
            source_factory=synthetic_only,
            redaction_factory=lambda spec, concepts: RedactionSink(
                replace(spec, outputs=()), concepts, []
            ),
        )  # fmt: skip
        async with engine:
            runner = web.AppRunner(create_app(engine, ApiConfig(webrtc=None)))
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.port = runner.addresses[0][1]
            self.ready.set()
            await self.stop.wait()
            await runner.cleanup()


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    thread = ServerThread()
    thread.thread.start()
    assert thread.ready.wait(60)
    yield thread
    assert thread.stop is not None
    thread.loop.call_soon_threadsafe(thread.stop.set)
    thread.thread.join(60)


def test_the_document_is_valid_openapi_3_1() -> None:
    doc = document("test")
    validate_spec(doc)  # raises with the first problem
    for path, item in doc["paths"].items():
        declared = {p["name"] for p in item.get("parameters", [])}
        wanted = {part[1:-1] for part in path.split("/") if part.startswith("{")}
        assert declared == wanted, path


def _ordered(box: Any) -> Any:
    """A generated box with x1 > x0 and y1 > y0: the one rule JSON Schema cannot say."""
    if not (isinstance(box, list) and len(box) == 4):
        return box
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in box):
        return box
    x0, x1 = sorted((box[0], box[2]))
    y0, y1 = sorted((box[1], box[3]))
    if x1 == x0:
        x0, x1 = (x0 - 1, x0) if x0 > 0 else (x0, x0 + 1)
    if y1 == y0:
        y0, y1 = (y0 - 1, y0) if y0 > 0 else (y0, y0 + 1)
    return [x0, y0, x1, y1]


def _steer(value: Any) -> Any:
    if isinstance(value, dict):
        out = {k: _ordered(_steer(v)) if k == "box" else _steer(v) for k, v in value.items()}
        if isinstance(out.get("source"), str) and zlib.crc32(out["source"].encode()) % 2 == 0:
            out["source"] = SOURCE  # half the streams open, so the later calls have one to use
        return out
    if isinstance(value, list):
        return [_steer(v) for v in value]
    return value


@pytest.fixture(scope="module")
def api_schema(server: ServerThread) -> Any:
    schema = schemathesis.openapi.from_url(f"http://127.0.0.1:{server.port}/v1/openapi.json")
    schema.config.update(base_url=f"http://127.0.0.1:{server.port}")

    @schema.hook
    def map_body(context: Any, body: Any) -> Any:  # positive and negative cases alike
        return _steer(body)

    @schema.hook
    def after_call(context: Any, case: Any, response: Any) -> None:
        ANSWERED.append((case.operation.label, response.status_code))

    return schema.exclude(path_regex=r"/events$")  # WebSocket routes: not callable over HTTP


# 422: a well-formed source the test engine cannot open (documented); the rest are the defaults.
ACCEPTED = ["2xx", "401", "404", "409", "422"]


def _bounded(max_examples: int, **extra: Any) -> hypothesis.settings:
    return hypothesis.settings(
        max_examples=max_examples, deadline=None, derandomize=True, database=None,
        suppress_health_check=list(hypothesis.HealthCheck), **extra,
    )  # fmt: skip


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_keeps_its_document(api_schema: Any, mode: GenerationMode) -> None:
    api_schema.config.checks.positive_data_acceptance.expected_statuses = ACCEPTED

    @_bounded(120)
    @hypothesis.given(case=api_schema.as_strategy(mode))
    def fuzz(case: Any) -> None:
        case.call_and_validate(timeout=30)

    fuzz()


def test_stateful_sequences_keep_the_document(api_schema: Any) -> None:
    api_schema.config.checks.positive_data_acceptance.expected_statuses = ACCEPTED
    machine = api_schema.as_state_machine()
    ANSWERED.clear()
    machine.run(settings=_bounded(10, stateful_step_count=6))
    done = {label for label, status in ANSWERED if status < 300}
    # not vacuous: streams were made and the calls that follow a new one (links) succeeded
    assert "POST /v1/streams" in done and len(done) >= 4, sorted(set(ANSWERED))
