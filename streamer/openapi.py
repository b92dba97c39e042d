"""The HTTP API's request and response schemas and its OpenAPI 3.1 document, from one source.

Request bodies are described once, as JSON-Schema dicts; streamer/schema.py checks bodies
against them (`validate`), and the same dicts go into the document served at /v1/openapi.json,
so the documentation cannot drift from the checks. What JSON Schema cannot say (a box's x1 > x0)
is said in the field's description and checked by streamer/api.py with the same kind of
sentence. Bounds here are the engine's limits: thresholds below 0.05 would let one concept grow
without end (issue 31), so the schema refuses them.
"""

from __future__ import annotations

from streamer.schema import Invalid, Schema, validate

# --- request schemas -----------------------------------------------------------------------

COORDINATE_LIMIT = 1e6
_NUM = {"type": "number", "minimum": -COORDINATE_LIMIT, "maximum": COORDINATE_LIMIT}
BOX: Schema = {"type": "array", "items": _NUM, "minItems": 4, "maxItems": 4,
               "description": "[x0, y0, x1, y1] in source pixels, with x1 > x0 and y1 > y0 "
                              "(JSON Schema cannot compare items: a box breaking it gets 400)"}  # fmt: skip
POINT: Schema = {
    "type": "object",
    "properties": {"xy": {"type": "array", "items": _NUM, "minItems": 2, "maxItems": 2,
                          "description": "[x, y] in source pixels"},
                   "positive": {"type": "boolean", "description": "false: a background click"}},
    "required": ["xy"],
    "additionalProperties": False,
}  # fmt: skip
EXEMPLAR: Schema = {
    "type": "object",
    "properties": {"box": BOX, "positive": {"type": "boolean"}},
    "required": ["box"],
    "additionalProperties": False,
}
MIN_THRESHOLD, MAX_OBJECTS = 0.05, 256
_THRESHOLD = {"type": ["number", "null"], "minimum": MIN_THRESHOLD, "maximum": 1.0,
              "description": f"a probability in [{MIN_THRESHOLD}, 1]; null: the model's default"}  # fmt: skip
# A prompt must hold a character other than ASCII whitespace: "" and "  " name nothing. The class
# is spelled out so ECMAScript and Python read the pattern alike.
PROMPT_PATTERN = "[^ \\t\\n\\r\\f\\v]"
TEXT: Schema = {"type": "string", "minLength": 1, "maxLength": 200, "pattern": PROMPT_PATTERN,
                "x-error": "a prompt needs at least one word, e.g. \"person\"",
                "description": "what to find, in plain words (not blank)"}  # fmt: skip
CONCEPT: Schema = {
    "type": "object",
    "description": "A text prompt, exemplar boxes, or both",
    "properties": {
        "text": TEXT,
        "exemplars": {"type": "array", "items": EXEMPLAR, "maxItems": 16},
        "thresholds": {
            "type": "object",
            "properties": {"detection": _THRESHOLD, "new_object": _THRESHOLD},
            "additionalProperties": False,
            "description": "detection: keep detections scoring above it; new_object: start "
            "objects only from detections scoring at least this",
        },
        "max_objects": {"type": "integer", "minimum": 1, "maximum": MAX_OBJECTS,
                        "description": "most objects this concept may track at once"},
    },
    "additionalProperties": False,
    "anyOf": [{"required": ["text"]},
              {"required": ["exemplars"], "properties": {"exemplars": {"minItems": 1}}}],
    "x-error": "a concept needs a text, exemplar boxes, or both",
}  # fmt: skip
REDACTION: Schema = {
    "type": "object",
    "properties": {
        "concepts": {"type": "array", "items": TEXT, "minItems": 1, "maxItems": 16,
                     "description": "concept texts, or ['*'] for all objects"},
        "style": {"type": "string", "enum": ["blur", "pixelate", "fill"]},
        "margin_px": {"type": "integer", "minimum": 0, "maximum": 256},
        "outputs": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 2048},
                    "maxItems": 4, "description": "file paths (.mp4/.mkv) or rtsp:// URLs; one "
                    "that cannot be written gets 422"},
        "budget_ms": {"type": "integer", "minimum": 1, "maximum": 60000},
        "on_missing": {"type": "string", "enum": ["blur", "drop"]},
    },
    "required": ["concepts"],
    "additionalProperties": False,
}  # fmt: skip
STREAM_ID_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"  # streamer.engine.STREAM_ID
STREAM_ID: Schema = {"type": "string", "pattern": STREAM_ID_PATTERN,
                     "x-error": "a stream id is 1-64 letters, digits, '_', '.' or '-', "
                                "starting with a letter or digit"}  # fmt: skip
