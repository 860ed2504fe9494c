/**
 * The Erlang node's history follows the Node.js host's (format 2,
 * src/runtime/node-host/release-history.ts): `previous` is the installed
 * releases OLDER than the running one, newest first, so a rollback only ever
 * goes back; every installed bundle is verified at boot against the release
 * hash the history recorded (bundle-tampered).
 */
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { bundleBytes } from '../../../src/release/bundle-bytes.js';
import { readReleaseFiles } from '../../../src/release/release-files.js';
import { releaseFromFiles } from '../../../src/release/release-from-files.js';
import { startErlangNode, type ErlangNode } from '../../../src/runtime/erlang/erlang-driver.js';
import { runCli } from '../../helpers/run-cli.js';
import { erlangGate } from './erlang-gate.js';
import { confProject } from './conf-project.js';

const ok = await erlangGate('Erlang runtime tests (test/runtime/erlang)');

const nodes: ErlangNode[] = [];
afterEach(async () => {
  for (const n of nodes.splice(0)) {
    n.child.kill('SIGKILL');
    await n.child;
  }
});

async function boot(dir: string, env: Record<string, string> = {}): Promise<{ node: ErlangNode; socket: string }> {
  const socket = join(dir, 'node.sock');
  const node = await startErlangNode({ release: join(dir, 'releases', '1.0.0'), socket, stateDir: join(dir, 'state'), env });
  nodes.push(node);
  return { node, socket };
}

