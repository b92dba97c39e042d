"""The HTTP control API (aiohttp), documented at /v1/openapi.json.

Binds 127.0.0.1 unless told otherwise. With a token every route except /v1/health needs
`Authorization: Bearer <token>` (WebSockets may pass `?token=` instead, since browsers cannot set
headers there). Bodies are JSON, at most `max_body_bytes`, validated against the schemas in
streamer/openapi.py (what JSON Schema cannot say, a box's order, is checked here); every error is
JSON `{"error": "...", "status": N}` (the document's Error schema) with a 4xx code that says what
was wrong, and its sentence names the culprit. Everything is checked before any engine work. A request only ever touches its own stream: a bad one is rejected before
anything changes, and a failure inside one stream's edit fails that request, not the stream.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from model.types import BoxPrompt, Concept, ConceptThresholds, PointPrompt
from streamer.blur import RedactConfig, RedactStyle
from streamer.engine import Engine, StreamNotFound, StreamSpec
from streamer.host import HostFull, Placed, StreamHost, StreamView
from streamer.limits import LimitError, check_concept, output_path
from streamer.model_info import ModelInfo
from streamer.openapi import CONCEPT, OBJECT_PROMPT, STREAM, Invalid, Schema, document, validate
from streamer.outputs import is_push_target
from streamer.publish import ENGINE_VERSION
from streamer.sinks.redaction import OnMissing, RedactionSpec
from streamer.sinks.websocket import serve_events
from streamer.sources import resolve_source
from streamer.sources.base import SourceError
from streamer.webrtc import WebRtcConfig, add_webrtc, is_public

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ENGINE: web.AppKey[StreamHost] = web.AppKey("engine")  # the Engine, or a cluster (docs/cluster.md)
MODEL: web.AppKey[ModelInfo] = web.AppKey("model", ModelInfo)
MAX_BODY: web.AppKey[int] = web.AppKey("max_body_bytes", int)
OUT_DIR: web.AppKey[Path] = web.AppKey("out_dir", Path)


@dataclass(frozen=True)
class ApiConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = field(default=None, repr=False)  # a secret: never in a printed config
    max_body_bytes: int = 64 * 1024
    webrtc: WebRtcConfig | None = WebRtcConfig()  # WHIP/WHEP and the page at /; None: off
    model: ModelInfo = ModelInfo()  # GET /v1/model: the page's default source and prompt
    # video files that API clients name are written only inside this folder (relative names are
    # taken inside it); None: the working directory when the app is made
    out_dir: Path | None = None


def create_app(engine: StreamHost, config: ApiConfig = ApiConfig()) -> web.Application:
    app = web.Application(
        client_max_size=config.max_body_bytes,
        middlewares=[_errors_as_json, _bearer(config.token)],
    )
    app[ENGINE] = engine
    app[MODEL] = config.model
    app[MAX_BODY] = config.max_body_bytes
    app[OUT_DIR] = (config.out_dir or Path.cwd()).resolve()
    r = app.router
    r.add_get("/v1/health", health)
    r.add_get("/v1/openapi.json", openapi)
    r.add_get("/metrics", metrics)
    r.add_get("/v1/model", model_info)
    r.add_get("/v1/streams", list_streams)
    r.add_post("/v1/streams", add_stream)
    r.add_get("/v1/streams/{stream_id}", get_stream)
    r.add_delete("/v1/streams/{stream_id}", remove_stream)
    r.add_get("/v1/streams/{stream_id}/concepts", list_concepts)
    r.add_post("/v1/streams/{stream_id}/concepts", add_concept)
    r.add_delete("/v1/streams/{stream_id}/concepts/{concept_id}", remove_concept)
    r.add_get("/v1/streams/{stream_id}/objects", list_objects)
    r.add_post("/v1/streams/{stream_id}/objects", add_object)
    r.add_patch("/v1/streams/{stream_id}/objects/{object_id}", refine_object)
    r.add_delete("/v1/streams/{stream_id}/objects/{object_id}", remove_object)
    r.add_get("/v1/streams/{stream_id}/events", stream_events)
    r.add_get("/v1/events", all_events)
    if config.webrtc is not None and isinstance(engine, Engine):  # frames live in this process
        add_webrtc(app, engine, config.webrtc, bind_host=config.host)
    return app


# --- routes --------------------------------------------------------------------------------


async def health(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    states = [s.state.value for s in engine.sessions.values()]
    return web.json_response(
        {"status": "ok", "version": ENGINE_VERSION, "device": engine.config.device,
         "streams": len(states), "live": states.count("live"), "subscribers": engine.hub.subscribers}
    )  # fmt: skip


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(document(ENGINE_VERSION))


async def model_info(request: web.Request) -> web.Response:
    return web.json_response(request.app[MODEL].as_json())


async def metrics(request: web.Request) -> web.Response:
    body = request.app[ENGINE].metrics.render()
    return web.Response(body=body, content_type="text/plain", charset="utf-8")


async def list_streams(request: web.Request) -> web.Response:
    sessions = request.app[ENGINE].sessions.values()
    return web.json_response({"streams": [_stream_json(s) for s in sessions]})


async def add_stream(request: web.Request) -> web.Response:
    body = await _body(request, STREAM)
    spec = _stream_spec(body, request.app[OUT_DIR])
    try:
        resolve_source(spec.source)  # what it names, from its text alone: before any engine work
        session = await request.app[ENGINE].add_stream(spec)
    except SourceError as error:
        raise _json_error(web.HTTPUnprocessableEntity, str(error)) from None
    except HostFull as error:  # a cluster without room: the message names the limit
        raise _json_error(web.HTTPServiceUnavailable, str(error)) from None
    except ValueError as error:
        raise _json_error(_add_stream_refusal(str(error)), str(error)) from None
    return web.json_response(_stream_json(session), status=201)


async def get_stream(request: web.Request) -> web.Response:
    return web.json_response(_stream_json(_session(request)))


async def remove_stream(request: web.Request) -> web.Response:
    await request.app[ENGINE].remove_stream(_session(request).stream_id)
    return web.Response(status=204)


async def list_concepts(request: web.Request) -> web.Response:
    session = _session(request)
    return web.json_response(
        {"concepts": [_concept_json(i, c) for i, c in session.concepts.items()]}
    )


async def add_concept(request: web.Request) -> web.Response:
    session = _session(request)
    concept = _concept(await _body(request, CONCEPT), "body")
    concept_id = await _edit(session.add_concept(concept))
    concept = session.concepts.get(concept_id, concept)  # with the engine's defaults filled in
    return web.json_response(_concept_json(concept_id, concept), status=201)


async def remove_concept(request: web.Request) -> web.Response:
    session = _session(request)
    await _edit(session.remove_concept(_int_param(request, "concept_id")))
    return web.Response(status=204)


async def list_objects(request: web.Request) -> web.Response:
    session = _session(request)
    objects = [
        {"object_id": o.object_id, "concept_id": o.concept_id, "score": o.score,
         "box_xyxy": list(o.box_xyxy), "area": o.area, "state": o.state.value,
         "first_seq": o.first_seq, "last_seq": o.last_seq}
        for o in session.objects.values()
    ]  # fmt: skip
    return web.json_response({"objects": objects})


async def add_object(request: web.Request) -> web.Response:
    session = _session(request)
    box, points = _object_prompt(await _body(request, OBJECT_PROMPT))
    object_id = await _edit(session.add_object(box=box, points=points))
    return web.json_response({"object_id": object_id}, status=201)


async def refine_object(request: web.Request) -> web.Response:
    session = _session(request)
    object_id = _int_param(request, "object_id")
    box, points = _object_prompt(await _body(request, OBJECT_PROMPT))
    await _edit(session.refine_object(object_id, box=box, points=points))
    return web.json_response({"object_id": object_id})


async def remove_object(request: web.Request) -> web.Response:
    session = _session(request)
    await _edit(session.remove_object(_int_param(request, "object_id")))
    return web.Response(status=204)


async def stream_events(request: web.Request) -> web.StreamResponse:
    session = _session(request)
    return await serve_events(request, request.app[ENGINE].hub, session.stream_id)


async def all_events(request: web.Request) -> web.StreamResponse:
    return await serve_events(request, request.app[ENGINE].hub, None)


# --- request parsing -----------------------------------------------------------------------


async def _body(request: web.Request, schema: Schema) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise _json_error(
            web.HTTPUnsupportedMediaType,
            f"body is {request.content_type}: send JSON with Content-Type: application/json",
        )
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[MAX_BODY]
        raise _json_error(
            web.HTTPRequestEntityTooLarge, f"body is larger than {limit} bytes: send less"
        ) from None
    try:
        body = json.loads(raw, parse_constant=_no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError) as error:
        raise _json_error(web.HTTPBadRequest, f"body is not valid JSON: {error}") from None
    except RecursionError:
        raise _json_error(web.HTTPBadRequest, "body is nested too deeply to be a request") from None
    try:
        return validate(body, schema)  # type: ignore[no-any-return]
    except Invalid as error:
        raise _json_error(web.HTTPBadRequest, str(error)) from None


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")  # Python's json accepts NaN and Infinity


def _add_stream_refusal(message: str) -> type[web.HTTPException]:
    """The status for the engine's refusal of a schema-valid stream: the engine's state (409) or
    the world (an output that cannot be written, 422)."""
    if "already exists" in message or "streams per engine" in message:
        return web.HTTPConflict
    if message.startswith("cannot write") or "rtsp://" in message:
        return web.HTTPUnprocessableEntity
    return web.HTTPBadRequest


def _stream_spec(body: dict[str, Any], out_dir: Path) -> StreamSpec:
    concepts = tuple(
        _concept(c, f"body.concepts[{i}]") for i, c in enumerate(body.get("concepts", []))
    )
    redaction = None
    if "redaction" in body:
        r = body["redaction"]
        redaction = RedactionSpec(
            concepts=tuple(r["concepts"]),
            draw=RedactConfig(
                style=RedactStyle(r.get("style", "blur")), margin_px=r.get("margin_px", 8)
            ),
            outputs=_outputs(r.get("outputs", ()), out_dir),
            budget_s=r.get("budget_ms", 1000) / 1000,
            on_missing=OnMissing(r.get("on_missing", "blur")),
        )
    return StreamSpec(
        source=body["source"], stream_id=body.get("stream_id"), concepts=concepts,
        live=body.get("live"), realtime=body.get("realtime", True), loop=body.get("loop", False),
        latency_budget_s=body.get("latency_budget_ms", 500) / 1000, redaction=redaction,
        max_attempts=body.get("max_attempts"),
    )  # fmt: skip


def _outputs(targets: list[str], out_dir: Path) -> tuple[str, ...]:
    """Video files only inside `out_dir` (as absolute paths); RTSP push URLs as they are."""
    try:
        return tuple(
            t if is_push_target(t) else str(output_path(t, out_dir, f"body.redaction.outputs[{i}]"))
            for i, t in enumerate(targets)
        )
    except LimitError as error:  # well-formed, but this server will not write there
        raise _json_error(web.HTTPUnprocessableEntity, str(error)) from None


def _concept(body: dict[str, Any], path: str) -> Concept:
    thresholds = body.get("thresholds", {})
    try:
        concept = Concept(
            text=body.get("text"),
            exemplars=tuple(
                BoxPrompt(_box(e["box"], path), e.get("positive", True))
                for e in body.get("exemplars", [])
            ),
            thresholds=ConceptThresholds(thresholds.get("detection"), thresholds.get("new_object")),
            max_objects=body.get("max_objects"),
        )
        check_concept(concept, path)  # thresholds and max_objects within streamer/limits.py
    except LimitError as error:
        raise _json_error(web.HTTPBadRequest, str(error)) from None
    except ValueError as error:
        raise _json_error(web.HTTPBadRequest, f"{path}: {error}") from None
    return concept


def _object_prompt(body: dict[str, Any]) -> tuple[BoxPrompt | None, tuple[PointPrompt, ...]]:
    box = BoxPrompt(_box(body["box"], "body.box")) if "box" in body else None
    points = tuple(
        PointPrompt(tuple(p["xy"]), p.get("positive", True)) for p in body.get("points", [])
    )
    if box is None and not points:
        raise _json_error(web.HTTPBadRequest, "body: give a box, points, or both")
    return box, points


def _box(values: list[float], path: str) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = (float(v) for v in values)
    if x1 <= x0 or y1 <= y0:
        raise _json_error(web.HTTPBadRequest, f"{path}: box must have x1 > x0 and y1 > y0")
    return x0, y0, x1, y1


_ID = re.compile(r"[0-9]{1,18}")  # ASCII digits only: str.isdigit() also takes "²"


def _int_param(request: web.Request, name: str) -> int:
    raw = request.match_info[name]
    if not _ID.fullmatch(raw):
        raise _json_error(web.HTTPBadRequest, f"{name} must be a non-negative integer, got {raw!r}")
    return int(raw)


def _session(request: web.Request) -> StreamView:
    return request.app[ENGINE].get(request.match_info["stream_id"])


async def _edit(edit: Awaitable[Any]) -> Any:
    """Run one stream's prompt edit; a tracker's refusal becomes a 4xx for this request only."""
    try:
        return await edit
    except KeyError as error:
        raise _json_error(
            web.HTTPNotFound, str(error.args[0]) if error.args else "not found"
        ) from None
    except ValueError as error:  # well-formed, but this stream's tracker cannot take it
        raise _json_error(web.HTTPUnprocessableEntity, str(error)) from None


# --- responses and middleware --------------------------------------------------------------


def _stream_json(session: StreamView) -> dict[str, Any]:
    stats = session.stats
    info = session.source.info
    return {
        "stream_id": session.stream_id,
        "state": session.state.value,
        "source": info.url if info is not None else None,
        "error": str(session.error) if session.error is not None else None,
        "frames_in": stats.frames_in, "frames_out": stats.frames_out,
        "fps_in": round(stats.fps_in.per_second(), 2), "fps_out": round(stats.fps_out.per_second(), 2),
        "latency_ms_p50": round(stats.latency_ms.percentile(50), 2),
        "latency_ms_p99": round(stats.latency_ms.percentile(99), 2),
        "drops": dict(stats.drops), "objects": len(session.objects),
        "concepts": [_concept_json(i, c) for i, c in session.concepts.items()],
        "worker": session.worker if isinstance(session, Placed) else None,  # cluster: where it runs
    }  # fmt: skip


def _concept_json(concept_id: int, concept: Concept) -> dict[str, Any]:
    return {
        "concept_id": concept_id, "text": concept.text,
        "exemplars": [{"box": list(b.xyxy), "positive": b.positive} for b in concept.exemplars],
        "thresholds": {"detection": concept.thresholds.detection, "new_object": concept.thresholds.new_object},
        "max_objects": concept.max_objects,
    }  # fmt: skip


class ApiError(Exception):
    """A request the API refuses: answered as JSON `{"error": message, "status": status}`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _json_error(kind: type[web.HTTPException], message: str) -> ApiError:
    return ApiError(kind.status_code, message)


def _error_response(status: int, message: str, headers: Any = None) -> web.Response:
    response = web.json_response({"error": message, "status": status}, status=status)
    for name in ("Allow", "WWW-Authenticate"):  # keep what a client needs to retry correctly
        if headers is not None and name in headers:
            response.headers[name] = headers[name]
    return response


@web.middleware
async def _errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as error:
        return _error_response(error.status, error.message)
    except StreamNotFound as error:
        return _error_response(404, str(error))
    except web.HTTPException as error:
        if error.status < 400:
            raise
        return _error_response(error.status, error.text or error.reason, error.headers)
    except Exception:
        log.exception("request %s %s failed", request.method, request.path)
        return _error_response(500, "internal error (see the engine log)")


def _bearer(token: str | None) -> Middleware:
    expected = f"Bearer {token}".encode() if token else None

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if expected is None or request.path == "/v1/health" or is_public(request.path):
            return await handler(request)
        given = request.headers.get("Authorization", "")
        if not given and "token" in request.query:
            given = f"Bearer {request.query['token']}"
        if not hmac.compare_digest(given.encode(), expected):
            raise _json_error(web.HTTPUnauthorized, "missing or wrong bearer token")
        return await handler(request)

    return check
