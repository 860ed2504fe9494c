import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { demoCopy, runCli } from '../helpers/run-cli.js';
import { startNodeProcess } from '../helpers/node-process.js';

describe('a node killed during an upgrade', { timeout: 60_000 }, () => {
  it('restarts on its permanent release, records the attempt as interrupted, and cleans up torn temp files', async () => {
    const dir = await demoCopy();
    const stateDir = join(dir, 'state');
    // Step index 11 (the 12th step) of the demo upgrade suspends the game process: the node dies there.
    const doomed = await startNodeProcess(dir, { release: 'releases/1.2.2', stateDir, env: { RELUP_FAULTS: '11:exit' } });
    const apply = await runCli(['apply', '--target', doomed.socket, '--to', '1.2.3'], dir);
    expect(apply.exitCode).toBe(1);
    expect(apply.stderr).toMatch(/closed the connection/);
    await doomed.child;
    await writeFile(join(stateDir, '.00000000-0000-4000-8000-000000000000.tmp'), '{"torn":');

    const again = await startNodeProcess(dir, { stateDir });
    try {
      const status = JSON.parse((await runCli(['status', '--target', again.socket, '--json'], dir)).stdout);
      expect(status).toMatchObject({ version: '1.2.2', permanent: '1.2.2', upgrading: false });
      expect(status.history.map((e: { op: string; status: string }) => `${e.op}:${e.status}`)).toEqual(['boot:booted', 'apply:interrupted', 'boot:booted']);
      expect((await readdir(stateDir)).filter((n) => n.endsWith('.tmp'))).toEqual([]);
    } finally {
      await again.stop();
    }
  });
});
