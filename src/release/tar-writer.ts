import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { Header, Pax } from 'tar';

const gzipAsync = promisify(gzip);

/** Every entry gets the same time, so the bytes depend on the content only. */
export const BUNDLE_MTIME = new Date(0);
const BLOCK = 512;
/** Byte 9 of a gzip header names the OS that wrote it; "unknown" keeps bundles platform-independent. */
const GZIP_OS_BYTE = 9;
const GZIP_OS_UNKNOWN = 255;

/**
 * A deterministic `.tar.gz` of regular files, in the order given: fixed mode
 * 0644 and mtime, uid/gid 0, no user or group names, no directory entries;
 * a pax header only for paths ustar cannot hold. Same entries → same bytes
 * (with the same zlib: the release hash, not the bundle bytes, is the identity).
 */
export async function tarGz(entries: Iterable<readonly [string, Uint8Array]>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (const [path, bytes] of entries) {
    const header = new Header({ path, mode: 0o644, uid: 0, gid: 0, size: bytes.length, mtime: BUNDLE_MTIME, type: 'File', uname: '', gname: '' });
    const block = Buffer.alloc(BLOCK);
    if (header.encode(block, 0)) parts.push(new Pax({ path }).encode());
    parts.push(block, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length));
    const pad = (BLOCK - (bytes.length % BLOCK)) % BLOCK;
    if (pad > 0) parts.push(Buffer.alloc(pad));
  }
  parts.push(Buffer.alloc(2 * BLOCK));
  const gz = await gzipAsync(Buffer.concat(parts), { level: 9 });
  gz[GZIP_OS_BYTE] = GZIP_OS_UNKNOWN;
  return gz;
}
