/**
 * The module a `.beam` file defines, read from its atom table (the first atom
 * is the module's name), so `relup check` can check a release's `.beam`
 * modules without starting Erlang. Handles OTP 25's atom chunk (one length
 * byte per atom) and OTP 26's (a negative count, lengths in compact-term form).
 */
export function beamModuleName(bytes: Uint8Array): { name: string } | { problem: string } {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  if (buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) return { problem: 'it is a compressed .beam; ship it uncompressed' };
  if (buf.length < 12 || buf.toString('latin1', 0, 4) !== 'FOR1' || buf.toString('latin1', 8, 12) !== 'BEAM') return { problem: 'it is not a BEAM file' };
  const end = Math.min(buf.length, 8 + buf.readUInt32BE(4));
  for (let at = 12; at + 8 <= end; ) {
    const id = buf.toString('latin1', at, at + 4);
    const size = buf.readUInt32BE(at + 4);
    const data = at + 8;
    if (data + size > end) break;
    if (id === 'AtU8' || id === 'Atom') return firstAtom(buf.subarray(data, data + size), id === 'AtU8' ? 'utf8' : 'latin1');
    at = data + size + ((4 - (size % 4)) % 4);
  }
  return { problem: 'it has no atom table' };
}

function firstAtom(chunk: Buffer, encoding: 'utf8' | 'latin1'): { name: string } | { problem: string } {
  if (chunk.length < 5) return { problem: 'its atom table is empty' };
  const count = chunk.readInt32BE(0);
  let at = 4;
  let length: number;
  if (count >= 0) {
    length = chunk[at]!;
    at += 1;
  } else {
    // Compact term encoding of a literal: 4-bit length in the high nibble, or 11 bits over two bytes.
    const b = chunk[at]!;
    if ((b & 0x08) === 0) {
      length = b >> 4;
      at += 1;
    } else if ((b & 0x10) === 0 && at + 1 < chunk.length) {
      length = ((b & 0xe0) << 3) | chunk[at + 1]!;
      at += 2;
    } else {
      return { problem: 'its atom table cannot be read' };
    }
  }
  if (length === 0 || at + length > chunk.length) return { problem: 'its atom table cannot be read' };
  return { name: chunk.toString(encoding, at, at + length) };
}
