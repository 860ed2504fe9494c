import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { readBundleBytes } from '../../src/release/release-files.js';
import { tarGz } from '../../src/release/tar-writer.js';
import { demoCopy, runCli } from '../helpers/run-cli.js';
import { startNodeProcess, type NodeProcess } from '../helpers/node-process.js';
import { demoFiles, demoImage, planScript } from '../runtime/helpers/release-image.js';

/** Issue 9 item 10: an uploaded bundle is checked against the script's release hash before anything in it is parsed. */

const nodes: NodeProcess[] = [];
afterEach(async () => {
  await Promise.all(nodes.splice(0).map((n) => n.stop()));
});

/** A release.yaml that costs a quadratic parse with yaml's uniqueKeys (the review's 184 KiB case) and is not valid YAML at its end. */
const HOSTILE_YAML = `name: demo\nversion: 1.2.3\nruntime: node\nmodules:\n${Array.from({ length: 8_000 }, (_, i) => `  m${i}: {file: m.js}`).join('\n')}\n  broken: [\n`;

async function hostileBundle(): Promise<Buffer> {
  const files = [...demoFiles('1.2.3')].filter(([p]) => p !== 'release.yaml');
  return tarGz([['release.yaml', Buffer.from(HOSTILE_YAML)], ...files]);
}

describe('uploaded bundles are checked against the script before parsing', () => {
  it('refuses other content with bundle-release-hash-unexpected and nothing from its release.yaml or manifest', async () => {
    const expected = demoImage('1.2.3').release.hash;
    const read = await readBundleBytes(await hostileBundle(), { displayPath: 'upload', expectedReleaseHash: expected });
    expect(read.value).toBeUndefined();
    expect(read.diagnostics.map((d) => d.code)).toEqual(['bundle-release-hash-unexpected']);
    expect(read.diagnostics[0]!.file).toBe('upload');
  });

  it('accepts the bundle the script was planned from', { timeout: 30_000 }, async () => {
    const dir = await demoCopy();
    await runCli(['release', 'pack', '1.2.3'], dir);
    const bytes = await readFile(join(dir, 'releases', 'demo-1.2.3.tar.gz'));
    const read = await readBundleBytes(bytes, { expectedReleaseHash: demoImage('1.2.3').release.hash });
    expect(read.diagnostics).toEqual([]);
  });

  it('makes a real node refuse a bundle the script does not name before parsing its release.yaml', { timeout: 60_000 }, async () => {
    const dir = await demoCopy();
    await runCli(['release', 'pack', '1.2.2'], dir);
    const node = await startNodeProcess(dir, { release: join(dir, 'releases', 'demo-1.2.2.tar.gz') });
    nodes.push(node);
    const conn = await node.connect();
    try {
      const script = planScript(demoImage('1.2.2'), demoImage('1.2.3'));
      const answer = (await conn.request('apply', { script, bundle: (await hostileBundle()).toString('base64') })) as { status: string; failure: { code: string; message: string } };
      expect(answer).toMatchObject({ status: 'refused', failure: { code: 'bundle-invalid' } });
      // Before: the node parsed release.yaml (quadratically) and answered with its yaml-syntax error and a missing manifest.
      expect(answer.failure.message).toContain('bundle-release-hash-unexpected');
      expect(answer.failure.message).not.toMatch(/yaml-|bundle-manifest/);
      expect(((await conn.request('status', {})) as { version: string }).version).toBe('1.2.2');
    } finally {
      conn.close();
    }
  });
});