describe.runIf(ok)('Erlang nodes: current, permanent, previous', { timeout: 120_000 }, () => {
  it('goes back, never forth: apply, rollback, then a second rollback is refused with no-older-release', async () => {
    const dir = await confProject();
    const { socket } = await boot(dir);
    const target = ['--target', socket];

    const up = await runCli(['apply', ...target, '--to', '1.1.0', '--json'], dir);
    expect(up.exitCode, up.stdout + up.stderr).toBe(0);
    expect(JSON.parse(up.stdout)).toMatchObject({ status: 'committed', version: '1.1.0', previous: ['1.0.0'] });

    const back = await runCli(['rollback', ...target, '--json'], dir);
    expect(back.exitCode, back.stdout + back.stderr).toBe(0);
    // Before the fix the agent answered previous: ["1.1.0"], the release it had just left: a newer one.
    expect(JSON.parse(back.stdout)).toMatchObject({ status: 'committed', version: '1.0.0', previous: [], script: { direction: 'down' } });

    const again = await runCli(['rollback', ...target, '--dry-run', '--json'], dir);
    expect(again.exitCode, again.stdout + again.stderr).toBe(1);
    const refused = JSON.parse(again.stdout);
    expect(refused).toMatchObject({ ok: false, failure: { code: 'no-older-release' }, version: '1.0.0', previous: [] });
    expect(refused.script).toBeUndefined();

    const status = JSON.parse((await runCli(['status', ...target, '--json'], dir)).stdout);
    expect(status).toMatchObject({ version: '1.0.0', permanent: '1.0.0', previous: [], installed: ['1.1.0', '1.0.0'] });
    expect(status.history.map((e: { op: string; status: string }) => `${e.op}:${e.status}`)).toEqual(['boot:booted', 'apply:committed', 'apply:committed']);

    // The file is the Node.js host's format 2: installed version → release hash, no stored `previous`.
    const history = JSON.parse(await readFile(join(dir, 'state', 'history.json'), 'utf8'));
    expect(history).toMatchObject({ format: 2, name: 'conf', current: '1.0.0', permanent: '1.0.0' });
    expect(history.previous).toBeUndefined();
    expect(Object.keys(history.installed).sort()).toEqual(['1.0.0', '1.1.0']);
    for (const hash of Object.values(history.installed)) expect(hash).toMatch(/^[0-9a-f]{64}$/);
    expect(status.hash).toBe(history.installed['1.0.0']);
  });

  it('a second node on a state directory in use is refused (state-dir-locked); a lock left by a SIGKILLed node is taken over', async () => {
    const dir = await confProject();
    const { node, socket } = await boot(dir);
    // Before the lock, the second node booted on the same history (and took the first one's boot records over).
    const second = await startErlangNode({ release: join(dir, 'releases', '1.0.0'), socket: join(dir, 'other.sock'), stateDir: join(dir, 'state') }).then(
      (n) => void nodes.push(n),
      (e: Error) => e,
    );
    expect(second?.message).toContain('state-dir-locked');
    expect(second?.message).toContain(`pid ${node.pid}`);
    const lock = JSON.parse(await readFile(join(dir, 'state', 'node.lock'), 'utf8'));
    expect(lock).toMatchObject({ pid: node.pid });
    const status = await runCli(['status', '--target', socket, '--json'], dir);
    expect(JSON.parse(status.stdout).history.map((e: { op: string }) => e.op)).toEqual(['boot']);

    node.child.kill('SIGKILL');
    await node.child;
    const again = await startErlangNode({ socket, stateDir: join(dir, 'state') });
    nodes.push(again);
    expect(JSON.parse(await readFile(join(dir, 'state', 'node.lock'), 'utf8'))).toMatchObject({ pid: again.pid });
  });

  it('nodes that boot at the same time compile in temporary directories of their own', async () => {
    // Every fresh BEAM draws the same erlang:unique_integer sequence: directories named by it alone collided
    // between nodes booting in parallel (eexist at boot). Here the directories such a node would pick already exist.
    const dir = await confProject();
    const tmp = join(dir, 'tmp');
    await mkdir(tmp);
    await Promise.all(Array.from({ length: 200 }, (_, i) => mkdir(join(tmp, `relup-compile-${i + 1}`))));
    // A bundle without .beam files, so the node compiles (a directory is packed with them, and nothing would be).
    const read = (await readReleaseFiles(join(dir, 'releases', '1.0.0'))).value!;
    await writeFile(join(dir, 'sources-only.tar.gz'), (await bundleBytes(releaseFromFiles(read).value!, read.files)).bytes);
    const socket = join(dir, 'node.sock');
    const node = await startErlangNode({ release: join(dir, 'sources-only.tar.gz'), socket, stateDir: join(dir, 'state'), env: { TMPDIR: tmp } });
    nodes.push(node);
    const status = await runCli(['status', '--target', socket, '--json'], dir);
    expect(JSON.parse(status.stdout)).toMatchObject({ version: '1.0.0' });
  });

  it('refuses to boot when an installed bundle was replaced (bundle-tampered), even one with a valid manifest of its own', async () => {
    const dir = await confProject();
    const { node, socket } = await boot(dir);
    const up = await runCli(['apply', '--target', socket, '--to', '1.1.0', '--json'], dir);
    expect(up.exitCode, up.stdout + up.stderr).toBe(0);
    node.child.kill('SIGTERM');
    await node.child;

    // Someone swaps the installed 1.0.0 (the release a rollback would boot into) for other code that calls itself 1.0.0.
    const evil = join(dir, 'evil');
    await cp(join(dir, 'releases', '1.0.0'), evil, { recursive: true });
    const source = join(evil, 'counter.erl');
    await writeFile(source, (await readFile(source, 'utf8')).replace('init(_Args) -> {ok, #{<<"count">> => 0}}.', 'init(_Args) -> {ok, #{<<"count">> => 1000}}.'));
    expect(await readFile(source, 'utf8')).toContain('1000');
    const pack = await runCli(['release', 'pack', evil, '--out-dir', join(dir, 'evil-bundle')], dir);
    expect(pack.exitCode, pack.stdout + pack.stderr).toBe(0);
    await cp(join(dir, 'evil-bundle', 'conf-1.0.0.tar.gz'), join(dir, 'state', 'releases', 'conf-1.0.0.tar.gz'));

    // Before the fix only the permanent bundle was read: the node booted, and a rollback would have run the replaced code.
    const refused = await startErlangNode({ socket, stateDir: join(dir, 'state') }).then(
      (n) => void nodes.push(n),
      (e: Error) => e,
    );
    expect(refused?.message).toMatch(/bundle-tampered/);
    expect(refused?.message).toContain('conf-1.0.0.tar.gz');
  });
});
