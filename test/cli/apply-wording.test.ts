import { copyFile, readFile, writeFile } from 'node:fs/promises';
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

/** A demo copy where 1.2.3 changes only route: one suspend group. */
async function routeOnly(dir: string): Promise<void> {
  const [old, next] = [join(dir, 'releases', '1.2.2'), join(dir, 'releases', '1.2.3')];
  for (const f of ['chat.js', 'config.js', 'game.js']) await copyFile(join(old, f), join(next, f));
  await edit(join(next, 'release.yaml'), (t) => t.replace('exports: [initialState, get, set, getAll, addNewSettings, removeNewSettings]', 'exports: [initialState, get, set, getAll]').replace('exports: [init, handleCall, handleCast, tick, addExp, addLevels, dropLevels]', 'exports: [init, handleCall, handleCast, tick]').replace('exports: [initialState, join, say, leave, members, addJoinedAt, dropJoinedAt]', 'exports: [initialState, join, say, leave, members]'));
  await writeFile(join(dir, 'appups', '1.2.3.yaml'), 'version: 1.2.3\nup:\n  - from: 1.2.2\n    instructions:\n      - update: route\ndown:\n  - to: 1.2.2\n    instructions:\n      - update: route\n        migration: dropErrorCount\n');
}

/** Issue 8 wording: "1 suspend groups", "dry-run: dry run:", and one step numbering in text and JSON. */
describe('apply output', { timeout: 60_000 }, () => {
  it('counts in the singular, says "dry run" once, and numbers steps from 1 in JSON as in text', async () => {
    const dir = await demoCopy();
    await routeOnly(dir);
    const node = await startNodeProcess(dir, { release: 'releases/1.2.2' });
    nodes.push(node);

    const dry = await runCli(['apply', '--target', node.socket, '--to', '1.2.3', '--dry-run'], dir);
    expect(dry.exitCode, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/\(\d+ steps, 1 suspend group\)/);
    expect(dry.stdout).not.toMatch(/dry.run: dry run/i);
    expect(dry.stdout.match(/dry run/g)?.length).toBe(2); // the heading "dry run of …" and the outcome

    // A failing migration: the text names "step N", and JSON failure.step.index is that same N.
    await edit(join(dir, 'releases', '1.2.3', 'route.js'), (t) => `${t}\nexports.boom = () => { throw new Error('boom'); };\n`);
    await edit(join(dir, 'releases', '1.2.3', 'release.yaml'), (t) => t.replace('exports: [initialState, handleRequest, getStats, dropErrorCount]', 'exports: [initialState, handleRequest, getStats, dropErrorCount, boom]'));
    await edit(join(dir, 'appups', '1.2.3.yaml'), (t) => t.replace('      - update: route\ndown:', '      - update: route\n        migration: boom\ndown:'));
    const plan = await runCli(['plan', '1.2.2', '1.2.3'], dir);
    const planned = /^\s+(\d+)\. migrate route\.boom/m.exec(plan.stdout)?.[1];
    expect(planned).toBeDefined();

    const text = await runCli(['apply', '--target', node.socket, '--to', '1.2.3'], dir);
    expect(text.exitCode).toBe(1);
    expect(text.stdout).toContain(`step ${planned} (migrate route.boom)`);
    expect(text.stdout).toMatch(new RegExp(`✗\\s+${planned} migrate route`));
    const json = JSON.parse((await runCli(['apply', '--target', node.socket, '--to', '1.2.3', '--json'], dir)).stdout);
    expect(json.failure.step).toMatchObject({ index: Number(planned), op: 'migrate' });
    const failed = json.journal.find((j: { status: string }) => j.status === 'failed');
    expect(failed.index).toBe(Number(planned));
  });
});
