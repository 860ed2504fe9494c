/** `relup node start` on a `runtime: erlang` release: boots erl with the agent, stops it on SIGTERM, and never leaves an orphan. */
import { cp, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
import { Connection } from '../../../src/client/connection.js';
import { CLI, REPO } from '../../helpers/repo-paths.js';
import { erlangGate } from './erlang-gate.js';
import { testdir } from '../../helpers/testdir.js';

const ok = await erlangGate('relup node start on Erlang (test/runtime/erlang)');

const started: ResultPromise[] = [];
afterEach(async () => {
  for (const c of started.splice(0)) {
    c.kill('SIGKILL');
    await c;
  }
});

async function start(dir: string) {
  const child = execa('node', [CLI, 'node', 'start', '--release', 'releases/1.0.0', '--socket', 'run/chat.sock', '--set', 'port=0'], { cwd: dir, reject: false, stdin: 'ignore', all: true, env: { NO_COLOR: '1' } });
  started.push(child);
  let output = '';
  child.all?.on('data', (d: Buffer) => (output += d.toString()));
  for (let i = 0; i < 400 && !output.includes('stop with'); i++) await new Promise((r) => setTimeout(r, 50));
  const pid = Number(/pid (\d+)\)/.exec(output)?.[1]);
  return { child, pid, output: () => output };
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe.runIf(ok)('relup node start with an Erlang release', { timeout: 60_000 }, () => {
  it('boots the release, answers status, and stops the Erlang node on SIGTERM', async () => {
    const dir = await testdir();
    await cp(join(REPO, 'examples', 'erlang'), dir, { recursive: true });
    await mkdir(join(dir, 'run'), { mode: 0o700 });
    const node = await start(dir);
    expect(node.pid).toBeGreaterThan(0);
    const c = await Connection.open({ kind: 'unix', path: join(dir, 'run', 'chat.sock') });
    expect(c.hello.node).toEqual({ name: 'chat', version: '1.0.0', runtime: 'erlang' });
    expect(await c.request('status', {})).toMatchObject({ version: '1.0.0', permanent: '1.0.0' });
    c.close();
    node.child.kill('SIGTERM');
    const r = await node.child;
    expect(r.exitCode).toBe(0);
    expect(node.output()).toContain('stopped');
    expect(alive(node.pid)).toBe(false);
  });

  it('the Erlang node stops by itself when relup node start is SIGKILLed (no orphan holding the socket)', async () => {
    const dir = await testdir();
    await cp(join(REPO, 'examples', 'erlang'), dir, { recursive: true });
    await mkdir(join(dir, 'run'), { mode: 0o700 });
    const node = await start(dir);
    expect(alive(node.pid)).toBe(true);
    node.child.kill('SIGKILL');
    await node.child;
    for (let i = 0; i < 100 && alive(node.pid); i++) await new Promise((r) => setTimeout(r, 50));
    expect(alive(node.pid)).toBe(false);
  });
});
