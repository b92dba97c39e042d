// WHIP (publish) and WHEP (view + events DataChannel) against the engine, without trickle ICE:
// the offer is sent once every local candidate is in it, as the engine answers in one go too.

const GATHER_MS = 2000;

async function gathered(pc) {
  if (pc.iceGatheringState === "complete") return;
  await new Promise((resolve) => {
    const done = () => { if (pc.iceGatheringState === "complete") resolve(); };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, GATHER_MS);   // a host without candidates must not hang the page
  });
}

async function exchange(pc, url, headers) {
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  const r = await fetch(url, {
    method: "POST", body: pc.localDescription.sdp,
    headers: { ...headers, "Content-Type": "application/sdp" },
  });
  const body = await r.text();
  if (r.status !== 201) {
    pc.close();
    let message = body;
    try { message = JSON.parse(body).error; } catch (_) { /* not JSON: keep the text */ }
    throw new Error(`${url}: ${r.status} ${message}`);
  }
  await pc.setRemoteDescription({ type: "answer", sdp: body });
  return new URL(r.headers.get("Location"), location.href).href;
}

function session(pc, resource, headers) {
  return {
    pc, resource,
    async stop() {  // DELETE first: a peer that hangs up before saying so looks like a drop
      await fetch(resource, { method: "DELETE", headers }).catch(() => {});
      pc.close();
    },
  };
}

export async function whipPublish(streamId, mediaStream, { query = "", headers = {}, codec = null } = {}) {
  const pc = new RTCPeerConnection({ iceServers: [] });
  for (const track of mediaStream.getVideoTracks()) {
    const transceiver = pc.addTransceiver(track, { direction: "sendonly" });
    if (codec && RTCRtpSender.getCapabilities) {
      const codecs = RTCRtpSender.getCapabilities("video").codecs.filter((c) => c.mimeType === `video/${codec}`);
      if (codecs.length) transceiver.setCodecPreferences(codecs);
    }
  }
  const resource = await exchange(pc, `/v1/whip/${encodeURIComponent(streamId)}${query}`, headers);
  return session(pc, resource, headers);
}

export async function whepView(streamId, { headers = {}, onTrack, onEvent }) {
  const pc = new RTCPeerConnection({ iceServers: [] });
  pc.addTransceiver("video", { direction: "recvonly" });
  const channel = pc.createDataChannel("events");   // ordered, reliable: events keep their order
  channel.binaryType = "arraybuffer";
  channel.onmessage = (message) => onEvent(new Uint8Array(message.data));
  pc.ontrack = (e) => onTrack(e.streams[0] ?? new MediaStream([e.track]));
  const resource = await exchange(pc, `/v1/whep/${encodeURIComponent(streamId)}`, headers);
  return { ...session(pc, resource, headers), channel };
}
