import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { NodeHost } from '../../src/runtime/node-host/node-host.js';
import { readHistory } from '../../src/runtime/node-host/release-history.js';
import { DEMO, bundleOf, demoScript, fromOf, imageOf, releaseDirOf, removeReleaseDirs, tamperedImage } from './helpers/demo.js';
import { NODE_CONFIG } from './helpers/in-process.js';

const dirs: string[] = [];
afterAll(async () => {
  await removeReleaseDirs();
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

/**
 * Formerly the matrix's `real throw` cell at `verify_release`: an uploaded
 * bundle that is not the release the script was planned for. The host now
 * refuses it before the transaction starts (the upload is checked against the
 * script's release hash before anything in it is parsed), so no step runs:
 * nothing changes, nothing is recorded, the node keeps serving.
 */
test.each(['up', 'down'] as const)('a %s upload that differs from the planned release is refused before any step, and nothing changes', async (direction) => {
  const stateDir = join(await mkdtemp(join(tmpdir(), 'relup-fault-upload-')), 'state');
  dirs.push(stateDir);
  const host = await NodeHost.start({ release: await releaseDirOf(imageOf(DEMO, fromOf(direction))), stateDir, config: NODE_CONFIG, log: () => undefined });
  try {
    const before = await readHistory(stateDir);
    const states = JSON.stringify(host.node.states());
    const outcome = await host.apply({ script: demoScript(direction), bundle: await bundleOf(tamperedImage(direction)), dryRun: false, permanent: true });
    expect(outcome).toMatchObject({ status: 'refused', ok: false, version: fromOf(direction), failure: { code: 'bundle-invalid' } });
    expect(outcome.failure?.message).toContain('bundle-release-hash-unexpected');
    expect(outcome.journal).toEqual([]);
    expect(JSON.stringify(host.node.states())).toBe(states);
    expect(await readHistory(stateDir)).toEqual(before);
    expect(host.status()).toMatchObject({ version: fromOf(direction), upgrading: false });
  } finally {
    await host.stop();
  }
});
