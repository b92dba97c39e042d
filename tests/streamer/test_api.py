"""The control API over a real aiohttp server: routes, validation, auth, limits, metrics."""

from __future__ import annotations

import pytest

from streamer.api import ApiConfig
from streamer.engine import Engine, EngineConfig
from tests.fakes import FakeSource, FakeSources, FakeTracker, eventually, running_api

pytestmark = pytest.mark.timeout(60)


def fake_engine(**sources: FakeSource) -> Engine:
    return Engine(
        FakeTracker,
        config=EngineConfig(status_interval_s=0.05),
        source_factory=FakeSources(**sources),
    )


def live_camera() -> FakeSource:
    return FakeSource(frames=100_000, paced=True, live=True, fps=50)


async def test_stream_concept_and_object_lifecycle() -> None:
    async with running_api(fake_engine(cam=live_camera())) as (engine, client):
        r = await client.post("/v1/streams", json={"source": "cam", "stream_id": "door",
                                                   "concepts": [{"text": "red"}]})  # fmt: skip
        assert r.status == 201, await r.text()
        assert (await r.json())["concepts"][0]["text"] == "red"
        listed = await (await client.get("/v1/streams")).json()
        assert [s["stream_id"] for s in listed["streams"]] == ["door"]

        r = await client.post(
            "/v1/streams/door/concepts", json={"exemplars": [{"box": [1, 2, 30, 40]}]}
        )
        assert r.status == 201
        concept_id = (await r.json())["concept_id"]
        concepts = (await (await client.get("/v1/streams/door/concepts")).json())["concepts"]
        assert [c["concept_id"] for c in concepts] == [0, concept_id]
        assert (await client.delete(f"/v1/streams/door/concepts/{concept_id}")).status == 204
        assert (await client.delete(f"/v1/streams/door/concepts/{concept_id}")).status == 404

        r = await client.post("/v1/streams/door/objects", json={"box": [0, 0, 8, 8]})
        assert r.status == 201
        object_id = (await r.json())["object_id"]
        session = engine.get("door")
        await eventually(lambda: object_id in session.objects)
        objects = (await (await client.get("/v1/streams/door/objects")).json())["objects"]
        assert {o["object_id"] for o in objects} >= {object_id}
        r = await client.patch(f"/v1/streams/door/objects/{object_id}", json={"box": [0, 0, 4, 4]})
        assert r.status == 200
        await eventually(
            lambda: (
                session.objects.get(object_id) is not None and session.objects[object_id].area == 16
            )
        )
        assert (await client.delete(f"/v1/streams/door/objects/{object_id}")).status == 204
        assert (await client.delete("/v1/streams/door/objects/999")).status == 404

        state = await (await client.get("/v1/streams/door")).json()
        assert state["state"] == "live" and state["frames_out"] > 0
        assert (await client.delete("/v1/streams/door")).status == 204
        assert (await client.get("/v1/streams/door")).status == 404


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"source": "cam", "colour": 1}, 400, "unknown field 'colour'"),
        ({}, 400, "missing required field 'source'"),
        ({"source": 5}, 400, "body.source: expected string, got integer"),
        ({"source": "cam", "concepts": [{}]}, 400, "a concept needs a text"),
        ({"source": "cam", "concepts": [{"exemplars": [{"box": [5, 5, 1, 1]}]}]}, 400, "x1 > x0"),
        ({"source": "cam", "latency_budget_ms": 0}, 400, ">= 1"),
        ({"source": "cam", "max_attempts": 0}, 400, "body.max_attempts"),
        ({"source": "cam", "max_attempts": "3"}, 400, "body.max_attempts: expected integer"),
        ({"source": "cam", "redaction": {"concepts": ["face"], "style": "smudge"}}, 400, "one of"),
        ({"source": "nowhere"}, 422, "cannot open nowhere"),
        ({"source": "cam", "stream_id": "a/b"}, 400, "letters, digits"),
        ([1, 2], 400, "expected object, got array"),
        ({"source": "cam", "concepts": [{"text": "   "}]}, 400, "at least one word"),
        ({"source": "cam", "concepts": [{"text": ""}]}, 400, "concepts[0].text"),
        ({"source": "   "}, 400, "give a source"),
        ({"source": "ftp://x/y"}, 422, "unsupported source ftp://"),
        (
            {"source": "cam", "concepts": [{"text": "red", "thresholds": {"detection": 0.0}}]},
            400,
            "thresholds.detection: must be >= 0.05",
        ),
        (
            {"source": "cam", "concepts": [{"text": "red", "thresholds": {"new_object": 1.5}}]},
            400,
            "must be <= 1.0",
        ),
        ({"source": "cam", "concepts": [{"text": "red", "max_objects": 0}]}, 400, "max_objects"),
        ({"source": "cam", "concepts": [{"text": "red", "max_objects": 257}]}, 400, "<= 256"),
        ({"source": "cam", "concepts": [{"exemplars": []}]}, 400, "a concept needs a text"),
        ({"source": "cam", "stream_id": "cam\n"}, 400, "stream id is 1-64 letters"),
    ],
)
async def test_bad_stream_bodies_get_clear_json_errors(
    body: object, status: int, needle: str
) -> None:
    async with running_api(fake_engine(cam=live_camera())) as (engine, client):
        r = await client.post("/v1/streams", json=body)
        payload = await r.json()
        assert r.status == status and payload["status"] == status
        assert needle in payload["error"]
        assert not engine.sessions


