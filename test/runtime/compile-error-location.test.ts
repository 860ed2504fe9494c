import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startNodeProcess, type NodeProcess } from '../helpers/node-process.js';
import { demoCopy, runCli } from '../helpers/run-cli.js';

const nodes: NodeProcess[] = [];
afterEach(async () => {
  await Promise.all(nodes.splice(0).map((n) => n.stop()));
});

/** Issue 8 item 6: the node's own compile error at staging carries line and column, like relup check. */
describe('a node refusing a module that does not compile', { timeout: 60_000 }, () => {
  it('names file:line:col in the refusal', async () => {
    const dir = await demoCopy();
    const node = await startNodeProcess(dir, { release: 'releases/1.2.2' });
    nodes.push(node);
    const route = join(dir, 'releases', '1.2.3', 'route.js');
    const lines = (await readFile(route, 'utf8')).split('\n');
    lines.splice(2, 0, '  foo(1, 2;');
    await writeFile(route, lines.join('\n'));

    const r = await runCli(['apply', '--target', node.socket, '--to', '1.2.3', '--json'], dir);
    expect(r.exitCode).toBe(1);
    const outcome = JSON.parse(r.stdout);
    expect(outcome).toMatchObject({ status: 'refused', version: '1.2.2', failure: { code: 'compile-error' } });
    expect(outcome.failure.message).toContain('relup:demo@1.2.3/route.js:3:10 does not compile: missing ) after argument list');
  });

  it('names file:line:col when the top level throws, e.g. a denied require', async () => {
    const dir = await demoCopy();
    const node = await startNodeProcess(dir, { release: 'releases/1.2.2' });
    nodes.push(node);
    const game = join(dir, 'releases', '1.2.3', 'game.js');
    await writeFile(game, `// players\nconst _ = require('lodash');\n${await readFile(game, 'utf8')}`);
    const r = await runCli(['apply', '--target', node.socket, '--to', '1.2.3', '--json'], dir);
    expect(r.exitCode).toBe(1);
    const outcome = JSON.parse(r.stdout);
    expect(outcome).toMatchObject({ status: 'refused', version: '1.2.2', failure: { code: 'compile-error' } });
    expect(outcome.failure.message).toContain('relup:demo@1.2.3/game.js:2:11 threw while loading: require("lodash")');
  });
});
