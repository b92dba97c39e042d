"""A small JSON-Schema checker for the API's request bodies: the subset streamer/openapi.py uses.

Keywords: type (a name or a list of names, "null" included), properties, required,
additionalProperties (false only), items, minItems, maxItems, minLength, maxLength, pattern
(searched, as JSON Schema means it; a trailing `$` matches only at the very end, as in
ECMAScript), enum, minimum, maximum, anyOf; `x-error` gives the sentence an anyOf failure reads.
`validate(value, schema)` raises `Invalid` at the first problem, naming its path
("body.concepts[0].exemplars[1].box: expected at least 4 items, got 3"), and returns the value
with integral numbers where the schema says integer (JSON Schema counts 1.0 as an integer; the
engine then sees 1, never 1.0).
"""

from __future__ import annotations

import functools
import math
import re
from typing import Any

Schema = dict[str, Any]


class Invalid(ValueError):
    """A request body does not match its schema; the message names the field."""


_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,), "array": (list,), "string": (str,), "boolean": (bool,),
    "integer": (int,), "number": (int, float), "null": (type(None),),
}  # fmt: skip


def validate(value: Any, schema: Schema, path: str = "body") -> Any:
    """Raise `Invalid` naming the first place where `value` breaks `schema`; else the value."""
    kinds = schema.get("type", [])
    kinds = kinds if isinstance(kinds, list) else [kinds]
    if kinds and not any(_is(value, kind) for kind in kinds):
        raise Invalid(f"{path}: expected {' or '.join(kinds)}, got {_json_type(value)}")
    checked = value
    if isinstance(value, dict):
        checked = _validate_object(value, schema, path)
    elif isinstance(value, list):
        checked = _validate_array(value, schema, path)
    elif isinstance(value, str):
        _validate_string(value, schema, path)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        _validate_number(value, schema, path)
        if isinstance(value, float) and "integer" in kinds and "number" not in kinds:
            checked = int(value)
    if "anyOf" in schema and not any(_passes(value, s, path) for s in schema["anyOf"]):
        raise Invalid(f"{path}: {schema.get('x-error', 'matches none of the allowed forms')}")
    return checked


def _passes(value: Any, schema: Schema, path: str) -> bool:
    try:
        validate(value, schema, path)
    except Invalid:
        return False
    return True


def _is(value: Any, kind: str) -> bool:
    if kind != "boolean" and isinstance(value, bool):
        return False  # JSON true is not the number 1
    if kind == "integer" and isinstance(value, float):
        return value.is_integer()  # JSON Schema: 1.0 is an integer
    return isinstance(value, _TYPES[kind])


def _validate_object(value: dict[str, Any], schema: Schema, path: str) -> dict[str, Any]:
    properties: dict[str, Schema] = schema.get("properties", {})
    if schema.get("additionalProperties") is False:
        for key in value:
            if key not in properties:
                raise Invalid(f"{path}: unknown field {key!r} (allowed: {', '.join(properties)})")
    for key in schema.get("required", ()):
        if key not in value:
            raise Invalid(f"{path}: missing required field {key!r}")
    return {
        key: validate(item, properties[key], f"{path}.{key}") if key in properties else item
        for key, item in value.items()
    }


def _validate_array(value: list[Any], schema: Schema, path: str) -> list[Any]:
    if len(value) < schema.get("minItems", 0):
        raise Invalid(f"{path}: expected at least {schema['minItems']} items, got {len(value)}")
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        raise Invalid(f"{path}: expected at most {schema['maxItems']} items, got {len(value)}")
    if "items" not in schema:
        return value
    return [validate(item, schema["items"], f"{path}[{i}]") for i, item in enumerate(value)]


def _validate_string(value: str, schema: Schema, path: str) -> None:
    if len(value) < schema.get("minLength", 0):
        raise Invalid(f"{path}: must not be empty")
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        raise Invalid(f"{path}: longer than {schema['maxLength']} characters")
    if "pattern" in schema and not _pattern(schema["pattern"]).search(value):
        raise Invalid(f"{path}: {schema.get('x-error', 'must match ' + schema['pattern'])}")
    if "enum" in schema and value not in schema["enum"]:
        raise Invalid(f"{path}: must be one of {schema['enum']}, got {value!r}")


def _validate_number(value: float, schema: Schema, path: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise Invalid(f"{path}: must be a finite number")
    if "minimum" in schema and value < schema["minimum"]:
        raise Invalid(f"{path}: must be >= {schema['minimum']}, got {value}")
    if "maximum" in schema and value > schema["maximum"]:
        raise Invalid(f"{path}: must be <= {schema['maximum']}, got {value}")


@functools.cache
def _pattern(pattern: str) -> re.Pattern[str]:
    # ECMAScript's `$` (what JSON Schema means) matches only at the end; Python's also before
    # a final newline, so "cam\n" would pass as a stream id. `\Z` is the ECMAScript meaning.
    return re.compile(pattern[:-1] + r"\Z" if pattern.endswith("$") else pattern)


def _json_type(value: Any) -> str:
    for name in _TYPES:
        if _is(value, name):
            return name
    return type(value).__name__
