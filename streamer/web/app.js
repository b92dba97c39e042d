// The live page: publish the webcam (or a canvas of moving shapes) over WHIP, or pick a running
// stream; watch its video over WHEP with the stream's events on a DataChannel of the same peer;
// draw the masks with ID labels, list the objects with their lifetimes, show fps and latency.
//
// Authentication: open the page as /#token=TOKEN when the engine has a token. The fragment never
// leaves the browser; the page sends `Authorization: Bearer TOKEN` on every fetch (REST, WHIP,
// WHEP). URL parameters (for links and tests): ?source=webcam|canvas|stream|server&stream=ID
// &concepts=a,b&redact=1&autostart=1.
//
// The defaults come from GET /v1/model: a model with a closed vocabulary (the embedded one) names
// a scene it knows (source "server": the engine opens it, e.g. world://384@15) and a prompt it
// answers; the page lists its known concepts, and says so when a concept finds nothing for 5 s.

import { parseEvent } from "./events.js";
import { NothingFound } from "./nothing.js";
import { colourOf, drawResult } from "./overlay.js";
import { whepView, whipPublish } from "./webrtc.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const token = new URLSearchParams(location.hash.slice(1)).get("token") ?? sessionStorage.getItem("sam3-token");
if (token) sessionStorage.setItem("sam3-token", token);
const auth = token ? { Authorization: `Bearer ${token}` } : {};

// Everything a test (or a curious user in the console) may read.
const stats = (window.sam3 = {
  events: 0, frameResults: 0, framesWithMasks: 0, maskPixels: 0, videoFrames: 0,
  lastLatencyMs: null, hello: null, errors: [], running: false, model: null, nothingFound: [],
});
const nothing = new NothingFound(5000);

let current = null;              // {publisher, viewer, streamId, canvasTimer}
const concepts = new Map();      // concept id -> text
const objects = new Map();       // object id -> {conceptId, score, state, startedMs, endedMs}

async function api(path, options = {}) {
  const r = await fetch(path, { ...options, headers: { ...auth, ...(options.headers ?? {}) } });
  const body = r.status === 204 ? null : await r.json();
  if (!r.ok) throw new Error(`${path}: ${body?.error ?? r.status}`);
  return body;
}

function fail(error) {
  console.error(error);
  stats.errors.push(String(error));
  $("error").textContent = String(error.message ?? error);
}

// --- sources -----------------------------------------------------------------------------------

function shapesCanvas(width = 640, height = 480) {
  const canvas = Object.assign(document.createElement("canvas"), { width, height });
  const ctx = canvas.getContext("2d");
  let t = 0;
  const draw = () => {
    ctx.fillStyle = "#808080";
    ctx.fillRect(0, 0, width, height);
    ctx.fillStyle = "#ff0000";
    ctx.fillRect(60 + ((t * 3) % (width - 260)), 120, 140, 140);
    ctx.fillStyle = "#0040ff";
    ctx.beginPath();
    ctx.arc(width - 120, 120 + ((t * 2) % (height - 240)), 60, 0, 2 * Math.PI);
    ctx.fill();
    t += 1;
  };
  draw();
  const timer = setInterval(draw, 1000 / 30);   // captureStream only emits when the canvas changes
  return { stream: canvas.captureStream(30), timer };
}

async function mediaFor(source) {
  if (source === "canvas") return shapesCanvas();
  const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 1280, height: 720, frameRate: 30 } });
  return { stream, timer: null };
}

// --- start / stop ------------------------------------------------------------------------------

