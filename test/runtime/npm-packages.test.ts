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
