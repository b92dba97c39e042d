"""The page's own msgpack decoder and COCO RLE decoder (streamer/web/*.js), run in node, agree
with the Python codec on every golden event and on random masks."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from protocols import rle
from protocols.codec import decode
from protocols.events import FrameResult

WEB = Path(__file__).resolve().parents[2] / "streamer" / "web"
GOLDEN = Path(__file__).resolve().parents[1] / "protocols" / "golden"

SCRIPT = """
import { readFileSync } from "node:fs";
import { parseEvent } from "%(web)s/events.js";
import { toArray } from "%(web)s/rle.js";
const job = JSON.parse(readFileSync(0, "utf8"));
const out = { events: {}, masks: [] };
for (const path of job.golden) {
  const e = parseEvent(readFileSync(path));
  out.events[path] = JSON.parse(JSON.stringify(e, (k, v) => v instanceof Uint8Array ? Array.from(v) : v));
  if (e.type === "frame_result") out.events[path].masks = e.objects.map((o) => Array.from(toArray(o.rle)));
}
for (const m of job.masks) out.masks.push(Array.from(toArray({ size: m.size, counts: Buffer.from(m.counts, "latin1") })));
process.stdout.write(JSON.stringify(out));
"""


def run_node(job: dict[str, object]) -> dict[str, object]:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed (Debian nodejs; scripts/bootstrap.sh dev)")
    done = subprocess.run(
        [node, "--input-type=module", "-e", SCRIPT % {"web": WEB.as_uri()}],
        input=json.dumps(job), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_js_decoders_match_python_on_golden_events_and_random_masks() -> None:
    golden = sorted(str(p) for p in GOLDEN.glob("*.msgpack"))
    assert golden
    rng = np.random.default_rng(0)
    masks = [
        rng.random((h, w)) < p
        for h, w, p in [(6, 8, 0.5), (31, 17, 0.1), (64, 48, 0.9), (5, 5, 0.0), (3, 4, 1.0)]
    ]
    masks.append(
        np.pad(np.ones((200, 300), bool), ((10, 20), (30, 5)))
    )  # long runs: multi-group counts
    encoded = [rle.encode(m) for m in masks]
    out = run_node(
        {
            "golden": golden,
            "masks": [{"size": list(e.size), "counts": e.counts.decode("latin1")} for e in encoded],
        }
    )

    for mask, js in zip(masks, out["masks"], strict=True):  # type: ignore[arg-type]
        assert np.array_equal(np.array(js, dtype=bool).reshape(mask.shape), mask)
    for path, js in out["events"].items():  # type: ignore[union-attr]
        event = decode(Path(path).read_bytes())
        assert js["type"] == (type(event).TAG if hasattr(type(event), "TAG") else event.type)  # type: ignore[union-attr]
        if isinstance(event, FrameResult):
            assert js["capturedNs"] == event.captured_ns and js["seq"] == event.seq
            for obj, js_obj, js_mask in zip(event.objects, js["objects"], js["masks"], strict=True):
                assert js_obj["objectId"] == obj.object_id and js_obj["box"] == list(obj.box_xyxy)
                assert np.array_equal(
                    np.array(js_mask, dtype=bool).reshape(obj.rle.size), obj.mask()
                )
