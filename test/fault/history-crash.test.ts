import { randomUUID } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { execa } from 'execa';
import { afterAll, describe, expect, test } from 'vitest';
import { NodeHost } from '../../src/runtime/node-host/node-host.js';
import { readHistory, writeHistory, type History } from '../../src/runtime/node-host/release-history.js';
import { REPO } from '../helpers/repo-paths.js';
import { DEMO, UP, bundleOf, releaseDirOf, removeReleaseDirs, demoScript } from './helpers/demo.js';
import { NODE_CONFIG } from './helpers/in-process.js';
import { RealNode } from './helpers/real-node.js';
import { scratchProject } from './helpers/real-cells.js';

/**
 * The history is written temp file + fsync + rename + fsync of the directory
 * (release-history.ts). These tests kill writers in the middle of it and
 * check that what is left is always the old or the new history, whole.
 */

const dirs: string[] = [];
async function tempDir(prefix: string): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}
afterAll(async () => {
  await removeReleaseDirs();
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

const tmpFiles = async (dir: string) => (await readdir(dir)).filter((n) => n.endsWith('.tmp'));

describe('the release history survives crashes while it is written', () => {
  test('a torn or complete .tmp file left behind never replaces history.json, and the next start removes it', { timeout: 30_000 }, async () => {
    const stateDir = join(await tempDir('relup-fault-torn-'), 'state');
    const release = await releaseDirOf(DEMO.v122);
    let host = await NodeHost.start({ release, stateDir, config: NODE_CONFIG });
    await host.stop();
    const good = await readFile(join(stateDir, 'history.json'), 'utf8');
    const h = JSON.parse(good) as History;
    // What a crash leaves: a temp file cut short mid-write, and one written and synced but never renamed.
    const impostor = `${JSON.stringify({ ...h, current: '9.9.9', permanent: '9.9.9' }, null, 2)}\n`;
    await writeFile(join(stateDir, `.${randomUUID()}.tmp`), impostor.slice(0, impostor.length / 2));
    await writeFile(join(stateDir, `.${randomUUID()}.tmp`), impostor);
    expect(await readHistory(stateDir)).toEqual(h);

    host = await NodeHost.start({ release, stateDir, config: NODE_CONFIG });
    // The leftovers were never read or renamed (the impostor names 9.9.9): removed at start.
    expect(host.status()).toMatchObject({ version: '1.2.2', permanent: '1.2.2' });
    expect(await tmpFiles(stateDir)).toEqual([]);
    const outcome = await host.apply({ script: UP, bundle: await bundleOf(DEMO.v123), dryRun: false, permanent: true });
    expect(outcome.status).toBe('committed');
    await host.stop();
    const after = await readHistory(stateDir);
    expect(after).toMatchObject({ current: '1.2.3', permanent: '1.2.3' });
    expect(Object.keys(after!.installed).sort()).toEqual(['1.2.2', '1.2.3']);
    expect(after!.events.map((e) => `${e.op}:${e.status}`)).toEqual(['boot:booted', 'boot:booted', 'apply:committed']);
    expect(await tmpFiles(stateDir)).toEqual([]);

    host = await NodeHost.start({ release, stateDir, config: NODE_CONFIG });
    expect(host.status()).toMatchObject({ version: '1.2.3', permanent: '1.2.3' });
    await host.stop();
  });

  test('a process SIGKILLed at random points while writing the history leaves the old or the new file, whole', { timeout: 60_000 }, async () => {
    const dir = await tempDir('relup-fault-writer-');
    const module = pathToFileURL(join(REPO, 'dist', 'runtime', 'node-host', 'release-history.js')).href;
    // Writes generation after generation of a ~60 KB history; every event of generation n carries n, so a mix of two writes shows.
    const writer = `
      const { readHistory, writeHistory } = await import(${JSON.stringify(module)});
      const dir = process.env.HISTORY_DIR;
      const old = await readHistory(dir);
      let n = old === undefined ? 0 : Number(old.current);
      process.stdout.write('ready\\n');
      for (;;) {
        n += 1;
        const events = Array.from({ length: 300 }, () => ({ at: '2026-01-01T00:00:00.000Z', op: 'apply', from: '1.2.2', to: '1.2.3', status: 'committed', message: 'x'.repeat(120), durationMs: n }));
        await writeHistory(dir, { format: 2, name: 'demo', current: String(n), permanent: String(n), installed: {}, events });
      }`;
    // Deterministic "random" kill delays (ms after the writer is ready).
    const delays = [0, 3, 7, 11, 16, 23, 31, 42, 55, 70, 90, 120];
    // An old history to begin with: from then on, every kill must leave it or a newer one.
    await writeHistory(dir, { format: 2, name: 'demo', current: '0', permanent: '0', installed: {}, events: [] });
    let last = 0;
    for (const delay of delays) {
      const child = execa('node', ['--input-type=module', '-e', writer], { env: { HISTORY_DIR: dir }, reject: false, stdin: 'ignore' });
      await new Promise<void>((resolve, reject) => {
        child.stdout?.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
        void child.then((r) => reject(new Error(`the writer exited: ${r.stderr}`)));
      });
      await new Promise((r) => setTimeout(r, delay));
      child.kill('SIGKILL');
      expect((await child).signal).toBe('SIGKILL');
      const h = await readHistory(dir);
      expect(h, `after a kill ${delay} ms in`).toBeDefined();
      const n = Number(h!.current);
      expect(n).toBeGreaterThanOrEqual(last);
      expect(h!.events.every((e) => e.durationMs === n)).toBe(true);
      expect(h!.events).toHaveLength(n === 0 ? 0 : 300);
      last = n;
    }
    expect(last).toBeGreaterThan(0);
    // Kills that landed between open() and rename() leave their temp file behind; a node removes them when it starts (test above).
    console.log(`history writer: ${delays.length} kills, ${last} generations written, ${(await tmpFiles(dir)).length} temp files left behind`);
  });

  test('a node SIGKILLed a few milliseconds after commit, while it writes its history, boots the release its history names', { timeout: 60_000 }, async () => {
    const project = await scratchProject();
    dirs.push(project);
    const dir = await tempDir('relup-fault-commitkill-');
    const stateDir = join(dir, 'state');
    const up = demoScript('up').steps.length - 1;
    const down = demoScript('down').steps.length - 1;
    // ms after commit: the kill lands before, inside or after installing the bundle and writing the history.
    const turns = [0, 2, 3, 4, 6, 9, 14, 25];
    const seen: string[] = [];
    const faults = (n: number | undefined) => (n === undefined ? '' : `${up}:after-exit=${n},${down}:after-exit=${n}`);
    let node = await RealNode.start(dir, { stateDir, release: join(project, 'releases', '1.2.2'), faults: faults(turns[0]) });
    try {
      for (const [k, n] of turns.entries()) {
        const status = (await node.request('status', {})) as { version: string };
        const direction = status.version === '1.2.2' ? 'up' : 'down';
        const script = demoScript(direction);
        const next = direction === 'up' ? DEMO.v123 : DEMO.v122;
        const answer = node.request('apply', { script, bundle: await bundleOf(next), dryRun: false, permanent: true }).catch((e: { code?: string }) => e.code);
        expect((await node.exited).signal).toBe('SIGKILL');
        await answer;
        const history = await readHistory(stateDir);
        node = await RealNode.start(dir, { stateDir, release: join(project, 'releases', '1.2.2'), faults: faults(turns[k + 1]) });
        const s = (await node.request('status', {})) as { version: string; permanent: string; history: { op: string; status: string; from?: string; to: string }[] };
        // Whatever the kill interrupted, the history read back whole, and the node boots what it names as permanent.
        expect(history).toBeDefined();
        expect(s.version).toBe(history!.permanent);
        expect(s.permanent).toBe(history!.permanent);
        // The attempt is on record either way: committed (and its bundle installed: the node booted it), or started — the restart calls it interrupted.
        const lastApply = history!.events.filter((e) => e.op === 'apply').at(-1);
        expect(history!.events.at(-1)).toBe(lastApply);
        expect(lastApply).toMatchObject({ from: script.from.version, to: script.to.version });
        const recorded = lastApply!.status === 'committed';
        if (recorded) expect(s.version).toBe(script.to.version);
        else {
          expect(lastApply!.status).toBe('started');
          expect(s.version).toBe(script.from.version);
          expect(s.history.slice(-2).map((e) => `${e.op}:${e.status}`)).toEqual(['apply:interrupted', 'boot:booted']);
        }
        seen.push(`after-exit=${n} (${direction}): ${recorded ? 'commit recorded' : 'interrupted'}, boots ${s.version}`);
        // A kill inside writeFileAtomic (history or bundle install) leaves a temp file; the restart removed it.
        expect(await tmpFiles(stateDir)).toEqual([]);
        expect(await tmpFiles(join(stateDir, 'releases'))).toEqual([]);
      }
    } finally {
      await node.stop();
    }
    console.log(`commit kills:\n  ${seen.join('\n  ')}`);
  });
});
