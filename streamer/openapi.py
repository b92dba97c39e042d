"""The HTTP API's request schemas, their validator and the OpenAPI document, from one source.

Request bodies are described once, as JSON-Schema dicts (the subset OpenAPI 3.1 shares with JSON
Schema: object/array/string/number/integer/boolean, required, enum, bounds, no extra fields).
`validate(body, schema)` checks a parsed JSON body against one and raises `Invalid` with the
path of the first problem ("concepts[0].exemplars[1].box: expected 4 items"). The same dicts go
into the document served at /v1/openapi.json, so the documentation cannot drift from the checks.
"""

from __future__ import annotations

import math
from typing import Any

Schema = dict[str, Any]


class Invalid(ValueError):
    """A request body does not match its schema; the message names the field."""


# --- schemas -------------------------------------------------------------------------------

_NUM = {"type": "number", "minimum": -1e6, "maximum": 1e6}
BOX: Schema = {"type": "array", "items": _NUM, "minItems": 4, "maxItems": 4,
               "description": "x0, y0, x1, y1 in source pixels"}  # fmt: skip
POINT: Schema = {
    "type": "object",
    "properties": {"xy": {"type": "array", "items": _NUM, "minItems": 2, "maxItems": 2},
                   "positive": {"type": "boolean"}},
    "required": ["xy"],
}  # fmt: skip
EXEMPLAR: Schema = {
    "type": "object",
    "properties": {"box": BOX, "positive": {"type": "boolean"}},
    "required": ["box"],
}
_PROB = {"type": "number", "minimum": 0.0, "maximum": 1.0, "nullable": True}
CONCEPT: Schema = {
    "type": "object",
    "description": "A text prompt, exemplar boxes, or both",
    "properties": {
        "text": {"type": "string", "minLength": 1, "maxLength": 200},
        "exemplars": {"type": "array", "items": EXEMPLAR, "maxItems": 16},
        "thresholds": {
            "type": "object",
            "properties": {"detection": _PROB, "new_object": _PROB},
        },
    },
}
REDACTION: Schema = {
    "type": "object",
    "properties": {
        "concepts": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 200},
                     "minItems": 1, "maxItems": 16, "description": "concept texts, or ['*'] for all objects"},
        "style": {"type": "string", "enum": ["blur", "pixelate", "fill"]},
        "margin_px": {"type": "integer", "minimum": 0, "maximum": 256},
        "outputs": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 2048},
                    "maxItems": 4, "description": "file paths (.mp4/.mkv) or rtsp:// URLs"},
        "budget_ms": {"type": "integer", "minimum": 1, "maximum": 60000},
        "on_missing": {"type": "string", "enum": ["blur", "drop"]},
    },
    "required": ["concepts"],
}  # fmt: skip
STREAM: Schema = {
    "type": "object",
    "properties": {
        "source": {"type": "string", "minLength": 1, "maxLength": 2048,
                   "description": "rtsp:// URL, file path, /dev/videoN, or 'synthetic'"},
        "stream_id": {"type": "string", "minLength": 1, "maxLength": 64},
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
}  # fmt: skip
OBJECT_PROMPT: Schema = {
    "type": "object",
    "description": "A box, clicks, or both",
    "properties": {"box": BOX, "points": {"type": "array", "items": POINT, "maxItems": 32}},
}

# --- validation ----------------------------------------------------------------------------

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,), "array": (list,), "string": (str,), "boolean": (bool,),
    "integer": (int,), "number": (int, float),
}  # fmt: skip


def validate(value: Any, schema: Schema, path: str = "body") -> None:
    """Raise `Invalid` naming the first place where `value` breaks `schema`."""
    if value is None and schema.get("nullable"):
        return
    kind = schema["type"]
    if not isinstance(value, _TYPES[kind]) or (kind != "boolean" and isinstance(value, bool)):
        raise Invalid(f"{path}: expected {kind}, got {_json_type(value)}")
    if isinstance(value, dict):
        _validate_object(value, schema, path)
    elif isinstance(value, list):
        _validate_array(value, schema, path)
    elif isinstance(value, str):
        _validate_string(value, schema, path)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        _validate_number(value, schema, path)


