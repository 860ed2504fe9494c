import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startNodeProcess, type NodeProcess } from '../helpers/node-process.js';
import { demoCopy, runCli } from '../helpers/run-cli.js';

const nodes: NodeProcess[] = [];
afterEach(async () => {
  await Promise.all(nodes.splice(0).map((n) => n.stop()));
});

async function edit(path: string, change: (text: string) => string): Promise<void> {
  await writeFile(path, change(await readFile(path, 'utf8')));
}

/**
 * Issue 8 item 7: route 1.2.3 adds the state key errorCount (absent); its
 * migration then throws, so the switch is undone. The outcome must not claim
 * the new key, in JSON or in text.
 */
describe('a rolled-back apply', { timeout: 60_000 }, () => {
  it('reports no new state keys, since the rollback removed them', async () => {
    const dir = await demoCopy();
    const rel = join(dir, 'releases', '1.2.3');
    await edit(join(rel, 'route.js'), (t) => `${t}\nexports.boom = () => { throw new Error('boom'); };\n`);
    await edit(join(rel, 'release.yaml'), (t) => t.replace('exports: [initialState, handleRequest, getStats, dropErrorCount]', 'exports: [initialState, handleRequest, getStats, dropErrorCount, boom]'));
    await edit(join(dir, 'appups', '1.2.3.yaml'), (t) => t.replace('      - update: route\n', '      - update: route\n        migration: boom\n'));
    const node = await startNodeProcess(dir, { release: 'releases/1.2.2' });
    nodes.push(node);

    const r = await runCli(['apply', '--target', node.socket, '--to', '1.2.3', '--json'], dir);
    expect(r.exitCode).toBe(1);
    const outcome = JSON.parse(r.stdout);
    expect(outcome).toMatchObject({ status: 'rolled-back', version: '1.2.2' });
    expect(outcome.journal.some((j: { op: string; target: string; status: string }) => j.op === 'switch' && j.target === 'route')).toBe(true);
    expect(outcome.absent).toEqual({});

    const text = await runCli(['apply', '--target', node.socket, '--to', '1.2.3'], dir);
    expect(text.exitCode).toBe(1);
    expect(text.stdout).toMatch(/rolled back to 1\.2\.2/);
    expect(text.stdout).not.toContain('new state keys');
    const c = await node.connect();
    const states = (await c.request('states', {})) as { modules: Record<string, Record<string, unknown>> };
    c.close();
    expect(Object.keys(states.modules['route']!)).toEqual(['accessCount']);
  });
});
