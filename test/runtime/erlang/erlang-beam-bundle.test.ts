/**
 * Bundles of Erlang releases carry the modules compiled at pack time
 * (`relup-build/<module>.beam`, erlc +deterministic), and nodes load those
 * instead of compiling: reproducible bytes, the release hash still over the
 * sources, the beams covered by the manifest, a beam of another module or a
 * tampered one refused before anything changes.
 */
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
import { Connection } from '../../../src/client/connection.js';
import { bundleBytes } from '../../../src/release/bundle-bytes.js';
import { readReleaseFiles } from '../../../src/release/release-files.js';
import { releaseFromFiles } from '../../../src/release/release-from-files.js';
import { releaseHash, sha256Hex } from '../../../src/release/release-hash.js';
import { tarGz } from '../../../src/release/tar-writer.js';
import { checkModules, startErlangNode, type ErlangNode } from '../../../src/runtime/erlang/erlang-driver.js';
import { runCli } from '../../helpers/run-cli.js';
import { testdir } from '../../helpers/testdir.js';
import { erlangGate } from './erlang-gate.js';
import { confProject } from './conf-project.js';

const ok = await erlangGate('Erlang bundles with .beam files (test/runtime/erlang)');

const nodes: ErlangNode[] = [];
afterEach(async () => {
  for (const n of nodes.splice(0)) {
    n.child.kill('SIGKILL');
    await n.child;
  }
});

/** `erlc +deterministic` of one source, as a packer would run it. */
async function erlc(name: string, source: string): Promise<Buffer> {
  const dir = await testdir({ [`${name}.erl`]: source });
  await execa('erlc', ['+deterministic', '-o', dir, `${name}.erl`], { cwd: dir, stdin: 'ignore' });
  return readFile(join(dir, `${name}.beam`));
}

/** The counter of 1.1.0 with one more function its source does not have: a node that answers it ran this beam, not a compile of the source. */
async function markedCounter(project: string): Promise<Buffer> {
  const source = await readFile(join(project, 'releases', '1.1.0', 'counter.erl'), 'utf8');
  const marked = source.replace('-module(counter).', '-module(counter).\n-export([marker/0]).');
  return erlc('counter', `${marked}\nmarker() -> <<"compiled when packed">>.\n`);
}

/** A bundle of release `version` of the project with exactly these build artifacts (a valid manifest over them). */
async function bundleWith(project: string, version: string, artifacts: Map<string, Uint8Array>): Promise<Buffer> {
  const read = await readReleaseFiles(join(project, 'releases', version));
  const release = releaseFromFiles(read.value!).value!;
  return (await bundleBytes(release, read.value!.files, artifacts)).bytes;
}

async function boot(project: string, release: string): Promise<Connection> {
  await mkdir(join(project, 'run'), { recursive: true, mode: 0o700 });
  const socket = join(project, 'run', `n-${nodes.length}.sock`);
  const node = await startErlangNode({ release, socket, stateDir: join(project, `state-${nodes.length}`), watchStdin: false });
  nodes.push(node);
  return Connection.open({ kind: 'unix', path: socket });
}

async function plan(project: string): Promise<unknown> {
  const r = await runCli(['plan', '1.0.0', '1.1.0', '--json'], project);
  expect(r.exitCode).toBe(0);
  return JSON.parse(r.stdout);
}

interface Outcome {
  status: string;
  failure?: { code: string; message: string };
}

