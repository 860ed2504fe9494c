import { readdir, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { commandKey, decodeCache, defaultCacheDirs, encodeCache, pruneOtherBuilds } from '../../src/cli/code-cache.js';
import { testdir } from '../helpers/testdir.js';

/** The pure parts of the CLI's code cache; the whole of it runs through the real CLI in bundled-cli.test.ts. */
describe('code cache files', () => {
  const stamp = { size: 1234, mtimeMs: 1_700_000_000_123.5 };
  const payload = Buffer.from('v8 bytes, as far as this test cares');

  test('a file decodes to its payload for the source it was made from, and to a reason otherwise', () => {
    const file = encodeCache(payload, stamp);
    expect(decodeCache(file, stamp)).toEqual({ payload });
    expect(decodeCache(file, { ...stamp, size: 1235 })).toEqual({ problem: 'stale' });
    expect(decodeCache(file, { ...stamp, mtimeMs: stamp.mtimeMs + 1 })).toEqual({ problem: 'stale' });
    for (let i = 0; i < file.length; i++) {
      const damaged = Buffer.from(file);
      damaged[i]! ^= 0x01;
      // Every single-bit change is caught: in the magic or the CRC by them, in the payload by the CRC, in the stamp as stale.
      expect(decodeCache(damaged, stamp)).toHaveProperty('problem');
    }
    expect(decodeCache(file.subarray(0, 24), stamp)).toEqual({ problem: 'corrupt' });
  });

  test('each command (and subcommand) has its own cache; help, version and odd arguments share one', () => {
    expect(commandKey(['plan', '1.2.2', '1.2.3'])).toBe('plan');
    expect(commandKey(['status', '--target', 'run/demo.sock'])).toBe('status');
    expect(commandKey(['--config', 'x.yaml', 'apply'])).toBe('other');
    expect(commandKey(['node', 'start', '--release', 'releases/1.2.2'])).toBe('node-start');
    expect(commandKey(['release', 'pack', '1.2.3'])).toBe('release-pack');
    expect(commandKey(['plan', '--help'])).toBe('help');
    expect(commandKey(['--version'])).toBe('help');
    expect(commandKey(['../../etc/passwd'])).toBe('other');
  });

  test('beside the bundle first, then the user cache directory (XDG_CACHE_HOME when set)', () => {
    expect(defaultCacheDirs('/opt/relup/dist/cli/bundle', { XDG_CACHE_HOME: '/home/u/.cache-x' })).toEqual(['/opt/relup/dist/cli/bundle/code-cache', '/home/u/.cache-x/relup/code-cache']);
  });

  test("pruning removes other builds' files untouched for a week, and nothing else", async () => {
    const dir = await testdir({ 'aaaa-plan-v20.20.2-x64.v8': 'x', 'bbbb-plan-v20.20.2-x64.v8': 'x', 'bbbb-status-v20.20.2-x64.v8': 'x', 'cccc-plan-v20.20.2-x64.v8': 'x', 'notes.txt': 'x' });
    const old = new Date(Date.now() - 8 * 24 * 3600 * 1000);
    for (const name of ['aaaa-plan-v20.20.2-x64.v8', 'bbbb-plan-v20.20.2-x64.v8', 'notes.txt']) await utimes(join(dir, name), old, old);
    await writeFile(join(dir, 'cccc-plan-v20.20.2-x64.v8'), 'recent');
    pruneOtherBuilds(dir, 'aaaa-');
    expect((await readdir(dir)).sort()).toEqual(['aaaa-plan-v20.20.2-x64.v8', 'bbbb-status-v20.20.2-x64.v8', 'cccc-plan-v20.20.2-x64.v8', 'notes.txt']);
  });
});