STREAM: Schema = {
    "type": "object",
    "properties": {
        "source": {"type": "string", "minLength": 1, "maxLength": 2048, "pattern": PROMPT_PATTERN,
                   "x-error": "give a source, e.g. rtsp://host/path, a video file or world://384@15",
                   "description": "rtsp:// URL, video file path, /dev/videoN, "
                   "synthetic://WxH@FPS or world://SIDE@FPS; one that cannot be opened gets 422"},
        "stream_id": STREAM_ID,
        "concepts": {"type": "array", "items": CONCEPT, "maxItems": 32},
        "live": {"type": "boolean"},
        "realtime": {"type": "boolean"},
        "loop": {"type": "boolean"},
        "latency_budget_ms": {"type": "integer", "minimum": 1, "maximum": 60000},
        "redaction": REDACTION,
        "max_attempts": {"type": "integer", "minimum": 1, "maximum": 1000000,
                         "description": "network sources: fail the stream after this many failed "
                                        "connection attempts in a row (default: reconnect forever)"},
    },
    "required": ["source"],
    "additionalProperties": False,
}  # fmt: skip
OBJECT_PROMPT: Schema = {
    "type": "object",
    "description": "A box, clicks, or both",
    "properties": {"box": BOX, "points": {"type": "array", "items": POINT, "maxItems": 32}},
    "additionalProperties": False,
    "anyOf": [{"required": ["box"]},
              {"required": ["points"], "properties": {"points": {"minItems": 1}}}],
    "x-error": "give a box, points, or both",
}  # fmt: skip
MAX_ID = 10**18 - 1  # path ids are at most 18 digits
ID_PARAM: Schema = {"type": "integer", "minimum": 0, "maximum": MAX_ID}

# --- response schemas (what the handlers answer; they may grow fields) ---------------------

ERROR: Schema = {
    "type": "object",
    "description": "Every 4xx and 5xx answer: one sentence naming the culprit and what would work",
    "properties": {"error": {"type": "string", "minLength": 1},
                   "status": {"type": "integer", "minimum": 400, "maximum": 599}},
    "required": ["error", "status"],
}  # fmt: skip
_NULLABLE_NUMBER = {"type": ["number", "null"]}
CONCEPT_INFO: Schema = {
    "type": "object",
    "properties": {
        "concept_id": {"type": "integer", "minimum": 0},
        "text": {"type": ["string", "null"]},
        "exemplars": {"type": "array", "items": {
            "type": "object", "properties": {"box": {"type": "array", "items": {"type": "number"}},
                                             "positive": {"type": "boolean"}}}},
        "thresholds": {"type": "object", "properties": {"detection": _NULLABLE_NUMBER,
                                                        "new_object": _NULLABLE_NUMBER}},
    },
    "required": ["concept_id", "text", "exemplars", "thresholds"],
}  # fmt: skip
STREAM_INFO: Schema = {
    "type": "object",
    "properties": {
        "stream_id": {"type": "string"},
        "state": {"type": "string",
                  "enum": ["connecting", "live", "reconnecting", "gap", "ended", "failed"]},
        "source": {"type": ["string", "null"], "description": "credentials removed"},
        "error": {"type": ["string", "null"]},
        "frames_in": {"type": "integer"}, "frames_out": {"type": "integer"},
        "fps_in": {"type": "number"}, "fps_out": {"type": "number"},
        "latency_ms_p50": {"type": "number"}, "latency_ms_p99": {"type": "number"},
        "drops": {"type": "object", "additionalProperties": {"type": "integer"}},
        "objects": {"type": "integer"},
        "concepts": {"type": "array", "items": CONCEPT_INFO},
    },
    "required": ["stream_id", "state", "source", "error", "frames_in", "frames_out", "objects",
                 "concepts"],
}  # fmt: skip
OBJECT_INFO: Schema = {
    "type": "object",
    "properties": {
        "object_id": {"type": "integer"}, "concept_id": {"type": ["integer", "null"]},
        "score": {"type": "number"}, "box_xyxy": {"type": "array", "items": {"type": "number"}},
        "area": {"type": "number"}, "state": {"type": "string", "enum": ["tentative", "confirmed"]},
        "first_seq": {"type": "integer"}, "last_seq": {"type": "integer"},
    },
    "required": ["object_id", "concept_id", "state"],
}  # fmt: skip
HEALTH: Schema = {
    "type": "object",
    "properties": {"status": {"const": "ok"}, "version": {"type": "string"},
                   "device": {"type": "string"}, "streams": {"type": "integer"},
                   "live": {"type": "integer"}, "subscribers": {"type": "integer"}},
    "required": ["status", "version", "streams"],
}  # fmt: skip
MODEL_INFO: Schema = {
    "type": "object",
    "properties": {
        "name": {"type": ["string", "null"], "description": "e.g. embedded, sam3; null: unknown"},
        "known_concepts": {"type": ["array", "null"], "items": {"type": "string"},
                           "description": "a closed-vocabulary model's phrases (the embedded "
                           "model's world); null: an open vocabulary, any words"},
        "default_source": {"type": ["string", "null"],
                           "description": "a source this model has something to find in"},
        "default_prompt": {"type": ["string", "null"]},
    },
    "required": ["name", "known_concepts"],
}  # fmt: skip