async function start() {
  const source = $("source").value;
  const texts = $("concepts").value.split(",").map((s) => s.trim()).filter(Boolean);
  const streamId = source === "stream" ? $("streams").value || $("stream-id").value : $("stream-id").value;
  if (!streamId) throw new Error("choose a stream");
  concepts.clear();
  objects.clear();
  current = { streamId, publisher: null, viewer: null, timer: null };
  if (source === "server") {
    current.created = streamId;
    await api("/v1/streams", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ source: stats.model.default_source, stream_id: streamId, concepts: texts.map((text) => ({ text })) }),
    });
  } else if (source !== "stream") {
    const media = await mediaFor(source);
    current.timer = media.timer;
    const query = new URLSearchParams();
    for (const text of texts) query.append("concept", text);
    if ($("redact").checked) for (const text of texts) query.append("redact", text);
    current.publisher = await whipPublish(streamId, media.stream, { query: `?${query}`, headers: auth });
  } else {
    for (const text of texts) {
      await api(`/v1/streams/${encodeURIComponent(streamId)}/concepts`, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ text }),
      });
    }
  }
  current.viewer = await whepView(streamId, { headers: auth, onTrack: showVideo, onEvent: onEvent });
  // ConceptsChanged is only sent on a change: a viewer that joins later asks for the table once.
  const table = await api(`/v1/streams/${encodeURIComponent(streamId)}/concepts`);
  for (const c of table.concepts) if (!concepts.has(c.concept_id)) concepts.set(c.concept_id, c.text ?? `exemplar ${c.concept_id}`);
  nothing.setConcepts([...concepts.keys()], Date.now());
  stats.running = true;
  $("start").disabled = true;
  $("stop").disabled = false;
}

async function stop() {
  const c = current;
  current = null;
  stats.running = false;
  if (c?.timer) clearInterval(c.timer);
  await c?.viewer?.stop();
  await c?.publisher?.stop();
  if (c?.created) await api(`/v1/streams/${encodeURIComponent(c.created)}`, { method: "DELETE" }).catch(() => {});
  showNothing([]);
  $("video").srcObject = null;
  $("start").disabled = false;
  $("stop").disabled = true;
  $("state").textContent = "idle";
}

function showVideo(mediaStream) {
  const video = $("video");
  video.srcObject = mediaStream;
  const count = () => {
    stats.videoFrames += 1;
    $("video-frames").textContent = stats.videoFrames;
    video.requestVideoFrameCallback(count);
  };
  video.requestVideoFrameCallback(count);
}

// --- events ------------------------------------------------------------------------------------

function onEvent(bytes) {
  let event;
  try {
    event = parseEvent(bytes);
  } catch (error) {
    fail(error);
    return;
  }
  stats.events += 1;
  const handler = HANDLERS[event.type];
  if (handler) handler(event);
}

const HANDLERS = {
  hello: (e) => { stats.hello = e; },
  error: (e) => fail(new Error(`engine: ${e.message}`)),
  concepts_changed: (e) => {
    concepts.clear();
    for (const c of e.concepts) concepts.set(c.conceptId, c.text ?? `exemplar ${c.conceptId}`);
    nothing.setConcepts([...concepts.keys()], Date.now());
  },
  object_started: (e) => {
    objects.set(e.objectId, { conceptId: e.conceptId, score: 0, state: "tentative", startedMs: Date.now(), endedMs: null });
  },
  object_ended: (e) => {
    const o = objects.get(e.objectId);
    if (o) Object.assign(o, { endedMs: Date.now(), state: e.reason });
    renderObjects();
  },
  frame_result: (e) => {
    stats.frameResults += 1;
    const pixels = drawResult($("overlay"), e, (id) => (id == null ? "click" : concepts.get(id) ?? `concept ${id}`));
    if (e.objects.length) {
      stats.framesWithMasks += 1;
      stats.maskPixels += pixels;
    }
    for (const obj of e.objects) {
      const o = objects.get(obj.objectId) ?? { conceptId: obj.conceptId, startedMs: Date.now(), endedMs: null };
      objects.set(obj.objectId, { ...o, score: obj.score, state: obj.state });
    }
    showNothing(nothing.onFrame(e.objects, Date.now()));
    stats.lastLatencyMs = Date.now() - e.capturedNs / 1e6;   // same machine clock as the engine
    $("event-latency").textContent = `${stats.lastLatencyMs.toFixed(0)} ms (capture → page)`;
    renderObjects();
  },
  stream_status: (e) => {
    $("state").textContent = e.state;
    $("fps").textContent = `${e.fpsIn.toFixed(1)} / ${e.fpsOut.toFixed(1)}`;
    $("latency").textContent = `${e.latencyP50.toFixed(0)} / ${e.latencyP99.toFixed(0)} ms`;
  },
};

