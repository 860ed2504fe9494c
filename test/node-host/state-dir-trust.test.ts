import { chmod, chown, cp, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { checkPathTrust, componentProblem } from '../../src/fs/check-path-trust.js';
import { CLI, DEMO_RELEASES } from '../helpers/repo-paths.js';
import { startNodeProcess } from '../helpers/node-process.js';
import { runCli } from '../helpers/run-cli.js';
import { testdir } from '../helpers/testdir.js';

/**
 * Issue 9.1 and 9.2: the state directory (the code a restart boots) and the
 * control socket's directory are trusted only if they and every directory
 * above them are ours or root's and not writable by others (a root-owned
 * sticky parent such as /tmp excepted); every installed bundle is verified
 * against the hash the history recorded before anything of it runs.
 *
 * The attacks run as a second user (uid/gid 65534, "nobody"), which needs
 * root; without root those tests are skipped and say so.
 */
const ROOT = typeof process.getuid === 'function' && process.getuid() === 0;
const OTHER = 65534;
if (!ROOT) console.warn('state-dir-trust: SKIPPED the attacks run as a second user (uid 65534): they need root, and this run is not root');

/** Run `script` (an ES module body) as uid/gid 65534. */
async function asOtherUser(script: string, env: Record<string, string> = {}): Promise<void> {
  const r = await execa('node', ['--input-type=module', '-e', script], { uid: OTHER, gid: OTHER, reject: false, env, cwd: '/' });
  if (r.exitCode !== 0) throw new Error(`the second user's script failed: ${r.stderr}`);
}

async function startRefused(dir: string, socketDir: string, stateDir: string, release?: string) {
  if (socketDir === join(dir, 'run')) await mkdir(socketDir, { recursive: true, mode: 0o700 });
  const args = [CLI, 'node', 'start', '--socket', join(socketDir, 'node.sock'), '--state-dir', stateDir, '--port', '0', ...(release === undefined ? [] : ['--release', release])];
  const r = await execa('node', args, { cwd: dir, reject: false, stdin: 'ignore', timeout: 20_000, env: { NO_COLOR: '1' } });
  return { exitCode: r.exitCode, out: `${r.stdout}\n${r.stderr}`, stderr: r.stderr };
}

/** A copy of demo 1.2.2 whose code, when it is loaded, writes `marker`: what an attacker's bundle would do. */
async function evilRelease(dir: string, marker: string): Promise<string> {
  const project = join(dir, 'evil');
  await cp(join(DEMO_RELEASES, '1.2.2'), join(project, 'releases', '1.2.2'), { recursive: true });
  const file = join(project, 'releases', '1.2.2', 'config.js');
  await writeFile(file, `${await readFile(file, 'utf8')}\nrequire('node:fs').writeFileSync(${JSON.stringify(marker)}, 'attacker code ran');\n`);
  const packed = await runCli(['release', 'pack', '1.2.2'], project);
  if (packed.exitCode !== 0) throw new Error(packed.stderr);
  return join(project, 'releases', 'demo-1.2.2.tar.gz');
}

const exists = (p: string) => stat(p).then(() => true, () => false);

describe('path trust rules (pure)', () => {
  const dir = (mode: number, uid: number) => ({ mode: 0o040000 | mode, uid, isSymbolicLink: () => false, isDirectory: () => true });
  it('accepts ours and root, refuses others and writable-by-others, allows a root-owned sticky parent only', () => {
    expect(componentProblem(dir(0o700, 1000), 'target', 1000)).toBeUndefined();
    expect(componentProblem(dir(0o755, 0), 'parent', 1000)).toBeUndefined();
    expect(componentProblem(dir(0o700, 1001), 'target', 1000)).toMatch(/another user/);
    expect(componentProblem(dir(0o777, 1000), 'parent', 1000)).toMatch(/others/);
    expect(componentProblem(dir(0o770, 1000), 'target', 1000)).toMatch(/group/);
    expect(componentProblem(dir(0o1777, 0), 'parent', 1000)).toBeUndefined();
    expect(componentProblem(dir(0o1777, 0), 'target', 1000)).toMatch(/others/);
    expect(componentProblem(dir(0o1777, 1000), 'parent', 1000)).toMatch(/others/);
    expect(componentProblem(dir(0o1777, 1001), 'parent', 1000)).toMatch(/another user/);
  });

  it('accepts the OS temporary directory as a parent (root-owned, sticky), so state directories under it work', async () => {
    const d = await testdir();
    await mkdir(join(d, 'state'), { mode: 0o700 });
    await expect(checkPathTrust(join(d, 'state'), 'the state directory')).resolves.toBeUndefined();
  });

  it('checks the path as given and its canonical form: a symlink on the way must not be writable by others either', async () => {
    const d = await testdir();
    await mkdir(join(d, 'open'), { mode: 0o777 });
    await chmod(join(d, 'open'), 0o777);
    await mkdir(join(d, 'open', 'state'), { mode: 0o700 });
    const { symlink } = await import('node:fs/promises');
    await symlink(join(d, 'open', 'state'), join(d, 'link'));
    await expect(checkPathTrust(join(d, 'link'), 'the state directory')).rejects.toMatchObject({ code: 'untrusted-path' });
  });
});

describe('a node trusts its state directory only if no one else can write it (issue 9.1)', { timeout: 60_000 }, () => {
  it.skipIf(!ROOT)('refuses a state directory inside a directory others can write: a second user replaced it with their own, and their code does not run', async () => {
    const dir = await testdir();
    await chmod(dir, 0o711); // the second user may pass through, not list or write
    const shared = join(dir, 'shared');
    await mkdir(shared);
    await chmod(shared, 0o777);
    const stateDir = join(shared, 'state');
    const marker = join(dir, 'pwned');
    const evil = await evilRelease(dir, marker);
    await chmod(join(dir, 'evil'), 0o755);

    // The second user swaps the state directory for one of their own: their history, their bundle of "1.2.2".
    await asOtherUser(
      `import { mkdir, copyFile, writeFile } from 'node:fs/promises';
       const state = process.env.STATE;
       await mkdir(state + '/releases', { recursive: true, mode: 0o700 });
       await copyFile(process.env.EVIL, state + '/releases/demo-1.2.2.tar.gz');
       await writeFile(state + '/history.json', JSON.stringify({ format: 1, name: 'demo', current: '1.2.2', permanent: '1.2.2', previous: [], events: [] }));`,
      { STATE: stateDir, EVIL: evil },
    );
    expect((await stat(stateDir)).uid).toBe(OTHER);
    const r = await startRefused(dir, join(dir, 'run'), stateDir, join(DEMO_RELEASES, '1.2.2'));
    // Before the fix: the node booted the second user's bundle, and their code ran as root.
    expect(await exists(marker), r.out).toBe(false);
    expect(r.exitCode, r.out).toBe(1);
    expect(r.stderr).toContain('untrusted-path');
    expect(r.stderr).toContain(shared);
  });

  it.skipIf(!ROOT)('refuses a state directory that belongs to another user, and one it could write', async () => {
    const dir = await testdir();
    const stateDir = join(dir, 'state');
    await mkdir(stateDir, { mode: 0o700 });
    await chown(stateDir, OTHER, OTHER);
    let r = await startRefused(dir, join(dir, 'run'), stateDir, join(DEMO_RELEASES, '1.2.2'));
    expect(r.exitCode, r.out).toBe(1);
    expect(r.stderr).toMatch(/untrusted-path.*another user/);
    await chown(stateDir, 0, 0);
    await chmod(stateDir, 0o707);
    r = await startRefused(dir, join(dir, 'run'), stateDir, join(DEMO_RELEASES, '1.2.2'));
    expect(r.exitCode, r.out).toBe(1);
    expect(r.stderr).toMatch(/untrusted-path.*writable by others/);
  });

  it('verifies every installed bundle against the hash in the history before it runs: a re-manifested bundle is refused', async () => {
    const dir = await testdir();
    const stateDir = join(dir, 'state');
    const node = await startNodeProcess(dir, { release: join(DEMO_RELEASES, '1.2.2'), stateDir });
    expect(await node.stop()).toBe(0);
    const marker = join(dir, 'pwned');
    // Same name and version, its own valid manifest: verifies on its own, but it is not what the node installed.
    await cp(await evilRelease(dir, marker), join(stateDir, 'releases', 'demo-1.2.2.tar.gz'));
    const r = await startRefused(dir, join(dir, 'run'), stateDir);
    expect(await exists(marker), r.out).toBe(false);
    expect(r.exitCode, r.out).toBe(1);
    expect(r.stderr).toContain('bundle-tampered');
  });
});

describe('a node trusts its control socket directory only with every parent (issue 9.2)', { timeout: 60_000 }, () => {
  it.skipIf(!ROOT)('refuses a 0700 socket directory inside one others can write, which a second user could rename away', async () => {
    const dir = await testdir();
    await chmod(dir, 0o711);
    const shared = join(dir, 'shared');
    await mkdir(shared);
    await chmod(shared, 0o777);
    const run = join(shared, 'run');
    await mkdir(run, { mode: 0o700 });
    // What the second user can do to it: rename our 0700 directory and put their own in its place.
    await asOtherUser(`import { rename, mkdir } from 'node:fs/promises'; await rename(process.env.RUN, process.env.RUN + '.ours'); await mkdir(process.env.RUN, { mode: 0o700 });`, { RUN: run });
    expect((await stat(run)).uid).toBe(OTHER);
    // Ours, still 0700 and ours, now sits in that writable directory under another name: it is refused wherever it is.
    const ours = `${run}.ours`;
    const r = await startRefused(dir, ours, join(dir, 'state'), join(DEMO_RELEASES, '1.2.2'));
    // Before the fix: accepted (only the socket directory itself was checked).
    expect(r.exitCode, r.out).toBe(1);
    expect(r.stderr).toContain('untrusted-path');
    expect(r.stderr).toContain(shared);
    expect(await exists(join(ours, 'node.sock'))).toBe(false);
  });

  it.skipIf(!ROOT)('accepts a socket directory of ours inside a root-owned sticky directory, and refuses one the second user made there', async () => {
    const dir = await testdir();
    await chmod(dir, 0o711);
    const sticky = join(dir, 'tmp');
    await mkdir(sticky);
    await chmod(sticky, 0o1777);
    const theirs = join(sticky, 'theirs');
    await asOtherUser(`import { mkdir } from 'node:fs/promises'; await mkdir(process.env.D, { mode: 0o700 });`, { D: theirs });
    const r = await startRefused(dir, theirs, join(dir, 'state'), join(DEMO_RELEASES, '1.2.2'));
    expect(r.exitCode, r.out).toBe(1);
    expect(r.stderr).toMatch(/untrusted-path.*another user/);

    const ours = join(sticky, 'ours');
    await mkdir(ours, { mode: 0o700 });
    // The second user cannot rename ours away in a sticky directory.
    await expect(asOtherUser(`import { rename } from 'node:fs/promises'; await rename(process.env.D, process.env.D + '.x');`, { D: ours })).rejects.toThrow(/EPERM|EACCES/);
    const args = [CLI, 'node', 'start', '--socket', join(ours, 'node.sock'), '--state-dir', join(dir, 'state'), '--port', '0', '--release', join(DEMO_RELEASES, '1.2.2')];
    const child = execa('node', args, { cwd: dir, reject: false, stdin: 'ignore', all: true, env: { NO_COLOR: '1' } });
    let out = '';
    child.all?.on('data', (d: Buffer) => (out += d.toString()));
    for (let i = 0; i < 200 && !out.includes('running (pid'); i++) await new Promise((res) => setTimeout(res, 50));
    expect(out).toContain('running (pid');
    child.kill('SIGTERM');
    expect((await child).exitCode).toBe(0);
  });
});

describe('the same rule for the files that decide what a node trusts', { timeout: 60_000 }, () => {
  it('refuses a --public-key whose directory others can write, or that others can write (they could sign their own bundles)', async () => {
    const dir = await testdir();
    const gen = await runCli(['keys', 'generate'], dir);
    expect(gen.exitCode, gen.stderr).toBe(0);
    const keys = join(dir, 'keys');
    const signed = [CLI, 'node', 'start', '--socket', join(dir, 'run', 'node.sock'), '--state-dir', join(dir, 'state'), '--port', '0', '--release', join(DEMO_RELEASES, '1.2.2'), '--public-key', join(keys, 'relup.pub')];
    await mkdir(join(dir, 'run'), { mode: 0o700 });
    await chmod(keys, 0o777);
    let r = await execa('node', signed, { cwd: dir, reject: false, stdin: 'ignore', timeout: 20_000, env: { NO_COLOR: '1' } });
    expect(r.exitCode, r.stderr).toBe(1);
    expect(r.stderr).toContain('untrusted-path');
    expect(r.stderr).toContain(keys);
    await chmod(keys, 0o755);
    await chmod(join(keys, 'relup.pub'), 0o666);
    r = await execa('node', signed, { cwd: dir, reject: false, stdin: 'ignore', timeout: 20_000, env: { NO_COLOR: '1' } });
    expect(r.exitCode, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/untrusted-path: the public key .* writable by others/);
  });

  it('refuses a --secret-file in a directory others can write (they could swap in a secret they know)', async () => {
    const dir = await testdir();
    const open = join(dir, 'open');
    await mkdir(open);
    await chmod(open, 0o777);
    await writeFile(join(open, 'secret'), 'x'.repeat(44), { mode: 0o600 });
    await mkdir(join(dir, 'run'), { mode: 0o700 });
    const args = [CLI, 'node', 'start', '--socket', join(dir, 'run', 'node.sock'), '--state-dir', join(dir, 'state'), '--port', '0', '--release', join(DEMO_RELEASES, '1.2.2'), '--listen', '127.0.0.1:0', '--secret-file', join(open, 'secret')];
    const r = await execa('node', args, { cwd: dir, reject: false, stdin: 'ignore', timeout: 20_000, env: { NO_COLOR: '1' } });
    expect(r.exitCode, r.stderr).toBe(1);
    expect(r.stderr).toContain('untrusted-path');
    expect(r.stderr).toContain(open);
  });
});

