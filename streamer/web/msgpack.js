// A small MessagePack decoder (the whole format except ext types, which our events never use).
// decode(Uint8Array | ArrayBuffer) -> value: maps become plain objects (keys are strings in our
// events), bin becomes Uint8Array, 64-bit integers become Numbers (exact below 2^53; nanosecond
// clocks keep ~0.25 us precision, plenty for latencies in ms).

const utf8 = new TextDecoder("utf-8", { fatal: true });

export class MsgpackError extends Error {}

export function decode(input) {
  const bytes = input instanceof Uint8Array ? input : new Uint8Array(input);
  const reader = new Reader(bytes);
  const value = reader.value();
  if (reader.pos !== bytes.length) throw new MsgpackError(`${bytes.length - reader.pos} bytes after the value`);
  return value;
}

class Reader {
  constructor(bytes) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = 0;
  }

  need(n) {
    if (this.pos + n > this.bytes.length) throw new MsgpackError("truncated message");
    const at = this.pos;
    this.pos += n;
    return at;
  }

  u8() { return this.view.getUint8(this.need(1)); }
  u16() { return this.view.getUint16(this.need(2)); }
  u32() { return this.view.getUint32(this.need(4)); }

  value() {
    const b = this.u8();
    if (b <= 0x7f) return b;                       // positive fixint
    if (b >= 0xe0) return b - 0x100;               // negative fixint
    if ((b & 0xf0) === 0x80) return this.map(b & 0x0f);
    if ((b & 0xf0) === 0x90) return this.array(b & 0x0f);
    if ((b & 0xe0) === 0xa0) return this.str(b & 0x1f);
    switch (b) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: return this.bin(this.u8());
      case 0xc5: return this.bin(this.u16());
      case 0xc6: return this.bin(this.u32());
      case 0xca: return this.view.getFloat32(this.need(4));
      case 0xcb: return this.view.getFloat64(this.need(8));
      case 0xcc: return this.u8();
      case 0xcd: return this.u16();
      case 0xce: return this.u32();
      case 0xcf: return Number(this.view.getBigUint64(this.need(8)));
      case 0xd0: return this.view.getInt8(this.need(1));
      case 0xd1: return this.view.getInt16(this.need(2));
      case 0xd2: return this.view.getInt32(this.need(4));
      case 0xd3: return Number(this.view.getBigInt64(this.need(8)));
      case 0xd9: return this.str(this.u8());
      case 0xda: return this.str(this.u16());
      case 0xdb: return this.str(this.u32());
      case 0xdc: return this.array(this.u16());
      case 0xdd: return this.array(this.u32());
      case 0xde: return this.map(this.u16());
      case 0xdf: return this.map(this.u32());
      default: throw new MsgpackError(`unsupported msgpack type 0x${b.toString(16)}`);
    }
  }

  str(n) { const at = this.need(n); return utf8.decode(this.bytes.subarray(at, at + n)); }
  bin(n) { const at = this.need(n); return this.bytes.slice(at, at + n); }

  array(n) {
    const out = new Array(n);
    for (let i = 0; i < n; i++) out[i] = this.value();
    return out;
  }

  map(n) {
    const out = {};
    for (let i = 0; i < n; i++) {
      const key = this.value();
      if (typeof key !== "string" && typeof key !== "number") throw new MsgpackError("map key is not a string");
      out[key] = this.value();
    }
    return out;
  }
}
