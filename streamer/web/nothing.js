// Which concepts have found nothing for a while: the page says so, instead of a silent video.
// Pure (no DOM): feed it every frame_result with the page's clock; it answers the concept ids
// whose last object was seen `quietMs` ago or more (or that never found one in that long).

export class NothingFound {
  constructor(quietMs = 5000) {
    this.quietMs = quietMs;
    this.lastSeen = new Map();   // concept id -> ms of the latest frame with one of its objects
  }

  // The concept table changed (ids -> texts): new ones start their wait now, gone ones are dropped.
  setConcepts(ids, nowMs) {
    const wanted = new Set(ids);
    for (const id of [...this.lastSeen.keys()]) if (!wanted.has(id)) this.lastSeen.delete(id);
    for (const id of wanted) if (!this.lastSeen.has(id)) this.lastSeen.set(id, nowMs);
  }

  // One frame's objects ([{conceptId}, ...]); returns the ids quiet for quietMs or more, sorted.
  onFrame(objects, nowMs) {
    for (const o of objects) if (this.lastSeen.has(o.conceptId)) this.lastSeen.set(o.conceptId, nowMs);
    return [...this.lastSeen].filter(([, seen]) => nowMs - seen >= this.quietMs).map(([id]) => id).sort((a, b) => a - b);
  }
}
