import { Header, Pax } from 'tar';

const BLOCK = 512;
/** tar's parser ignores (and we refuse) meta entries over this size; their bodies are skipped, not parsed. */
const MAX_META = 1024 * 1024;
const META_TYPES = new Set(['ExtendedHeader', 'OldExtendedHeader', 'GlobalExtendedHeader', 'NextFileHasLongPath', 'OldGnuLongPath', 'NextFileHasLongLinkpath']);

/**
 * Where a tar archive ends, found block by block with tar's own Header and
 * Pax decoders, so it agrees with tar's parser on every header position.
 * tar's parser stops at the end-of-archive marker (two zero blocks) and
 * ignores whatever follows; relup must refuse what follows instead, since a
 * signature over the manifest says nothing about it. The caller feeds the
 * parser only the bytes up to `end`, and requires every byte after it to be
 * zero (the padding tar tools add to fill a record).
 */
export class TarFraming {
  /** Decompressed bytes seen so far. */
  private offset = 0;
  /** Offset just past the end-of-archive marker, once seen. */
  end: number | undefined;
  /** Headers of entries (not meta headers) seen: tar's parser must report as many. */
  entries = 0;
  private sawNull = false;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Bytes to take before the next header; `meta` when they must be kept and decoded. */
  private skip = 0;
  private meta: { type: string; size: number } | undefined;
  private ex: Record<string, unknown> | undefined;
  private gex: Record<string, unknown> | undefined;

  /** Take `chunk`; returns how many of its bytes belong to the archive (the rest follows its end). */
  push(chunk: Buffer): number {
    if (this.end !== undefined) return 0;
    let at = 0;
    while (at < chunk.length && this.end === undefined) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - at);
        if (this.meta !== undefined) this.keep(chunk.subarray(at, at + n));
        this.skip -= n;
        at += n;
        this.offset += n;
        if (this.skip === 0 && this.meta !== undefined) this.applyMeta();
        continue;
      }
      const need = BLOCK - this.pendingBytes;
      const n = Math.min(need, chunk.length - at);
      this.keep(chunk.subarray(at, at + n));
      at += n;
      this.offset += n;
      if (this.pendingBytes === BLOCK) this.header(this.take());
    }
    return at;
  }

  private keep(part: Buffer): void {
    this.pending.push(part);
    this.pendingBytes += part.length;
  }

  private take(): Buffer {
    const all = Buffer.concat(this.pending);
    this.pending = [];
    this.pendingBytes = 0;
    return all;
  }

  private header(block: Buffer): void {
    let header: Header;
    try {
      header = new Header(block, 0, this.ex as never, this.gex as never);
    } catch {
      return; // tar's parser warns on the same block and the bundle is refused as corrupt
    }
    if (header.nullBlock) {
      if (this.sawNull) this.end = this.offset;
      this.sawNull = true;
      return;
    }
    this.sawNull = false;
    const size = header.size ?? 0;
    const type = header.type ?? '';
    const blocks = BLOCK * Math.ceil(size / BLOCK);
    if (META_TYPES.has(type) && size > 0 && size <= MAX_META) {
      this.meta = { type, size };
      this.skip = blocks;
      return;
    }
    if (!META_TYPES.has(type)) {
      this.entries += 1;
      this.ex = undefined;
    }
    this.skip = blocks;
  }

  private applyMeta(): void {
    const { type, size } = this.meta!;
    this.meta = undefined;
    const text = this.take().subarray(0, size).toString();
    if (type === 'ExtendedHeader' || type === 'OldExtendedHeader') this.ex = Pax.parse(text, this.ex as never, false) as unknown as Record<string, unknown>;
    else if (type === 'GlobalExtendedHeader') this.gex = Pax.parse(text, this.gex as never, true) as unknown as Record<string, unknown>;
    else {
      const ex = this.ex ?? Object.create(null);
      this.ex = ex;
      ex[type === 'NextFileHasLongLinkpath' ? 'linkpath' : 'path'] = text.replace(/\0.*/, '');
    }
  }
}

/** The offset of the first non-zero byte in `bytes`, or -1. */
export function firstNonZero(bytes: Uint8Array): number {
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== 0) return i;
  return -1;
}
