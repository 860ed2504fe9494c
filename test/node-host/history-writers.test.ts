import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEMO_RELEASES } from '../helpers/repo-paths.js';
import { demoCopy, runCli } from '../helpers/run-cli.js';
import { startNodeProcess, type NodeProcess } from '../helpers/node-process.js';

/**
 * Issue 9.9: every writer of the history goes through one queue, and status
 * reports a change only once it is on disk. After 40 pipelined make_permanent
 * requests, status, history.json and the release a restart boots agree — and
 * the last request wins, since requests take effect in the order they came.
 */
describe('the history has one writer', { timeout: 120_000 }, () => {
  it('40 pipelined make_permanent requests, 5 rounds: status = history.json = what a restart boots = the last request', async () => {
    const dir = await demoCopy();
    const stateDir = join(dir, 'state');
    let node: NodeProcess = await startNodeProcess(dir, { release: join(DEMO_RELEASES, '1.2.2'), stateDir, set: { tickMs: 3_600_000 } });
    try {
      const up = await runCli(['apply', '--target', node.socket, '--to', '1.2.3', '--no-permanent'], dir);
      expect(up.exitCode, up.stderr).toBe(0);
      const rounds: string[] = [];
      for (let round = 0; round < 5; round++) {
        const c = await node.connect();
        // A different last version each round, and a mix of both before it.
        const versions = Array.from({ length: 40 }, (_, i) => ((i * 7 + round) % 3 === 0 ? '1.2.2' : '1.2.3'));
        versions[39] = round % 2 === 0 ? '1.2.2' : '1.2.3';
        const answers = await Promise.all(versions.map((v) => c.request('make_permanent', { version: v })));
        expect(answers.at(-1)).toEqual({ permanent: versions[39] });
        const status = (await c.request('status', {})) as { permanent: string; version: string };
        c.close();
        const onDisk = JSON.parse(await readFile(join(stateDir, 'history.json'), 'utf8')) as { permanent: string; events: { op: string }[] };
        expect(status.permanent, `round ${round}`).toBe(versions[39]);
        expect(onDisk.permanent, `round ${round}`).toBe(status.permanent);
        expect(await node.stop()).toBe(0);
        node = await startNodeProcess(dir, { stateDir, set: { tickMs: 3_600_000 } });
        const booted = JSON.parse((await runCli(['status', '--target', node.socket, '--json'], dir)).stdout) as { version: string; permanent: string };
        expect(booted.version, `round ${round}`).toBe(status.permanent);
        expect(booted.permanent).toBe(status.permanent);
        rounds.push(`${versions[39]}→boots ${booted.version}`);
        // Get back to 1.2.3 running for the next round (a restart booted the permanent one).
        if (booted.version === '1.2.2') {
          const again = await runCli(['apply', '--target', node.socket, '--to', '1.2.3', '--no-permanent'], dir);
          expect(again.exitCode, again.stderr).toBe(0);
        }
      }
      console.log(`make_permanent x40 pipelined: ${rounds.join(', ')}`);
    } finally {
      await node.stop();
    }
  });
});
