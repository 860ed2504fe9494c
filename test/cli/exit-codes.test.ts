import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkFlags } from '../../src/cli/main.js';
import { startNodeProcess, type NodeProcess } from '../helpers/node-process.js';
import { DEMO_APPUPS, DEMO_RELEASES } from '../helpers/repo-paths.js';
import { demoCopy, runCli } from '../helpers/run-cli.js';

/**
 * Issue 8 item 9: every command follows the one table — 0 ok, 1 findings or a
 * failed upgrade (or an unreachable node), 2 bad input (unknown version, wrong
 * path, bad flag) or an internal error. One block per command.
 */
const code = async (dir: string, ...args: string[]) => {
  const r = await runCli(args, dir);
  return r.exitCode;
};

async function uncovered(dir: string): Promise<void> {
  const appup = join(dir, 'appups', '1.2.3.yaml');
  await writeFile(appup, (await readFile(appup, 'utf8')).replace('      - update: route\n', ''));
}

describe('exit codes', { timeout: 120_000 }, () => {
  it('plan: 0 planned, 1 findings, 2 unknown or repeated version, bad flag, wrong directory', async () => {
    const dir = await demoCopy();
    expect(await code(dir, 'plan', '1.2.2', '1.2.3')).toBe(0);
    expect(await code(dir, 'plan', '1.2.2', '1.2.2')).toBe(2);
    expect(await code(dir, 'plan', '1.2', '1.2.3')).toBe(2);
    expect(await code(dir, 'plan', '1.2.2', '1.2.3', '--nope')).toBe(2);
    expect(await code(dir, 'plan', '1.2.2', '1.2.3', '--releases', 'nowhere')).toBe(2);
    expect(await code(dir, 'plan', '1.2.2', '1.2.3', '--appups', 'nowhere')).toBe(2);
    await uncovered(dir);
    expect(await code(dir, 'plan', '1.2.2', '1.2.3')).toBe(1);
  });

  it('check: 0 clean, 1 findings, 2 bad flags, unreadable fixture, wrong directory', async () => {
    const dir = await demoCopy();
    expect(await code(dir, 'check')).toBe(0);
    expect(await code(dir, 'check', '--fixture', 'f.json')).toBe(2);
    expect(await code(dir, 'check', '--live', '--fixture', 'missing.json')).toBe(2);
    const nowhere = await runCli(['check', '--releases', 'nowhere', '--json'], dir);
    expect(nowhere.exitCode).toBe(2);
    expect(JSON.parse(nowhere.stdout).diagnostics.map((d: { code: string }) => d.code)).toEqual(['releases-dir-missing']);
    await uncovered(dir);
    expect(await code(dir, 'check')).toBe(1);
  });

  it('release pack / verify / sign and keys generate', async () => {
    const dir = await demoCopy();
    expect(await code(dir, 'release', 'pack', '1.2.3')).toBe(0);
    expect(await code(dir, 'release', 'pack', '9.9.9')).toBe(2);
    expect(await code(dir, 'release', 'verify', 'releases/demo-1.2.3.tar.gz')).toBe(0);
    expect(await code(dir, 'release', 'verify', 'nothing.tar.gz')).toBe(2);
    expect(await code(dir, 'keys', 'generate')).toBe(0);
    expect(await code(dir, 'keys', 'generate')).toBe(2);
    expect(await code(dir, 'release', 'sign', '1.2.3', '--key', 'keys/relup.key')).toBe(0);
    expect(await code(dir, 'release', 'sign', '1.2.3', '--key', 'keys/none.key')).toBe(2);
    expect(await code(dir, 'release', 'verify', 'releases/demo-1.2.3.tar.gz', '--public-key', 'keys/relup.pub')).toBe(0);
    // Findings: an unsigned bundle when a signature is required, an invalid release directory.
    expect(await code(dir, 'release', 'pack', '1.2.2')).toBe(0);
    expect(await code(dir, 'release', 'verify', 'releases/demo-1.2.2.tar.gz', '--public-key', 'keys/relup.pub')).toBe(1);
    await rm(join(dir, 'releases', '1.2.2', 'route.js'));
    expect(await code(dir, 'release', 'verify', 'releases/1.2.2')).toBe(1);
    await rm(join(dir, 'releases', 'demo-1.2.2.tar.gz'));
    expect(await code(dir, 'release', 'pack', '1.2.2')).toBe(1);
  });

  describe('commands that talk to a node', () => {
    let dir: string;
    let node: NodeProcess;
    beforeAll(async () => {
      // Not demoCopy(): its directory is removed after each test, and this one is shared by the block.
      dir = await mkdtemp(join(tmpdir(), 'relup-exit-'));
      await cp(DEMO_RELEASES, join(dir, 'releases'), { recursive: true, filter: (src) => !src.endsWith('.tar.gz') });
      await cp(DEMO_APPUPS, join(dir, 'appups'), { recursive: true });
      node = await startNodeProcess(dir, { release: 'releases/1.2.2' });
    });
    afterAll(async () => {
      await node?.stop();
      if (dir !== undefined) await rm(dir, { recursive: true, force: true });
    });

    it('status: 0, 1 unreachable node, 2 unknown target name', async () => {
      expect(await code(dir, 'status', '--target', node.socket)).toBe(0);
      expect(await code(dir, 'status', '--target', join(dir, 'run', 'none.sock'))).toBe(1);
      expect(await code(dir, 'status', '--target', 'no-such-name')).toBe(2);
    });

    it('apply and rollback: 0 done, 1 refused or unreachable, 2 unknown version or wrong directory', async () => {
      expect(await code(dir, 'apply', '--target', node.socket, '--to', '9.9.9')).toBe(2);
      expect(await code(dir, 'apply', '--target', node.socket, '--releases', 'nowhere')).toBe(2);
      expect(await code(dir, 'apply', '--target', join(dir, 'run', 'none.sock'))).toBe(1);
      expect(await code(dir, 'apply', '--target', node.socket, '--to', '1.2.3', '--dry-run')).toBe(0);
      expect(await code(dir, 'apply', '--target', node.socket, '--to', '1.2.3')).toBe(0);
      expect(await code(dir, 'apply', '--target', node.socket, '--to', '1.2.3')).toBe(0); // noop
      expect(await code(dir, 'rollback', '--target', node.socket, '--to', '9.9.9')).toBe(2);
      expect(await code(dir, 'rollback', '--target', node.socket, '--to', '1.2.2')).toBe(0);
      // A refusal on the node (a module that does not compile) is a failed upgrade: 1.
      const route = join(dir, 'releases', '1.2.3', 'route.js');
      await writeFile(route, `${await readFile(route, 'utf8')}\nfoo(;\n`);
      expect(await code(dir, 'apply', '--target', node.socket, '--to', '1.2.3')).toBe(1);
    });
  });

  it('node start: 2 for bad flags', async () => {
    const dir = await demoCopy();
    expect(await code(dir, 'node', 'start', '--socket', join(dir, 'x.sock'), '--set', 'novalue')).toBe(2);
    expect(await code(dir, 'node', 'start', '--socket', join(dir, 'x.sock'), '--secret-file', 'secret')).toBe(2);
    expect(await code(dir, 'node')).toBe(2);
    // A fresh state directory needs --release: bad input, not a failed node.
    await mkdir(join(dir, 'run'), { recursive: true, mode: 0o700 });
    expect(await code(dir, 'node', 'start', '--socket', join(dir, 'run', 'x.sock'), '--state-dir', join(dir, 'fresh-state'))).toBe(2);
  });

  it('checkFlags refuses --fixture without --live', () => {
    expect(() => checkFlags({ fixture: 'f.json' })).toThrow(/--live/);
    expect(checkFlags({ fixture: 'f.json', live: true })).toBe(true);
    expect(checkFlags({})).toBe(true);
  });
});