function showNothing(ids) {
  const texts = ids.map((id) => concepts.get(id) ?? `concept ${id}`);
  stats.nothingFound = texts;
  const banner = $("nothing");
  banner.hidden = texts.length === 0;
  const known = stats.model?.known_concepts;
  const hint = known ? ` This model knows: ${known.slice(0, 12).join(", ")}${known.length > 12 ? ", ..." : ""}.` : "";
  banner.textContent = texts.length ? `Nothing found for ${texts.map((t) => `"${t}"`).join(", ")} in the last 5 s.${hint}` : "";
}

const MAX_ENDED_ROWS = 20;

function renderObjects() {
  const now = Date.now();
  const ended = [...objects].filter(([, o]) => o.endedMs !== null);
  for (const [id] of ended.slice(0, Math.max(0, ended.length - MAX_ENDED_ROWS))) objects.delete(id);
  const rows = [...objects].sort(([a], [b]) => b - a).map(([id, o]) => {
    const [r, g, b] = colourOf(id);
    const lifetime = (((o.endedMs ?? now) - o.startedMs) / 1000).toFixed(1);
    const tr = document.createElement("tr");
    if (o.endedMs !== null) tr.className = "ended";
    const swatch = `<span class="swatch" style="background:rgb(${r},${g},${b})"></span>`;
    const concept = o.conceptId == null ? "click" : concepts.get(o.conceptId) ?? o.conceptId;
    tr.innerHTML = `<td>${swatch}#${id}</td><td></td><td>${o.score.toFixed(2)}</td><td>${lifetime} s</td><td>${o.state}</td>`;
    tr.children[1].textContent = concept;   // user text: never as HTML
    return tr;
  });
  $("objects").tBodies[0].replaceChildren(...rows);
}

// --- wiring ------------------------------------------------------------------------------------

async function listStreams() {
  const { streams } = await api("/v1/streams");
  $("streams").replaceChildren(...streams.filter((s) => s.state !== "ended").map((s) => new Option(`${s.stream_id} (${s.state})`, s.stream_id)));
}

$("source").addEventListener("change", () => {
  const picking = $("source").value === "stream";
  $("stream-pick").hidden = !picking;
  if (picking) listStreams().catch(fail);
});
$("controls").addEventListener("submit", (e) => {
  e.preventDefault();
  $("error").textContent = "";
  start().catch((error) => { fail(error); stop(); });
});
$("stop").addEventListener("click", () => stop().catch(fail));
window.addEventListener("pagehide", () => { if (current) stop(); });

// The model's defaults first (a scene and a prompt it answers), then what the URL asks for.
async function applyModel() {
  const model = await api("/v1/model").catch((error) => { fail(error); return null; });
  stats.model = model;
  if (model?.default_source) {
    const option = document.querySelector('#source option[value="server"]');
    option.hidden = false;
    option.textContent = `${model.default_source} (the model's scene, opened by the engine)`;
    $("source").value = "server";
    $("stream-id").value = "scene";
  }
  if (model?.default_prompt) $("concepts").value = model.default_prompt;
  if (model?.known_concepts) {
    $("known").hidden = false;
    $("known-list").replaceChildren(...model.known_concepts.map((text) => {
      const li = document.createElement("li");
      li.textContent = text;   // model text: never as HTML
      li.addEventListener("click", () => { $("concepts").value = text; });
      return li;
    }));
  }
}

applyModel().finally(() => {
  for (const [name, input] of [["source", "source"], ["stream", "stream-id"], ["concepts", "concepts"]]) {
    if (params.has(name)) $(input).value = params.get(name);
  }
  if (params.get("redact") === "1") $("redact").checked = true;
  $("source").dispatchEvent(new Event("change"));
  stats.ready = true;
  if (params.get("autostart") === "1") $("controls").requestSubmit();
});