# --- the document --------------------------------------------------------------------------


def _json(schema: Schema) -> Schema:
    return {"application/json": {"schema": schema}}


_WHY = {
    400: "the body breaks the schema or a rule it cannot express (a box's order), or a path id "
    "is not an integer; the sentence names the field",
    401: "a token is configured and the request carries a missing or wrong one",
    404: "no such stream, concept or object",
    409: "the stream id is taken, or the engine runs its most streams",
    413: "the body is larger than the server allows (64 KiB by default)",
    415: "the body is not application/json",
    422: "well formed, but the source cannot be opened, an output cannot be written (or lies "
    "outside the output directory), or the stream's tracker cannot take this prompt",
    500: "a bug: the engine logs it",
}
_BODY_ERRORS = (400, 413, 415)


def _op(
    op_id: str,
    summary: str,
    *,
    body: Schema | None = None,
    ok: int = 200,
    answer: Schema | None = None,
    media: str = "application/json",
    errors: tuple[int, ...] = (),
    links: dict[str, Schema] | None = None,
    secured: bool = True,
) -> Schema:
    success: Schema = {"description": "OK" if ok != 204 else "done, no body"}
    if answer is not None:
        success["content"] = {media: {"schema": answer}}
    if links:
        success["links"] = links
    op: Schema = {"operationId": op_id, "summary": summary, "responses": {str(ok): success}}
    if body is not None:
        op["requestBody"] = {"required": True, "content": _json(body)}
        errors = (*_BODY_ERRORS, *errors)
    for status in sorted({*errors, 500, *((401,) if secured else ())}):
        op["responses"][str(status)] = {"description": _WHY[status], "content": _json(ERROR)}
    if not secured:
        op["security"] = []
    return op


def _path(*names: str) -> list[Schema]:
    params = {"stream_id": STREAM_ID, "concept_id": ID_PARAM, "object_id": ID_PARAM}
    return [{"name": n, "in": "path", "required": True, "schema": params[n]} for n in names]


def _link(op_id: str, **params: str) -> Schema:
    return {"operationId": op_id, "parameters": params}


