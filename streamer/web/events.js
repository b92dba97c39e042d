// Wire events (protocols/events.py, one msgpack map per event) -> plain JS objects with readable
// names. Unknown tags come back as {type, fields} so a newer engine never breaks the page.

import { decode } from "./msgpack.js";

export const STREAM_STATES = ["unknown", "connecting", "live", "reconnecting", "gap", "ended", "failed"];
export const OBJECT_STATES = ["unknown", "tentative", "confirmed"];
export const END_REASONS = ["unknown", "lost", "removed", "suppressed", "stream_ended"];

const objectMask = (o) => ({
  objectId: o.id, conceptId: o.c, score: o.sc, box: o.box, area: o.a,
  rle: o.rle, state: OBJECT_STATES[o.st] ?? "unknown",
});

const PARSERS = {
  hello: (m) => ({ protocolVersion: m.pv, engineVersion: m.ev, capabilities: m.caps }),
  error: (m) => ({ code: m.code, message: m.msg, streamId: m.s }),
  stream_started: (m) => ({ streamId: m.s, width: m.w, height: m.h, fps: m.fps, timeBase: m.tb, source: m.src }),
  frame_result: (m) => ({
    streamId: m.s, seq: m.q, pts: m.pts, timeBase: m.tb, capturedNs: m.cap, publishedNs: m.pub,
    width: m.w, height: m.h, objects: m.o.map(objectMask),
  }),
  object_started: (m) => ({ streamId: m.s, objectId: m.id, conceptId: m.c, seq: m.q }),
  object_ended: (m) => ({ streamId: m.s, objectId: m.id, seq: m.q, reason: END_REASONS[m.r] ?? "unknown" }),
  concepts_changed: (m) => ({
    streamId: m.s,
    concepts: m.cs.map((c) => ({ conceptId: c.id, text: c.text, exemplars: c.ex, thresholds: c.th })),
  }),
  stream_status: (m) => ({
    streamId: m.s, state: STREAM_STATES[m.st] ?? "unknown", fpsIn: m.fin, fpsOut: m.fout,
    dropped: m.drop, latencyP50: m.p50, latencyP99: m.p99, subscriberDropped: m.sub ?? 0,
  }),
};

export function parseEvent(bytes) {
  const m = decode(bytes);
  if (m === null || typeof m !== "object" || typeof m.t !== "string") throw new Error("not an event");
  const parse = PARSERS[m.t];
  return parse ? { type: m.t, version: m.v, ...parse(m) } : { type: m.t, version: m.v, fields: m };
}
