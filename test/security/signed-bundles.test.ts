import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as tar from 'tar';
import { afterEach, describe, expect, it } from 'vitest';
import { readPublicKey } from '../../src/release/bundle-signature.js';
import { NodeHost } from '../../src/runtime/node-host/node-host.js';
import { demoCopy, runCli } from '../helpers/run-cli.js';
import { startNodeProcess, type NodeProcess } from '../helpers/node-process.js';
import { testdir } from '../helpers/testdir.js';

const nodes: NodeProcess[] = [];
afterEach(async () => {
  await Promise.all(nodes.splice(0).map((n) => n.stop()));
});

const codes = (json: string) => (JSON.parse(json).diagnostics as { code: string }[]).map((d) => d.code);

describe('signed bundles', { timeout: 60_000 }, () => {
  it('generates a key pair (private 0600), signs, verifies, and refuses unsigned, tampered and foreign-key bundles', async () => {
    const dir = await demoCopy();
    const gen = await runCli(['keys', 'generate', '--json'], dir);
    expect(gen.exitCode).toBe(0);
    expect((await stat(join(dir, 'keys', 'relup.key'))).mode & 0o777).toBe(0o600);
    expect((await runCli(['keys', 'generate'], dir)).exitCode).toBe(2);
    await runCli(['keys', 'generate', '--name', 'other'], dir);

    expect((await runCli(['release', 'pack', '1.2.3'], dir)).exitCode).toBe(0);
    const unsigned = await runCli(['release', 'verify', '1.2.3', '--public-key', 'keys/relup.pub', '--json'], dir);
    expect(unsigned.exitCode).toBe(1);
    expect(codes(unsigned.stdout)).toEqual(['bundle-signature-missing']);

    const sign = await runCli(['release', 'sign', '1.2.3', '--key', 'keys/relup.key'], dir);
    expect(sign.exitCode, sign.stderr).toBe(0);
    expect(sign.stdout).toContain(JSON.parse(gen.stdout).fingerprint);
    expect((await runCli(['release', 'verify', '1.2.3', '--public-key', 'keys/relup.pub'], dir)).exitCode).toBe(0);
    // Signing does not change the release's identity.
    expect((await runCli(['check'], dir)).exitCode).toBe(0);

    const foreign = await runCli(['release', 'verify', '1.2.3', '--public-key', 'keys/other.pub', '--json'], dir);
    expect(codes(foreign.stdout)).toEqual(['bundle-signature-invalid']);

    // Tamper: rewrite the manifest (e.g. to match a changed file) but keep the old signature.
    const work = await testdir();
    await tar.x({ file: join(dir, 'releases', 'demo-1.2.3.tar.gz'), cwd: work });
    const manifest = JSON.parse(await readFile(join(work, 'manifest.json'), 'utf8'));
    manifest.description = 'changed';
    await writeFile(join(work, 'manifest.json'), JSON.stringify(manifest));
    await tar.c({ gzip: true, file: join(dir, 'releases', 'demo-1.2.3.tar.gz'), cwd: work, portable: true }, ['manifest.json', 'manifest.sig', 'release.yaml', 'config.js', 'game.js', 'http_api.js', 'route.js']);
    const tampered = await runCli(['release', 'verify', '1.2.3', '--public-key', 'keys/relup.pub', '--json'], dir);
    expect(tampered.exitCode).toBe(1);
    expect(codes(tampered.stdout)).toContain('bundle-signature-invalid');
  });

  it('makes a node with a public key refuse unsigned bundles and directories, and accept signed ones', async () => {
    const dir = await demoCopy();
    await runCli(['keys', 'generate'], dir);
    for (const v of ['1.2.2', '1.2.3']) await runCli(['release', 'pack', v], dir);
    const publicKey = await readPublicKey(join(dir, 'keys', 'relup.pub'));

    await expect(NodeHost.start({ release: join(dir, 'releases', '1.2.2'), stateDir: join(dir, 'refused'), publicKey })).rejects.toThrow(/release-unsigned-directory|only accepts signed bundles/);
    await expect(NodeHost.start({ release: join(dir, 'releases', 'demo-1.2.2.tar.gz'), stateDir: join(dir, 'refused2'), publicKey })).rejects.toThrow(/bundle-signature-missing|not signed/);

    await runCli(['release', 'sign', '1.2.2', '--key', 'keys/relup.key'], dir);
    const strict = await startNodeProcess(await testdir(), { release: join(dir, 'releases', 'demo-1.2.2.tar.gz'), publicKey: join(dir, 'keys', 'relup.pub') });
    nodes.push(strict);
    const refused = await runCli(['apply', '--target', strict.socket, '--to', '1.2.3', '--json'], dir);
    expect(refused.exitCode).toBe(1);
    expect(JSON.parse(refused.stdout)).toMatchObject({ status: 'refused', failure: { code: 'bundle-invalid' } });
    expect(JSON.parse(refused.stdout).failure.message).toContain('bundle-signature-missing');

    await runCli(['release', 'sign', '1.2.3', '--key', 'keys/relup.key'], dir);
    const applied = await runCli(['apply', '--target', strict.socket, '--to', '1.2.3', '--json'], dir);
    expect(applied.exitCode, applied.stderr).toBe(0);
    expect(JSON.parse(applied.stdout).status).toBe('committed');
  });
});
