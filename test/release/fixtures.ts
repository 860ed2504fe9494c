import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { Header, type HeaderData } from 'tar';
import { DEMO_RELEASES } from '../helpers/repo-paths.js';
import type { Tree } from '../helpers/testdir.js';

export const DEMO_123 = join(DEMO_RELEASES, '1.2.3');
export const DEMO_122 = join(DEMO_RELEASES, '1.2.2');

/** The files of a demo release as a testdir tree, to copy and edit. */
export async function demoTree(dir = DEMO_123): Promise<Tree> {
  const tree: Tree = {};
  for (const name of (await readdir(dir)).sort()) tree[name] = await readFile(join(dir, name));
  return tree;
}

/** A small valid release.yaml, for trees made up in a test. */
export function releaseYaml(version = '1.0.0', extra = ''): string {
  return `name: tiny\nversion: ${version}\nruntime: node\nmodules:\n  main:\n    file: main.js\n${extra}`;
}

export interface RawEntry {
  path: string;
  type?: NonNullable<HeaderData['type']>;
  body?: string | Uint8Array;
  linkpath?: string;
  /** Declared size, when it should differ from the body's (a lying header). */
  size?: number;
}

/** Tar bytes written header by header with tar's Header, so a test can make any entry a hostile tool could. */
export function rawTar(entries: RawEntry[], { end = true } = {}): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const body = Buffer.from(e.body ?? '');
    const header = new Header({
      path: e.path,
      type: e.type ?? 'File',
      mode: 0o644,
      size: e.size ?? body.length,
      mtime: new Date(0),
      uid: 0,
      gid: 0,
      ...(e.linkpath === undefined ? {} : { linkpath: e.linkpath }),
    });
    const block = Buffer.alloc(512);
    header.encode(block, 0);
    parts.push(block, body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  if (end) parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

export function rawTarGz(entries: RawEntry[]): Buffer {
  return gzipSync(rawTar(entries));
}