async def test_transport_level_errors_are_json_too() -> None:
    config = ApiConfig(max_body_bytes=1024)
    async with running_api(fake_engine(cam=live_camera()), config) as (_, client):
        r = await client.post("/v1/streams", data="source=cam")
        assert r.status == 415 and "application/json" in (await r.json())["error"]
        r = await client.post(
            "/v1/streams", data="{nope", headers={"Content-Type": "application/json"}
        )
        assert r.status == 400 and "not valid JSON" in (await r.json())["error"]
        r = await client.post("/v1/streams", json={"source": "x" * 5000})
        assert r.status == 413 and (await r.json())["status"] == 413
        r = await client.get("/v1/nothing-here")
        assert r.status == 404 and "error" in await r.json()
        r = await client.put("/v1/streams")
        assert r.status == 405
        r = await client.delete("/v1/streams/none/concepts/abc")
        assert r.status == 404  # the stream is checked first
        await client.post("/v1/streams", json={"source": "cam", "stream_id": "c"})
        r = await client.delete("/v1/streams/c/concepts/abc")
        assert r.status == 400 and "non-negative integer" in (await r.json())["error"]
        r = await client.post("/v1/streams", json={"source": "cam", "stream_id": "c"})
        assert r.status == 409


async def test_bearer_token_guards_everything_but_health() -> None:
    config = ApiConfig(token="s3cret")
    async with running_api(fake_engine(), config) as (_, client):
        assert (await client.get("/v1/health")).status == 200
        r = await client.get("/v1/streams")
        assert r.status == 401 and "bearer" in (await r.json())["error"]
        assert (
            await client.get("/v1/streams", headers={"Authorization": "Bearer wrong"})
        ).status == 401
        assert (
            await client.get("/v1/streams", headers={"Authorization": "Bearer s3cret"})
        ).status == 200
        assert (await client.get("/metrics?token=s3cret")).status == 200


async def test_metrics_and_openapi() -> None:
    async with running_api(fake_engine(cam=live_camera())) as (engine, client):
        await client.post(
            "/v1/streams",
            json={"source": "cam", "stream_id": "door", "concepts": [{"text": "red"}]},
        )
        await eventually(lambda: engine.get("door").stats.frames_out > 3)
        text = await (await client.get("/metrics")).text()
        for series in ('streamer_frames_total{direction="out",stream="door"}',
                       'streamer_stage_seconds_bucket{le="0.001",stage="model",stream="door"}',
                       'streamer_objects{stream="door"} 1.0', 'streamer_memory_bytes{kind="rss"}'):  # fmt: skip
            assert series in text, series
        doc = await (await client.get("/v1/openapi.json")).json()
        assert doc["openapi"].startswith("3.1")
        assert "post" in doc["paths"]["/v1/streams"]
        body = doc["paths"]["/v1/streams"]["post"]["requestBody"]["content"]["application/json"][
            "schema"
        ]
        assert body["required"] == ["source"]


async def test_bad_input_is_a_sentence_never_a_500() -> None:
    async with running_api(fake_engine(cam=live_camera())) as (engine, client):
        await client.post("/v1/streams", json={"source": "cam", "stream_id": "c"})
        json_headers = {"Content-Type": "application/json"}
        cases = [
            ("POST", "/v1/streams", '{"source": NaN}', 400, "NaN is not a JSON number"),
            ("POST", "/v1/streams", "[" * 5000 + "]" * 5000, 400, "nested too deeply"),
            ("POST", "/v1/streams/c/objects", "{}", 400, "give a box, points, or both"),
            ("POST", "/v1/streams/c/objects", '{"box": [5, 5, 5, 9]}', 400, "x1 > x0"),
            ("POST", "/v1/streams/c/objects", '{"points": [{"xy": [1]}]}', 400, "xy"),
            ("PATCH", "/v1/streams/c/objects/\u00b2", '{"box": [0, 0, 1, 1]}', 400, "integer"),
            ("DELETE", "/v1/streams/c/objects/42", "", 404, "42"),
            ("POST", "/v1/streams/nope/concepts", '{"text": "red"}', 404, "no stream 'nope'"),
        ]
        for method, path, body, status, needle in cases:
            r = await client.request(method, path, data=body, headers=json_headers)
            payload = await r.json()
            assert (r.status, payload["status"]) == (status, status), (path, body[:40], payload)
            assert needle in payload["error"], (path, payload)
        r = await client.post("/v1/streams/c/concepts", data="text=red",
                              headers={"Content-Type": "text/plain"})  # fmt: skip
        assert r.status == 415 and "text/plain" in (await r.json())["error"]
        r = await client.post("/v1/streams/c/concepts", json={"text": "r" * 70_000})
        assert r.status == 413 and "larger than 65536 bytes" in (await r.json())["error"]
        assert engine.get("c").state.value == "live"  # the stream kept serving