describe.runIf(ok)('Erlang bundles carry .beam files', { timeout: 120_000 }, () => {
  it('relup release pack adds relup-build/<module>.beam: erlc +deterministic bytes, reproducible, in the manifest, outside the release hash', async () => {
    const project = await confProject();
    for (const out of ['a', 'b']) expect((await runCli(['release', 'pack', 'releases/1.1.0', '--out-dir', out], project)).exitCode).toBe(0);
    const a = await readFile(join(project, 'a', 'conf-1.1.0.tar.gz'));
    expect(a.equals(await readFile(join(project, 'b', 'conf-1.1.0.tar.gz')))).toBe(true);

    const bundle = (await readReleaseFiles(join(project, 'a', 'conf-1.1.0.tar.gz'))).value!;
    const beam = bundle.files.get('relup-build/counter.beam');
    expect(beam).toBeDefined();
    const source = await readFile(join(project, 'releases', '1.1.0', 'counter.erl'), 'utf8');
    expect(Buffer.from(beam!).equals(await erlc('counter', source))).toBe(true);

    const manifest = JSON.parse(bundle.files.get('manifest.json')!.toString()) as { releaseHash: string; files: { path: string; sha256: string }[] };
    expect(manifest.files.find((f) => f.path === 'relup-build/counter.beam')?.sha256).toBe(sha256Hex(beam!));
    // The release is its sources: the bundle and the directory have one release hash.
    const dir = (await readReleaseFiles(join(project, 'releases', '1.1.0'))).value!;
    expect(manifest.releaseHash).toBe(releaseHash(dir.files));
    const verify = await runCli(['release', 'verify', 'a/conf-1.1.0.tar.gz', '--json'], project);
    expect(verify.exitCode).toBe(0);
    expect(JSON.parse(verify.stdout)).toMatchObject({ ok: true, releaseHash: manifest.releaseHash });
  });

  it('the bundles packed in memory carry the beams too: the boot bundle of a directory, and what relup apply uploads', async () => {
    const project = await confProject();
    const c = await boot(project, join(project, 'releases', '1.0.0'));
    const applied = await runCli(['apply', '--to', '1.1.0', '--target', join(project, 'run', 'n-0.sock'), '--json'], project);
    expect(applied.exitCode).toBe(0);
    expect(await c.request('call', { process: 'counter', message: { op: 'version' } })).toBe('1.1.0');
    c.close();
    for (const [bundle, version] of [['boot-release.tar.gz', '1.0.0'], ['releases/conf-1.1.0.tar.gz', '1.1.0']] as const) {
      const files = (await readReleaseFiles(join(project, 'state-0', bundle))).value!.files;
      const source = await readFile(join(project, 'releases', version, 'counter.erl'), 'utf8');
      expect(Buffer.from(files.get('relup-build/counter.beam')!).equals(await erlc('counter', source))).toBe(true);
    }
  });

  it('the node loads the bundle\'s beam at boot and when staging an upgrade, and compiles only a bundle without one', async () => {
    const project = await confProject();
    const marked = await markedCounter(project);
    // 1.0.0 without beams: the node compiles the source (the fallback for bundles packed where erlc was missing).
    await writeFile(join(project, 'plain-1.0.0.tar.gz'), await bundleWith(project, '1.0.0', new Map()));
    const c = await boot(project, join(project, 'plain-1.0.0.tar.gz'));
    expect(await c.request('call', { process: 'counter', message: { op: 'version' } })).toBe('1.0.0');

    const bundle = await bundleWith(project, '1.1.0', new Map([['relup-build/counter.beam', marked]]));
    const outcome = (await c.request('apply', { script: await plan(project), bundle: bundle.toString('base64') })) as Outcome;
    expect(outcome.status).toBe('committed');
    expect(await c.request('call', { process: 'counter', message: { op: 'version' } })).toBe('1.1.0');
    expect(await c.request('invoke', { module: 'counter', function: 'marker', args: [] })).toBe('compiled when packed');
    c.close();

    // Booting the same bundle: the beam again, not the source.
    await writeFile(join(project, 'marked-1.1.0.tar.gz'), bundle);
    const booted = await boot(project, join(project, 'marked-1.1.0.tar.gz'));
    expect(await booted.request('invoke', { module: 'counter', function: 'marker', args: [] })).toBe('compiled when packed');
    booted.close();
  });

  it('refuses a tampered beam (manifest mismatch) and a beam of another module, before anything changes', async () => {
    const project = await confProject();
    expect((await runCli(['release', 'pack', 'releases/1.0.0', '--out-dir', 'bundles'], project)).exitCode).toBe(0);
    expect((await runCli(['release', 'pack', 'releases/1.1.0', '--out-dir', 'bundles'], project)).exitCode).toBe(0);
    const c = await boot(project, join(project, 'bundles', 'conf-1.0.0.tar.gz'));
    await c.request('call', { process: 'counter', message: { op: 'incr' } });
    const script = await plan(project);

    // The packed bundle with its beam swapped for another, manifest.json left as packed.
    const packed = (await readReleaseFiles(join(project, 'bundles', 'conf-1.1.0.tar.gz'))).value!;
    const swapped = new Map(packed.files);
    swapped.set('relup-build/counter.beam', await markedCounter(project));
    const manifestFirst = [...swapped].sort(([a], [b]) => (a === 'manifest.json' ? -1 : b === 'manifest.json' ? 1 : a < b ? -1 : 1));
    const tampered = await tarGz(manifestFirst);
    await writeFile(join(project, 'tampered.tar.gz'), tampered);
    const verify = await runCli(['release', 'verify', 'tampered.tar.gz', '--json'], project);
    expect(verify.exitCode).toBe(1);
    expect((JSON.parse(verify.stdout) as { diagnostics: { code: string }[] }).diagnostics.map((d) => d.code)).toContain('bundle-hash-mismatch');
    const refused = (await c.request('apply', { script, bundle: tampered.toString('base64') })) as Outcome;
    expect(refused).toMatchObject({ status: 'refused', failure: { code: 'bundle-invalid' } });
    expect(refused.failure!.message).toContain('bundle-hash-mismatch');
    // Nor does a node boot it.
    await expect(startErlangNode({ release: join(project, 'tampered.tar.gz'), socket: join(project, 'run', 'never.sock'), stateDir: join(project, 'never'), watchStdin: false })).rejects.toThrow(/bundle-hash-mismatch/);

    // A valid manifest over a beam that defines another module: the agent checks the module name while staging.
    const other = await erlc('other', '-module(other).\n-export([f/0]).\nf() -> ok.\n');
    const wrong = await bundleWith(project, '1.1.0', new Map([['relup-build/counter.beam', other]]));
    const staged = (await c.request('apply', { script, bundle: wrong.toString('base64') })) as Outcome;
    expect(staged).toMatchObject({ status: 'refused', failure: { code: 'compile-error' } });
    expect(staged.failure!.message).toContain('other');

    // Nothing changed: same release, same code, same state.
    expect(await c.request('status', {})).toMatchObject({ version: '1.0.0', permanent: '1.0.0' });
    expect(await c.request('call', { process: 'counter', message: { op: 'version' } })).toBe('1.0.0');
    expect(await c.request('call', { process: 'counter', message: { op: 'get' } })).toBe(1);
    c.close();
  });

  it('a bundle without beams whose source does not compile is refused while staging, at the file and line, and nothing changes', async () => {
    const project = await confProject();
    const source = join(project, 'releases', '1.1.0', 'counter.erl');
    await writeFile(source, (await readFile(source, 'utf8')).replace('handle_cast(_Msg, S) -> {noreply, S}.', 'handle_cast(_Msg, S) -> {noreply, S}'));
    const c = await boot(project, join(project, 'releases', '1.0.0'));
    const bundle = await bundleWith(project, '1.1.0', new Map());
    const outcome = (await c.request('apply', { script: await plan(project), bundle: bundle.toString('base64') })) as Outcome;
    expect(outcome).toMatchObject({ status: 'refused', failure: { code: 'compile-error' } });
    expect(outcome.failure!.message).toMatch(/counter\.erl:1[0-9]:\d+: /);
    expect(await c.request('call', { process: 'counter', message: { op: 'version' } })).toBe('1.0.0');
    c.close();
  });

  it('packed where erlc is missing: the pack says so, carries no beams, and its nodes compile the sources', async () => {
    const project = await confProject();
    const bin = await testdir();
    await symlink(process.execPath, join(bin, 'node'));
    const packed = await runCli(['release', 'pack', 'releases/1.1.0', '--out-dir', 'nobeams'], project, { PATH: bin });
    expect(packed.exitCode, packed.stderr).toBe(0);
    expect(packed.stderr).toContain('erlang-not-installed');
    expect(packed.stderr).toContain('erlang-beams-not-built');
    const files = (await readReleaseFiles(join(project, 'nobeams', 'conf-1.1.0.tar.gz'))).value!.files;
    expect([...files.keys()].filter((p) => p.startsWith('relup-build/'))).toEqual([]);
    const c = await boot(project, join(project, 'nobeams', 'conf-1.1.0.tar.gz'));
    expect(await c.request('call', { process: 'counter', message: { op: 'version' } })).toBe('1.1.0');
    c.close();
  });

  it('a release may list a module as a .beam only: checked for its module name, loaded as it is', async () => {
    const project = await confProject();
    const source = await readFile(join(project, 'releases', '1.0.0', 'counter.erl'), 'utf8');
    const yaml = (await readFile(join(project, 'releases', '1.0.0', 'release.yaml'), 'utf8')).replace('file: counter.erl', 'file: counter.beam');
    const dir = await testdir({ 'release.yaml': yaml, 'counter.beam': await erlc('counter', source) });
    const read = (await readReleaseFiles(dir)).value!;
    const release = releaseFromFiles(read).value!;
    expect(await checkModules(release, async (p) => read.files.get(p)!)).toEqual([]);
    const c = await boot(project, dir);
    expect(await c.request('call', { process: 'counter', message: { op: 'version' } })).toBe('1.0.0');
    c.close();

    // A .beam of another module under this module's name is found by `relup check`, before any node sees it.
    read.files.set('counter.beam', await erlc('other', '-module(other).\n-export([f/0]).\nf() -> ok.\n'));
    expect((await checkModules(release, async (p) => read.files.get(p)!)).map((d) => d.code)).toEqual(['erlang-module-name']);
    read.files.set('counter.beam', Buffer.from('not a beam'));
    expect((await checkModules(release, async (p) => read.files.get(p)!)).map((d) => d.code)).toEqual(['erlang-beam-invalid']);
  });
});