def document(version: str) -> Schema:
    """The OpenAPI 3.1 description of every route of the control API (WHIP/WHEP and the page:
    docs/webrtc.md)."""
    stream = "/v1/streams/{stream_id}"
    ws_note = ("WebSocket only (an HTTP GET without the upgrade gets 400): binary messages, "
               "one msgpack event each, Hello first.")  # fmt: skip
    ws_query = [
        {"name": "queue", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                    "maximum": 65536, "default": 256}},
        {"name": "overflow", "in": "query",
         "schema": {"type": "string", "enum": ["drop_oldest", "disconnect"]}},
    ]  # fmt: skip
    by_stream = "$response.body#/stream_id"
    new_stream = {name: _link(name, stream_id=by_stream) for name in
                  ("getStream", "removeStream", "listConcepts", "addConcept", "listObjects",
                   "addObject")}  # fmt: skip
    new_concept = {"removeConcept": _link("removeConcept", stream_id="$request.path.stream_id",
                                          concept_id="$response.body#/concept_id")}  # fmt: skip
    new_object = {name: _link(name, stream_id="$request.path.stream_id",
                              object_id="$response.body#/object_id")
                  for name in ("refineObject", "removeObject")}  # fmt: skip
    listed = {"type": "object", "properties": {}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "sam3-streamer control API",
            "version": version,
            "description": "Bodies are JSON with no unknown fields; every error is the Error "
            "object. With a token configured, every route but /v1/health needs `Authorization: "
            "Bearer <token>` (WebSockets may pass `?token=`).",
        },
        "servers": [{"url": "/"}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "only when the server has a token"}},
            "schemas": {"Error": ERROR, "Stream": STREAM, "Concept": CONCEPT,
                        "ObjectPrompt": OBJECT_PROMPT, "StreamInfo": STREAM_INFO,
                        "ConceptInfo": CONCEPT_INFO, "ObjectInfo": OBJECT_INFO,
                        "ModelInfo": MODEL_INFO},
        },  # fmt: skip
        "security": [{}, {"bearer": []}],  # optional: a server without a token needs none
        "paths": {
            "/v1/health": {"get": _op("health", "Liveness and stream counts", answer=HEALTH,
                                      secured=False)},
            "/metrics": {"get": _op("metrics", "Prometheus metrics (text exposition)",
                                    answer={"type": "string"}, media="text/plain")},
            "/v1/openapi.json": {"get": _op("openapi", "This document", answer={"type": "object"})},
            "/v1/model": {"get": _op("model", "The loaded model and the concepts it knows",
                                     answer=MODEL_INFO)},
            "/v1/streams": {
                "get": _op("listStreams", "List streams", answer={**listed, "properties": {
                    "streams": {"type": "array", "items": STREAM_INFO}}}),
                "post": _op("addStream", "Add a stream", body=STREAM, ok=201, answer=STREAM_INFO,
                            errors=(409, 422), links=new_stream),
            },
            stream: {
                "parameters": _path("stream_id"),
                "get": _op("getStream", "One stream: state, figures, concepts",
                           answer=STREAM_INFO, errors=(404,)),
                "delete": _op("removeStream", "Stop a stream (drains, then ends its objects)",
                              ok=204, errors=(404,)),
            },
            f"{stream}/concepts": {
                "parameters": _path("stream_id"),
                "get": _op("listConcepts", "List concepts", errors=(404,), answer={
                    **listed, "properties": {"concepts": {"type": "array", "items": CONCEPT_INFO}}}),
                "post": _op("addConcept", "Add a concept", body=CONCEPT, ok=201,
                            answer=CONCEPT_INFO, errors=(404, 422), links=new_concept),
            },
            f"{stream}/concepts/{{concept_id}}": {
                "parameters": _path("stream_id", "concept_id"),
                "delete": _op("removeConcept", "Remove a concept", ok=204, errors=(400, 404, 422)),
            },
            f"{stream}/objects": {
                "parameters": _path("stream_id"),
                "get": _op("listObjects", "Objects on the latest processed frame", errors=(404,),
                           answer={**listed, "properties": {
                               "objects": {"type": "array", "items": OBJECT_INFO}}}),
                "post": _op("addObject", "Add an object by box and/or clicks", body=OBJECT_PROMPT,
                            ok=201, answer={"type": "object", "properties": {
                                "object_id": {"type": "integer"}}, "required": ["object_id"]},
                            errors=(404, 422), links=new_object),
            },
            f"{stream}/objects/{{object_id}}": {
                "parameters": _path("stream_id", "object_id"),
                "patch": _op("refineObject", "Refine an object with a box and/or clicks",
                             body=OBJECT_PROMPT, errors=(404, 422)),
                "delete": _op("removeObject", "Remove an object", ok=204, errors=(400, 404, 422)),
            },
            f"{stream}/events": {
                "parameters": _path("stream_id"),
                "get": {**_op("streamEvents", f"Events of one stream. {ws_note}", ok=101,
                              errors=(400, 404)), "parameters": ws_query},
            },
            "/v1/events": {
                "get": {**_op("allEvents", f"Events of every stream. {ws_note}", ok=101,
                              errors=(400,)), "parameters": ws_query},
            },
        },
    }  # fmt: skip


__all__ = ["CONCEPT", "OBJECT_PROMPT", "STREAM", "Invalid", "Schema", "document", "validate"]
