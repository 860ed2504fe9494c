import { execFileSync } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { deflateRawSync, gzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { readBundleBytes, readReleaseFiles } from '../../src/release/release-files.js';
import { unpackBundle } from '../../src/release/unpack-bundle.js';
import { demoCopy, runCli } from '../helpers/run-cli.js';
import { startNodeProcess, type NodeProcess } from '../helpers/node-process.js';
import { testdir } from '../helpers/testdir.js';
import { demoImage, planScript } from '../runtime/helpers/release-image.js';
import { rawTar, rawTarGz, releaseYaml, type RawEntry } from './fixtures.js';

const ok: RawEntry[] = [
  { path: 'release.yaml', body: releaseYaml() },
  { path: 'main.js', body: 'export const x = 1;\n' },
];
const evil = rawTarGz([{ path: 'evil.js', body: 'process.exit(66)\n' }]);
const codes = (read: { diagnostics: { code: string }[] }) => read.diagnostics.map((d) => d.code);

const nodes: NodeProcess[] = [];
afterEach(async () => {
  await Promise.all(nodes.splice(0).map((n) => n.stop()));
});

/** A gzip member with the given header flags and fields, holding `data` (RFC 1952 by hand). */
function gzipWith(data: Buffer, fields: { name?: string; comment?: string; extra?: Buffer }): Buffer {
  const plain = gzipSync(data);
  let flags = 0;
  const parts: Buffer[] = [];
  if (fields.extra !== undefined) {
    flags |= 0x04;
    const len = Buffer.alloc(2);
    len.writeUInt16LE(fields.extra.length);
    parts.push(len, fields.extra);
  }
  if (fields.name !== undefined) {
    flags |= 0x08;
    parts.push(Buffer.from(`${fields.name}\0`, 'latin1'));
  }
  if (fields.comment !== undefined) {
    flags |= 0x10;
    parts.push(Buffer.from(`${fields.comment}\0`, 'latin1'));
  }
  const head = Buffer.from(plain.subarray(0, 10));
  head[3] = flags;
  return Buffer.concat([head, ...parts, plain.subarray(10)]);
}

describe('every byte of a bundle is accounted for (issue 9.3)', () => {
  it.each([
    ['another gzip member (cat a.tar.gz b.tgz)', () => Buffer.concat([rawTarGz(ok), evil])],
    ['garbage after the gzip member', () => Buffer.concat([rawTarGz(ok), Buffer.from('hidden payload')])],
    ['zero bytes after the gzip member', () => Buffer.concat([rawTarGz(ok), Buffer.alloc(512)])],
    ['one byte after the gzip member', () => Buffer.concat([rawTarGz(ok), Buffer.from([0x1f])])],
    ['a second tar archive after the end marker, inside the same member', () => gzipSync(Buffer.concat([rawTar(ok), rawTar([{ path: 'evil.js', body: 'x' }])]))],
    ['a non-zero byte in the padding after the end marker', () => gzipSync(Buffer.concat([rawTar(ok), Buffer.alloc(4096), Buffer.from([1]), Buffer.alloc(511)]))],
  ])('refuses %s, from a file and from memory, and writes nothing', async (_what, make) => {
    const bytes = make();
    const dir = await testdir({ 'b.tar.gz': bytes });
    expect(codes(await readReleaseFiles(join(dir, 'b.tar.gz')))).toEqual(['bundle-trailing-data']);
    expect(codes(await readBundleBytes(bytes))).toEqual(['bundle-trailing-data']);
    const target = join(dir, 'out');
    expect(codes(await unpackBundle(join(dir, 'b.tar.gz'), target))).toEqual(['bundle-trailing-data']);
    expect(await readdir(dir)).toEqual(['b.tar.gz']);
  });

  it.each([
    ['no end-of-archive marker', () => gzipSync(rawTar(ok, { end: false }))],
    ['a deflate stream with no gzip trailer', () => rawTarGz(ok).subarray(0, -8)],
    ['a wrong CRC-32 in the trailer', () => {
      const b = Buffer.from(rawTarGz(ok));
      b[b.length - 8]! ^= 0xff;
      return b;
    }],
    ['a wrong length in the trailer', () => {
      const b = Buffer.from(rawTarGz(ok));
      b[b.length - 1]! ^= 0x01;
      return b;
    }],
    ['reserved gzip flags', () => {
      const b = Buffer.from(rawTarGz(ok));
      b[3] = 0x20;
      return b;
    }],
    ['a raw deflate stream without a gzip header', () => deflateRawSync(rawTar(ok))],
  ])('refuses %s as bundle-corrupt', async (_what, make) => {
    expect(codes(await readBundleBytes(make()))).toEqual(['bundle-corrupt']);
  });

  it('refuses gzip header fields that can hide data: an extra field, a comment, a long file name', async () => {
    const tar = rawTar(ok);
    expect(codes(await readBundleBytes(gzipWith(tar, { extra: Buffer.from('AB\x02\x00hi') })))).toEqual(['bundle-corrupt']);
    expect(codes(await readBundleBytes(gzipWith(tar, { comment: 'payload' })))).toEqual(['bundle-corrupt']);
    expect(codes(await readBundleBytes(gzipWith(tar, { name: 'x'.repeat(256) })))).toEqual(['bundle-corrupt']);
  });

  it('accepts a short file name in the gzip header and the record padding tar tools write', { timeout: 30_000 }, async () => {
    const withName = gzipWith(Buffer.concat([rawTar(ok), Buffer.alloc(8192)]), { name: 'b.tar' });
    const read = await readBundleBytes(withName);
    expect(codes(read)).toEqual([]);
    expect([...read.value!.files.keys()]).toEqual(['main.js', 'release.yaml']);
    expect(read.value!.bundleBytes?.equals(withName)).toBe(true);

    // GNU tar pads to a 10 KiB record and gzip(1) stores the file name in the header.
    const src = await testdir({ 'release.yaml': releaseYaml(), 'main.js': 'x\n' });
    execFileSync('tar', ['-cf', join(src, 'b.tar'), '-C', src, 'release.yaml', 'main.js']);
    execFileSync('gzip', ['-9', '-N', join(src, 'b.tar')]);
    expect(codes(await readReleaseFiles(join(src, 'b.tar.gz')))).toEqual([]);
  });

  it('refuses `cat signed.tar.gz extra.tgz` in relup release verify with the public key', { timeout: 60_000 }, async () => {
    const dir = await demoCopy();
    await runCli(['keys', 'generate'], dir);
    await runCli(['release', 'pack', '1.2.3'], dir);
    expect((await runCli(['release', 'sign', '1.2.3', '--key', 'keys/relup.key'], dir)).exitCode).toBe(0);
    const bundle = join(dir, 'releases', 'demo-1.2.3.tar.gz');
    expect((await runCli(['release', 'verify', '1.2.3', '--public-key', 'keys/relup.pub'], dir)).exitCode).toBe(0);
    await writeFile(bundle, Buffer.concat([await readFile(bundle), evil]));
    const verify = await runCli(['release', 'verify', 'releases/demo-1.2.3.tar.gz', '--public-key', 'keys/relup.pub', '--json'], dir);
    expect(verify.exitCode).toBe(1);
    expect((JSON.parse(verify.stdout).diagnostics as { code: string }[]).map((d) => d.code)).toEqual(['bundle-trailing-data']);
  });

  it('makes a --public-key node refuse the appended bundle, install nothing, then install exactly the bytes it verified', { timeout: 60_000 }, async () => {
    const dir = await demoCopy();
    await runCli(['keys', 'generate'], dir);
    for (const v of ['1.2.2', '1.2.3']) {
      await runCli(['release', 'pack', v], dir);
      expect((await runCli(['release', 'sign', v, '--key', 'keys/relup.key'], dir)).exitCode).toBe(0);
    }
    const signed = await readFile(join(dir, 'releases', 'demo-1.2.3.tar.gz'));
    const state = join(dir, 'state');
    const node = await startNodeProcess(dir, { release: join(dir, 'releases', 'demo-1.2.2.tar.gz'), stateDir: state, publicKey: join(dir, 'keys', 'relup.pub') });
    nodes.push(node);
    const conn = await node.connect();
    try {
      const script = planScript(demoImage('1.2.2'), demoImage('1.2.3'));
      const refused = (await conn.request('apply', { script, bundle: Buffer.concat([signed, evil]).toString('base64') })) as { status: string; failure: { code: string; message: string } };
      expect(refused).toMatchObject({ status: 'refused', failure: { code: 'bundle-invalid' } });
      expect(refused.failure.message).toContain('bundle-trailing-data');
      expect(((await conn.request('status', {})) as { version: string }).version).toBe('1.2.2');
      expect((await readdir(join(state, 'releases'))).filter((n) => n.includes('1.2.3'))).toEqual([]);

      const applied = (await conn.request('apply', { script, bundle: signed.toString('base64') })) as { status: string };
      expect(applied.status).toBe('committed');
      expect((await readFile(join(state, 'releases', 'demo-1.2.3.tar.gz'))).equals(signed)).toBe(true);
    } finally {
      conn.close();
    }
  });
});
