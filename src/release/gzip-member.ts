/**
 * One gzip member, read strictly (RFC 1952). Node's gunzip inflates every
 * member of a multi-member file and skips trailing zero bytes, so a signed
 * bundle with another `.tgz` appended after it would verify while the file
 * installed holds more than what was verified. A bundle is exactly one
 * member: this reads its header, and `checkGzipTrailer` checks that the
 * deflate stream, its CRC-32 and length end the file, with nothing after.
 * The only bytes no hash covers are the header's time, flags, OS byte and an
 * optional file name of at most 255 bytes.
 */

const ID1 = 0x1f;
const ID2 = 0x8b;
const CM_DEFLATE = 8;
const FHCRC = 0x02;
const FEXTRA = 0x04;
const FNAME = 0x08;
const FCOMMENT = 0x10;
const FRESERVED = 0xe0;
const FIXED_HEADER = 10;
const MAX_NAME = 255;
export const GZIP_TRAILER = 8;

/** The length of the gzip header at the start of `bytes`, or why it is not one. */
export function gzipHeaderLength(bytes: Uint8Array): { length: number } | { reason: string } {
  if (bytes.length < FIXED_HEADER) return { reason: bytes.length === 0 ? 'the file is empty' : 'the file is too short for a gzip header' };
  if (bytes[0] !== ID1 || bytes[1] !== ID2) return { reason: 'incorrect header check (not gzip)' };
  if (bytes[2] !== CM_DEFLATE) return { reason: `unknown compression method ${bytes[2]}` };
  const flags = bytes[3]!;
  if ((flags & FRESERVED) !== 0) return { reason: 'reserved gzip header flags are set' };
  // An extra field or a comment can hold any amount of data no tar tool shows and no manifest covers: refused.
  if ((flags & FEXTRA) !== 0) return { reason: 'the gzip header has an extra field, which a bundle may not have' };
  if ((flags & FCOMMENT) !== 0) return { reason: 'the gzip header has a comment, which a bundle may not have' };
  let at = FIXED_HEADER;
  if ((flags & FNAME) !== 0) {
    // gzip(1) stores the compressed file's name; a short one is accepted (it is not part of the release).
    const zero = bytes.indexOf(0, at);
    if (zero < 0) return { reason: 'truncated gzip header' };
    if (zero - at > MAX_NAME) return { reason: `the file name in the gzip header is longer than ${MAX_NAME} bytes` };
    at = zero + 1;
  }
  if ((flags & FHCRC) !== 0) at += 2;
  if (at > bytes.length) return { reason: 'truncated gzip header' };
  return { length: at };
}

/**
 * After the deflate stream that began at `bodyStart` consumed `consumed`
 * bytes and inflated to `size` bytes with CRC-32 `crc`: the 8-byte trailer
 * must match them and end the file. Returns what is wrong, or undefined.
 */
export function checkGzipTrailer(bytes: Uint8Array, bodyStart: number, consumed: number, crc: number, size: number): { code: 'trailing' | 'corrupt'; reason: string } | undefined {
  const trailerAt = bodyStart + consumed;
  const after = bytes.length - trailerAt - GZIP_TRAILER;
  if (after < 0) return { code: 'corrupt', reason: 'the gzip trailer is missing (the file is truncated)' };
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  if (view.readUInt32LE(trailerAt) !== crc >>> 0) return { code: 'corrupt', reason: 'gzip CRC-32 mismatch' };
  if (view.readUInt32LE(trailerAt + 4) !== size % 2 ** 32) return { code: 'corrupt', reason: 'gzip length mismatch' };
  if (after > 0) return { code: 'trailing', reason: `${after} byte${after === 1 ? '' : 's'} follow the gzip member, at offset ${trailerAt + GZIP_TRAILER}` };
  return undefined;
}
