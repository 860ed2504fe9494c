import { writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startNode, type RelupNode } from '../../src/runtime/node/relup-node.js';
import { REPO } from '../helpers/repo-paths.js';
import { testdir } from '../helpers/testdir.js';
import { imageFromFiles, planScript } from './helpers/release-image.js';

/**
 * Issue 12 item 2: npm packages are the node's base. Module code requires the
 * packages its release declares, loaded once with Node's loader and shared by
 * every version; anything else, and node:module's createRequire, is refused;
 * a node_modules changed under a running node is refused at stage.
 */
const releaseYaml = (version: string, packages: string) => `name: pk\nversion: ${version}\nruntime: node\n${packages}modules:\n  web:\n    file: web.js\n`;
const WEB = (tag: string) => `
exports.tag = () => '${tag}';
exports.get = (id) => require(id);
exports.codeOf = (id) => { try { require(id); return 'ok'; } catch (e) { return e.code; } };
`;
const APPUP = 'version: 1.0.1\nup:\n  - from: 1.0.0\n    instructions:\n      - load: web\ndown:\n  - to: 1.0.0\n    instructions:\n      - load: web\n';

const nodes: RelupNode[] = [];
afterEach(async () => {
  await Promise.all(nodes.splice(0).map((n) => n.stop()));
});

describe('npm packages as the base', () => {
  it('a declared real package (ws) is loaded once with Node\'s loader and shared by every version; others are refused', async () => {
    const v1 = imageFromFiles({ 'release.yaml': releaseYaml('1.0.0', 'packages: [ws]\n'), 'web.js': WEB('v1') });
    const v2 = imageFromFiles({ 'release.yaml': releaseYaml('1.0.1', 'packages: [ws]\n'), 'web.js': WEB('v2') });
    const node = await startNode({ image: v1, packagesFrom: REPO });
    nodes.push(node);
    const before = await node.invoke('web', 'get', ['ws']);
    // The very object Node's own loader gives: one copy of the package in the process.
    expect(before).toBe(createRequire(join(REPO, 'x.js'))('ws'));
    expect(await node.invoke('web', 'codeOf', ['ws/package.json'])).toBe('ok');
    expect(await node.invoke('web', 'codeOf', ['yaml'])).toBe('require-denied');
    expect(await node.invoke('web', 'codeOf', ['node:module'])).toBe('require-denied');
    expect(await node.invoke('web', 'codeOf', ['module'])).toBe('require-denied');
    expect(await node.invoke('web', 'codeOf', ['./anything.js'])).toBe('require-denied');
    const outcome = await node.applyScript(planScript(v1, v2, APPUP, '1.0.1'), v2);
    expect(outcome.status).toBe('committed');
    expect(await node.invoke('web', 'tag', [])).toBe('v2');
    expect(await node.invoke('web', 'get', ['ws'])).toBe(before);
  });

  it('refuses to boot when a declared package is not installed', async () => {
    const dir = await testdir({ 'empty/.keep': '' });
    const v1 = imageFromFiles({ 'release.yaml': releaseYaml('1.0.0', 'packages: [ws]\n'), 'web.js': WEB('v1') });
    await expect(startNode({ image: v1, packagesFrom: join(dir, 'empty') })).rejects.toMatchObject({ code: 'base-missing' });
  });

  it('refuses at stage, changing nothing, when node_modules changed under the running node', async () => {
    const dir = await testdir({
      'base/node_modules/tiny/package.json': '{"name":"tiny","version":"1.0.0","main":"index.js"}',
      'base/node_modules/tiny/index.js': 'module.exports = { answer: 1 };',
    });
    const base = join(dir, 'base');
    const v1 = imageFromFiles({ 'release.yaml': releaseYaml('1.0.0', 'packages: [tiny]\n'), 'web.js': WEB('v1') });
    const v2 = imageFromFiles({ 'release.yaml': releaseYaml('1.0.1', 'packages: [tiny]\n'), 'web.js': WEB('v2') });
    const node = await startNode({ image: v1, packagesFrom: base });
    nodes.push(node);
    expect(await node.invoke('web', 'get', ['tiny'])).toEqual({ answer: 1 });
    // `npm install` of another version while the node runs.
    await writeFile(join(base, 'node_modules/tiny/package.json'), '{"name":"tiny","version":"2.0.0","main":"index.js"}');
    await writeFile(join(base, 'node_modules/tiny/index.js'), 'module.exports = { answer: 2 };');
    const outcome = await node.applyScript(planScript(v1, v2, APPUP, '1.0.1'), v2);
    expect(outcome.status).toBe('refused');
    expect(outcome.failure?.code).toBe('base-changed');
    expect(outcome.failure?.message).toContain('tiny 1.0.0 → 2.0.0');
    expect(await node.invoke('web', 'tag', [])).toBe('v1');
  });
});

describe('the base recorded in the bundle manifest', () => {
  it('relup release pack records name, version and tree hash of each declared package; the bundle reads back with it; a node refuses a bundle packed against another base', async () => {
    const { symlink, readFile } = await import('node:fs/promises');
    const { runCli } = await import('../helpers/run-cli.js');
    const { readReleaseFiles } = await import('../../src/release/release-files.js');
    const { releaseFromFiles } = await import('../../src/release/release-from-files.js');
    const { checkBase } = await import('../../src/planner/check-base.js');
    const dir = await testdir({ 'releases/1.0.0/release.yaml': releaseYaml('1.0.0', 'packages: [ws]\n'), 'releases/1.0.0/web.js': WEB('v1') });
    await symlink(join(REPO, 'node_modules'), join(dir, 'node_modules'));
    const packed = await runCli(['release', 'pack', 'releases/1.0.0', '--json'], dir);
    expect(packed.exitCode, packed.stderr).toBe(0);
    const bundle = join(dir, (JSON.parse(packed.stdout) as { bundle: string }).bundle);
    const read = await readReleaseFiles(bundle, {});
    const release = releaseFromFiles(read.value!).value!;
    const wsVersion = (JSON.parse(await readFile(join(REPO, 'node_modules/ws/package.json'), 'utf8')) as { version: string }).version;
    expect(release.base).toEqual([{ name: 'ws', version: wsVersion, hash: expect.stringMatching(/^[0-9a-f]{64}$/) }]);

    // Same declaration, another installed tree: the planner refuses, and so does a node whose base differs.
    const other = { ...release, version: '1.0.1', base: [{ ...release.base![0]!, hash: '0'.repeat(64) }] };
    expect(checkBase(release, other)).toEqual([expect.objectContaining({ code: 'plan-base-changed' })]);
    await expect(startNode({ image: { release: other, files: read.value!.files }, packagesFrom: REPO })).rejects.toMatchObject({ code: 'base-changed' });
    const node = await startNode({ image: { release, files: read.value!.files }, packagesFrom: REPO });
    nodes.push(node);
    expect(await node.invoke('web', 'codeOf', ['ws'])).toBe('ok');
  });
});
