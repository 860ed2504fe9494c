/** An Erlang node started with --public-key accepts only bundles signed by that key (ed25519 over manifest.json), at boot and on upload. */
import { cp, mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
import { Connection } from '../../../src/client/connection.js';
import { CLI, REPO } from '../../helpers/repo-paths.js';
import { runCli } from '../../helpers/run-cli.js';
import { erlangGate } from './erlang-gate.js';
import { testdir } from '../../helpers/testdir.js';

const ok = await erlangGate('Erlang signed bundles (test/runtime/erlang)');

const started: ResultPromise[] = [];
afterEach(async () => {
  for (const c of started.splice(0)) {
    c.kill('SIGKILL');
    await c;
  }
});

describe.runIf(ok)('Erlang nodes and signed bundles', { timeout: 90_000 }, () => {
  it('refuses an unsigned or foreign-signed upload, accepts one signed by its key', async () => {
    const dir = await testdir();
    await cp(join(REPO, 'test', 'conformance', 'app', 'erlang'), join(dir, 'releases'), { recursive: true });
    await cp(join(REPO, 'test', 'conformance', 'app', 'appups'), join(dir, 'appups'), { recursive: true });
    await mkdir(join(dir, 'run'), { mode: 0o700 });
    expect((await runCli(['keys', 'generate', '--out-dir', 'keys'], dir)).exitCode).toBe(0);
    expect((await runCli(['keys', 'generate', '--out-dir', 'other-keys'], dir)).exitCode).toBe(0);
    const key = async (d: string, ext: string) => join(d, (await readdir(join(dir, d))).find((f) => f.endsWith(ext))!);
    for (const v of ['1.0.0', '1.1.0']) expect((await runCli(['release', 'pack', `releases/${v}`, '--out-dir', 'bundles'], dir)).exitCode).toBe(0);
    expect((await runCli(['release', 'sign', 'bundles/conf-1.0.0.tar.gz', '--key', await key('keys', '.key')], dir)).exitCode).toBe(0);

    const child = execa('node', [CLI, 'node', 'start', '--release', 'bundles/conf-1.0.0.tar.gz', '--socket', 'run/n.sock', '--public-key', await key('keys', '.pub')], { cwd: dir, reject: false, stdin: 'ignore', all: true });
    started.push(child);
    let output = '';
    child.all?.on('data', (d: Buffer) => (output += d.toString()));
    for (let i = 0; i < 400 && !output.includes('stop with'); i++) await new Promise((r) => setTimeout(r, 50));
    expect(output).toContain('bundles must be signed');
    const c = await Connection.open({ kind: 'unix', path: join(dir, 'run', 'n.sock') });
    const plan = JSON.parse((await runCli(['plan', '1.0.0', '1.1.0', '--json'], dir)).stdout);
    const { readFile } = await import('node:fs/promises');
    const upload = async () => (await c.request('apply', { script: plan, bundle: (await readFile(join(dir, 'bundles', 'conf-1.1.0.tar.gz'))).toString('base64') })) as { status: string; failure?: { code: string; message: string } };

    const unsigned = await upload();
    expect(unsigned).toMatchObject({ status: 'refused', failure: { code: 'bundle-invalid' } });
    expect(unsigned.failure!.message).toContain('bundle-unsigned');

    expect((await runCli(['release', 'sign', 'bundles/conf-1.1.0.tar.gz', '--key', await key('other-keys', '.key')], dir)).exitCode).toBe(0);
    const foreign = await upload();
    expect(foreign.failure!.message).toContain('bundle-signature-invalid');

    await cp(join(dir, 'bundles', 'conf-1.1.0.tar.gz'), join(dir, 'bundles', 'foreign.tar.gz'));
    expect((await runCli(['release', 'pack', 'releases/1.1.0', '--out-dir', 'fresh'], dir)).exitCode).toBe(0);
    expect((await runCli(['release', 'sign', 'fresh/conf-1.1.0.tar.gz', '--key', await key('keys', '.key')], dir)).exitCode).toBe(0);
    await cp(join(dir, 'fresh', 'conf-1.1.0.tar.gz'), join(dir, 'bundles', 'conf-1.1.0.tar.gz'));
    expect(await upload()).toMatchObject({ status: 'committed' });
    expect(await c.request('call', { process: 'counter', message: { op: 'version' } })).toBe('1.1.0');
    c.close();
  });
});
