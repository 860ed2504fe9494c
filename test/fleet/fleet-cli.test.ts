import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load-config.js';
import { parseDuration, planWaves } from '../../src/client/fleet/waves.js';
import { demoCopy, runCli } from '../helpers/run-cli.js';

describe('planWaves and parseDuration', () => {
  it('canary first, then waves of the given size, in fleet order', () => {
    const nodes = ['a', 'b', 'c', 'd', 'e', 'f'];
    expect(planWaves(nodes, { canary: 1, waveSize: 2 }).map((w) => `${w.kind}:${w.nodes.join('')}`)).toEqual(['canary:a', 'wave:bc', 'wave:de', 'wave:f']);
    expect(planWaves(nodes, { canary: 0, waveSize: 4 }).map((w) => w.nodes.join(''))).toEqual(['abcd', 'ef']);
    expect(planWaves(['a'], { canary: 3, waveSize: 2 }).map((w) => w.nodes)).toEqual([['a']]);
    expect(planWaves([], { canary: 1, waveSize: 2 })).toEqual([]);
  });

  it('reads 500ms, 30s, 2m, 1h and nothing else', () => {
    expect([parseDuration('500ms'), parseDuration('30s'), parseDuration('2m'), parseDuration('1h')]).toEqual([500, 30_000, 120_000, 3_600_000]);
    for (const bad of ['', '30', '1.5s', '-1s', '2d', 's']) expect(parseDuration(bad)).toBeUndefined();
  });
});

describe('fleets in relup.config.yaml', () => {
  it('accepts a fleet and reports a misspelt key with a suggestion', () => {
    const ok = parseConfig('targets:\n  a: { socket: a.sock }\nfleets:\n  prod:\n    targets: [a]\n    canary: 1\n    waveSize: 2\n    onFailure: leave\n    health: { path: /health, invoke: { module: route, function: ok, args: [1] } }\n    soak: 30s\n', 'relup.config.yaml');
    expect(ok.diagnostics).toEqual([]);
    expect(ok.value?.fleets?.['prod']).toMatchObject({ targets: ['a'], onFailure: 'leave', soak: '30s' });
    const bad = parseConfig('fleets:\n  prod:\n    targets: [a]\n    wavesize: 2\n', 'relup.config.yaml');
    expect(bad.value).toBeUndefined();
    expect(bad.diagnostics[0]).toMatchObject({ line: 4 });
    expect(bad.diagnostics[0]?.message).toContain('waveSize');
    expect(parseConfig('fleets:\n  prod:\n    targets: [a]\n    soak: soon\n', 'relup.config.yaml').value).toBeUndefined();
  });
});

describe('relup apply --fleet: exit codes without a rollout', { timeout: 60_000 }, () => {
  it('2 for bad input, 1 when every node is unreachable (refused, nothing changed)', async () => {
    const dir = await demoCopy();
    await writeFile(join(dir, 'relup.config.yaml'), 'targets:\n  a: { socket: run/a.sock }\n  b: { socket: run/b.sock }\nfleets:\n  prod:\n    targets: [a, b]\n  typo:\n    targets: [a, zz]\n');
    const code = async (...args: string[]) => (await runCli(args, dir)).exitCode;
    expect(await code('apply', '--fleet', 'prdo')).toBe(2);
    expect(await code('apply', '--fleet', 'typo')).toBe(2);
    expect(await code('apply', '--fleet', 'prod', '--target', 'a')).toBe(2);
    expect(await code('apply', '--fleet', 'prod', '--dry-run')).toBe(2);
    expect(await code('apply', '--target', 'a', '--canary', '1')).toBe(2);
    expect(await code('apply', '--target', 'a', '--soak', '30s')).toBe(2);
    expect(await code('apply', '--target', 'a', '--soak', 'soon', '--health-path', '/x')).toBe(2);
    expect(await code('apply', '--target', 'a', '--soak', '1s', '--health-invoke', 'nodot')).toBe(2);
    const r = await runCli(['apply', '--fleet', 'prod', '--to', '1.2.3', '--json'], dir);
    expect(r.exitCode).toBe(1);
    const result = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
    expect(result).toMatchObject({ type: 'result', ok: false, refused: true });
    expect(result.rows.map((x: { outcome: string }) => x.outcome)).toEqual(['unreachable', 'unreachable']);
    const text = await runCli(['apply', '--fleet', 'prod', '--to', '1.2.3'], dir);
    expect(text.stdout).toContain('refused: no node was changed');
  });
});

describe('relup apply --target with a health check', { timeout: 60_000 }, () => {
  it('runs as a fleet of one: a health flag is never ignored (here the node is unreachable: refused, exit 1)', async () => {
    const dir = await demoCopy();
    const r = await runCli(['apply', '--target', 'run/none.sock', '--to', '1.2.3', '--health-path', '/health', '--json'], dir);
    expect(r.exitCode).toBe(1);
    expect(JSON.parse(r.stdout.trim().split('\n').at(-1)!)).toMatchObject({ type: 'result', refused: true, rows: [{ node: 'run/none.sock', outcome: 'unreachable' }] });
  });
});
