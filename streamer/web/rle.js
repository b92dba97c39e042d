// COCO compressed RLE (pycocotools' counts string) -> masks, as protocols/rle.py writes it.
// Runs alternate background/foreground starting with background, over the mask read column-major
// (down the first column, then the next). Each run is signed 5-bit groups, least significant first,
// 0x20 = "more groups follow", offset by 48; from the third run on it is a delta to the run two back.

export function runs(counts) {
  const out = [];
  for (let p = 0; p < counts.length; ) {
    let x = 0, k = 0, c;
    do {
      if (p >= counts.length) throw new Error("RLE counts end inside a run");
      c = counts[p++] - 48;
      x |= (c & 0x1f) << (5 * k++);
    } while (c & 0x20);
    if (c & 0x10) x |= -1 << (5 * k);                 // sign-extend the last group
    if (out.length > 2) x += out[out.length - 2];
    out.push(x);
  }
  return out;
}

// Paint the mask's pixels into `rgba` (an ImageData's Uint8ClampedArray of width w), colour [r,g,b,a].
// Returns the number of pixels set.
export function paint(rle, rgba, w, colour) {
  const [h, width] = rle.size;
  if (width !== w) throw new Error(`mask is ${width} wide, the canvas ${w}`);
  let i = 0, on = false, area = 0;
  for (const run of runs(rle.counts)) {
    if (on) {
      for (let j = i; j < i + run; j++) {
        const o = ((j % h) * w + Math.floor(j / h)) * 4;
        rgba[o] = colour[0]; rgba[o + 1] = colour[1]; rgba[o + 2] = colour[2]; rgba[o + 3] = colour[3];
      }
      area += run;
    }
    i += run;
    on = !on;
  }
  if (i !== h * w) throw new Error(`RLE covers ${i} pixels, the mask has ${h * w}`);
  return area;
}

// The mask as a Uint8Array of h*w 0/1 values, row-major (for tests and hit-testing).
export function toArray(rle) {
  const [h, w] = rle.size;
  const out = new Uint8Array(h * w);
  let i = 0, on = false;
  for (const run of runs(rle.counts)) {
    if (on) for (let j = i; j < i + run; j++) out[(j % h) * w + Math.floor(j / h)] = 1;
    i += run;
    on = !on;
  }
  return out;
}
