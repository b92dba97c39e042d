// Live masks over the video: each object's mask (decoded from its RLE), its box, and a label with
// its ID, concept and score, in a colour of its own that stays the same for the object's lifetime.

import { paint } from "./rle.js";

export function colourOf(objectId) {
  const hue = (objectId * 137.508) % 360;     // golden angle: neighbouring IDs look different
  return hslToRgb(hue / 360, 0.85, 0.55);
}

function hslToRgb(h, s, l) {
  const f = (n) => {
    const k = (n + h * 12) % 12;
    const a = s * Math.min(l, 1 - l);
    return Math.round(255 * (l - a * Math.max(-1, Math.min(k - 3, 9 - k, 1))));
  };
  return [f(0), f(8), f(4)];
}

// Draw one FrameResult on `canvas` (resized to the frame); returns the mask pixels drawn.
export function drawResult(canvas, result, conceptText) {
  if (canvas.width !== result.width || canvas.height !== result.height) {
    canvas.width = result.width;
    canvas.height = result.height;
  }
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(result.width, result.height);
  let pixels = 0;
  for (const obj of result.objects) {
    pixels += paint(obj.rle, image.data, result.width, [...colourOf(obj.objectId), 110]);
  }
  ctx.putImageData(image, 0, 0);
  ctx.font = `${Math.max(12, Math.round(result.height / 30))}px system-ui, sans-serif`;
  ctx.textBaseline = "bottom";
  for (const obj of result.objects) {
    const [x0, y0, x1, y1] = obj.box;
    const [r, g, b] = colourOf(obj.objectId);
    ctx.strokeStyle = `rgb(${r},${g},${b})`;
    ctx.lineWidth = 2;
    ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
    const label = `#${obj.objectId} ${conceptText(obj.conceptId)} ${obj.score.toFixed(2)}`;
    const width = ctx.measureText(label).width + 8;
    const top = Math.max(y0, parseInt(ctx.font, 10) + 4);
    ctx.fillStyle = `rgb(${r},${g},${b})`;
    ctx.fillRect(x0, top - parseInt(ctx.font, 10) - 4, width, parseInt(ctx.font, 10) + 4);
    ctx.fillStyle = "#000";
    ctx.fillText(label, x0 + 4, top - 2);
  }
  return pixels;
}