def _validate_object(value: dict[str, Any], schema: Schema, path: str) -> None:
    properties: dict[str, Schema] = schema.get("properties", {})
    for key in value:
        if key not in properties:
            raise Invalid(f"{path}: unknown field {key!r} (allowed: {', '.join(properties)})")
    for key in schema.get("required", ()):
        if key not in value:
            raise Invalid(f"{path}: missing required field {key!r}")
    for key, item in value.items():
        validate(item, properties[key], f"{path}.{key}")


def _validate_array(value: list[Any], schema: Schema, path: str) -> None:
    if len(value) < schema.get("minItems", 0):
        raise Invalid(f"{path}: expected at least {schema['minItems']} items, got {len(value)}")
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        raise Invalid(f"{path}: expected at most {schema['maxItems']} items, got {len(value)}")
    for i, item in enumerate(value):
        validate(item, schema["items"], f"{path}[{i}]")


def _validate_string(value: str, schema: Schema, path: str) -> None:
    if len(value) < schema.get("minLength", 0):
        raise Invalid(f"{path}: must not be empty")
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        raise Invalid(f"{path}: longer than {schema['maxLength']} characters")
    if "enum" in schema and value not in schema["enum"]:
        raise Invalid(f"{path}: must be one of {schema['enum']}, got {value!r}")


def _validate_number(value: float, schema: Schema, path: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise Invalid(f"{path}: must be a finite number")
    if "minimum" in schema and value < schema["minimum"]:
        raise Invalid(f"{path}: must be >= {schema['minimum']}, got {value}")
    if "maximum" in schema and value > schema["maximum"]:
        raise Invalid(f"{path}: must be <= {schema['maximum']}, got {value}")


def _json_type(value: Any) -> str:
    for name, types in _TYPES.items():
        if isinstance(value, types) and not (name != "boolean" and isinstance(value, bool)):
            return name
    return "null" if value is None else type(value).__name__


# --- the document --------------------------------------------------------------------------

_ERROR = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "status": {"type": "integer"}},
}


def _op(
    summary: str, body: Schema | None = None, ok: int = 200, errors: tuple[int, ...] = ()
) -> Schema:
    op: Schema = {"summary": summary, "responses": {str(ok): {"description": "OK"}}}
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    for status in (401, *errors):
        op["responses"][str(status)] = {
            "description": "error", "content": {"application/json": {"schema": _ERROR}},
        }  # fmt: skip
    return op


def document(version: str) -> Schema:
    """The OpenAPI 3.1 description of every route the control API serves."""
    stream = "/v1/streams/{stream_id}"
    ws_note = ("WebSocket: binary messages, one msgpack event each, Hello first. Query: "
               "queue=N (1..65536), overflow=drop_oldest|disconnect.")  # fmt: skip
    return {
        "openapi": "3.1.0",
        "info": {"title": "sam3-streamer control API", "version": version},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
        "paths": {
            "/v1/health": {"get": _op("Liveness, model and stream counts")},
            "/metrics": {"get": _op("Prometheus metrics (text exposition)")},
            "/v1/openapi.json": {"get": _op("This document")},
            "/v1/streams": {
                "get": _op("List streams"),
                "post": _op("Add a stream", STREAM, 201, (400, 409, 413, 415, 422)),
            },
            stream: {
                "get": _op("One stream: state, figures, concepts", errors=(404,)),
                "delete": _op(
                    "Stop a stream (drains, then ends its objects)", ok=204, errors=(404,)
                ),
            },
            f"{stream}/concepts": {
                "get": _op("List concepts", errors=(404,)),
                "post": _op("Add a concept", CONCEPT, 201, (400, 404, 413, 415)),
            },
            f"{stream}/concepts/{{concept_id}}": {
                "delete": _op("Remove a concept", ok=204, errors=(400, 404))
            },
            f"{stream}/objects": {
                "get": _op("Objects on the latest processed frame", errors=(404,)),
                "post": _op("Add an object by box and/or clicks", OBJECT_PROMPT, 201, (400, 404)),
            },
            f"{stream}/objects/{{object_id}}": {
                "patch": _op(
                    "Refine an object with a box and/or clicks", OBJECT_PROMPT, 200, (400, 404)
                ),
                "delete": _op("Remove an object", ok=204, errors=(400, 404)),
            },
            f"{stream}/events": {
                "get": _op(f"Events of one stream. {ws_note}", ok=101, errors=(404,))
            },
            "/v1/events": {"get": _op(f"Events of every stream. {ws_note}", ok=101)},
        },
    }
