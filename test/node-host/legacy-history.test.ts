import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { NodeHost } from '../../src/runtime/node-host/node-host.js';
import { DEMO_RELEASES } from '../helpers/repo-paths.js';
import { testdir } from '../helpers/testdir.js';

describe('a state directory written by relup 0.1 (history format 1, no hashes)', () => {
  it('boots, records the hashes of its installed bundles, and writes format 2', { timeout: 30_000 }, async () => {
    const dir = await testdir();
    const stateDir = join(dir, 'state');
    let host = await NodeHost.start({ release: join(DEMO_RELEASES, '1.2.2'), stateDir, config: { port: 0, tickMs: 3_600_000 } });
    const hash = host.status().hash;
    await host.stop();
    const v2 = JSON.parse(await readFile(join(stateDir, 'history.json'), 'utf8'));
    await writeFile(join(stateDir, 'history.json'), JSON.stringify({ format: 1, name: 'demo', current: '1.2.2', permanent: '1.2.2', previous: ['1.2.3'], events: v2.events }));
    host = await NodeHost.start({ stateDir, config: { port: 0, tickMs: 3_600_000 } });
    try {
      expect(host.status()).toMatchObject({ version: '1.2.2', permanent: '1.2.2', previous: [], installed: ['1.2.2'] });
    } finally {
      await host.stop();
    }
    expect(JSON.parse(await readFile(join(stateDir, 'history.json'), 'utf8'))).toMatchObject({ format: 2, installed: { '1.2.2': hash } });
  });
});
