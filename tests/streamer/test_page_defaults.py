"""The live page starts with what the loaded model answers: with the embedded model, its world
scene and a phrase it knows, and the list of phrases it knows (real Chromium); the "nothing found
for 5 s" logic (streamer/web/nothing.js) under node with a scripted clock; GET /v1/model."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from streamer.api import ApiConfig
from streamer.engine import Engine, EngineConfig
from streamer.model_info import model_info
from tests.fakes import FakeTracker, running_api
from tests.streamer.test_browser_page import chromium

pytestmark = pytest.mark.timeout(120)

WEB = Path(__file__).resolve().parents[2] / "streamer" / "web"

SCRIPT = """
import { NothingFound } from "%(web)s/nothing.js";
const n = new NothingFound(5000);
const out = [];
n.setConcepts([0, 1], 0);
out.push(n.onFrame([{ conceptId: 0 }], 1000));   // both waiting, neither quiet yet
out.push(n.onFrame([{ conceptId: 0 }], 4999));
out.push(n.onFrame([{ conceptId: 0 }], 5000));   // concept 1 found nothing for 5 s
out.push(n.onFrame([{ conceptId: 1 }], 6000));   // it finds one: the banner goes
out.push(n.onFrame([], 10999));
out.push(n.onFrame([], 11000));                  // concept 1 seen at 6000: quiet again
n.setConcepts([1, 2], 11000);                    // 0 removed, 2 added now
out.push(n.onFrame([], 12000));
out.push(n.onFrame([], 16000));
process.stdout.write(JSON.stringify(out));
"""


def test_nothing_found_banner_logic_with_a_scripted_clock() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed (Debian nodejs; scripts/bootstrap.sh dev)")
    done = subprocess.run(
        [node, "--input-type=module", "-e", SCRIPT % {"web": WEB.as_uri()}],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [[], [], [1], [], [0], [0, 1], [1], [1, 2]]


def embedded_api() -> ApiConfig:
    return ApiConfig(model=model_info("embedded", None))


async def test_model_route_names_the_embedded_models_concepts() -> None:
    engine = Engine(FakeTracker, config=EngineConfig())
    async with running_api(engine, embedded_api()) as (_, client):
        info = await (await client.get("/v1/model")).json()
    assert info["name"] == "embedded" and info["default_source"].startswith("world://")
    assert info["default_prompt"] in info["known_concepts"]
    assert {"ring", "circle", "purple square"} <= set(info["known_concepts"])
    assert "person" not in info["known_concepts"]
    assert model_info("sam3", None).known_concepts is None  # open vocabulary: no list


@pytest.mark.slow
async def test_page_starts_with_a_scene_and_prompt_the_model_knows() -> None:
    engine = Engine(FakeTracker, config=EngineConfig())
    async with running_api(engine, embedded_api()) as (_, client):
        base = str(client.make_url("")).rstrip("/")
        async with chromium(f"{base}/") as page:
            deadline = time.monotonic() + 60
            while not await page.evaluate("window.sam3?.ready === true"):
                assert time.monotonic() < deadline, "the page did not finish loading"
                await asyncio.sleep(0.1)  # polling the page's own flag
            state = await page.evaluate(
                "JSON.stringify({source: document.getElementById('source').value,"
                " concepts: document.getElementById('concepts').value,"
                " option: document.querySelector('#source option[value=server]').textContent,"
                " known: [...document.querySelectorAll('#known-list li')].map((li) => li.textContent),"
                " hidden: document.getElementById('known').hidden, errors: window.sam3.errors})"
            )
    shown = json.loads(state)
    info = model_info("embedded", None)
    assert shown["errors"] == []
    assert shown["source"] == "server" and str(info.default_source) in shown["option"]
    assert shown["concepts"] == info.default_prompt
    assert not shown["hidden"] and tuple(shown["known"]) == info.known_concepts
