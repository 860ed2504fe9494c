import { appendFile, readFile, rm, writeFile, cp } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { draftAppup } from '../../src/appup/draft-appup.js';
import { parseAppup } from '../../src/appup/parse-appup.js';
import { stateOf } from '../../src/cli/commands/appup-draft-command.js';
import { plan } from '../../src/planner/plan.js';
import { appups, release, type ModuleSpec } from '../helpers/planner-fixtures.js';
import { demoCopy, runCli } from '../helpers/run-cli.js';

const codes = (text: string) => [...text.matchAll(/ error ([a-z-]+)/g)].map((m) => m[1]);

describe('relup appup draft on the demo', { timeout: 60_000 }, () => {
  it('covers every changed module; relup check fails on the migration stubs until they exist, then passes', async () => {
    const dir = await demoCopy();
    await rm(join(dir, 'appups', '1.2.3.yaml'));
    const r = await runCli(['appup', 'draft', '1.2.3'], dir);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain('wrote appups/1.2.3.yaml: 1.2.2 → 1.2.3, 0 load, 4 update, 0 add, 0 delete');
    const text = await readFile(join(dir, 'appups', '1.2.3.yaml'), 'utf8');
    expect(text).toContain('# DECIDE game (changed; runs process game)');
    // A second draft does not overwrite the first.
    expect((await runCli(['appup', 'draft', '1.2.3'], dir)).exitCode).toBe(2);

    const check = await runCli(['check'], dir);
    expect(check.exitCode).toBe(1);
    // Every stub reported, in both directions, and nothing else wrong: no coverage hole.
    expect(new Set(codes(check.stdout + check.stderr))).toEqual(new Set(['plan-migration-missing']));
    expect(check.stdout + check.stderr).toContain('upgradeFrom_1_2_2');
    expect(check.stdout + check.stderr).toContain('downgradeTo_1_2_2');

    // A person writes the stubs (here: keep the state as it is) and lists them: now check passes.
    for (const m of ['chat', 'config', 'game', 'route']) await appendFile(join(dir, 'releases', '1.2.3', `${m}.js`), '\nexports.upgradeFrom_1_2_2 = (state) => state;\nexports.downgradeTo_1_2_2 = (state) => state;\n');
    const yamlFile = join(dir, 'releases', '1.2.3', 'release.yaml');
    const manifest = await readFile(yamlFile, 'utf8');
    await writeFile(yamlFile, manifest.replace(/exports: \[(initialState|init)/g, 'exports: [upgradeFrom_1_2_2, downgradeTo_1_2_2, $1'));
    const after = await runCli(['check'], dir);
    expect(after.exitCode, after.stdout + after.stderr).toBe(0);
  });

  it('a change that touches no state passes relup check as written (load, add, delete)', async () => {
    const dir = await demoCopy();
    await cp(join(dir, 'releases', '1.2.3'), join(dir, 'releases', '1.2.4'), { recursive: true });
    const yamlFile = join(dir, 'releases', '1.2.4', 'release.yaml');
    const manifest = (await readFile(yamlFile, 'utf8')).replace('version: 1.2.3', 'version: 1.2.4');
    // http_api changes (no state, no process); banner is new.
    await appendFile(join(dir, 'releases', '1.2.4', 'http_api.js'), '\n// 1.2.4: a comment is a change too\n');
    await writeFile(join(dir, 'releases', '1.2.4', 'banner.js'), "exports.text = () => 'relup demo';\n");
    await writeFile(yamlFile, manifest.replace('modules:\n', 'modules:\n  banner:\n    file: banner.js\n    exports: [text]\n'));
    const r = await runCli(['appup', 'draft', 'v1.2.4', '--json'], dir);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ from: '1.2.3', to: '1.2.4', counts: { load: 1, update: 0, add: 1, delete: 0 }, stubs: [] });
    const text = await readFile(join(dir, 'appups', '1.2.4.yaml'), 'utf8');
    expect(text).toContain('- load: http_api');
    expect(text).toContain('- delete: banner');
    const check = await runCli(['check'], dir);
    expect(check.exitCode, check.stdout + check.stderr).toBe(0);
  });
});

describe('relup appup draft: exit codes', { timeout: 60_000 }, () => {
  it('2 for an unknown release, a --from that is not older, an existing file; 0 with --print or --force', async () => {
    const dir = await demoCopy();
    const code = async (...args: string[]) => (await runCli(args, dir)).exitCode;
    expect(await code('appup', 'draft', '9.9.9')).toBe(2);
    expect(await code('appup', 'draft', '1.2.3', '--from', '1.2.3')).toBe(2);
    expect(await code('appup', 'draft', '1.2.2')).toBe(2); // nothing older to compare with
    expect(await code('appup', 'draft', '1.2.3')).toBe(2); // appups/1.2.3.yaml exists
    const printed = await runCli(['appup', 'draft', '1.2.3', '--print'], dir);
    expect(printed.exitCode).toBe(0);
    expect(printed.stdout).toContain('version: 1.2.3');
    expect(await code('appup', 'draft', '1.2.3', '--force')).toBe(0);
    // execa strips the final newline of stdout.
    expect(await readFile(join(dir, 'appups', '1.2.3.yaml'), 'utf8')).toBe(`${printed.stdout}\n`);
  });
});

describe('draftAppup on a synthetic release of 1,000 modules', () => {
  it('covers every difference; the only planner errors are the migration stubs, in both directions', () => {
    const before: Record<string, ModuleSpec> = {};
    const after: Record<string, ModuleSpec> = {};
    const processes: Record<string, string> = {};
    for (let i = 0; i < 1000; i++) {
      const name = `m${String(i).padStart(4, '0')}`;
      const kind = i % 10; // 0-3 unchanged, 4-5 changed stateless, 6 changed with state, 7 changed with a process, 8 added, 9 removed
      const stateful = kind === 6;
      const exports = stateful ? ['initialState', 'run'] : ['run'];
      const deps = i > 0 && i % 3 === 0 ? [`m${String(i - 1).padStart(4, '0')}`] : [];
      if (kind === 7) processes[`p${name}`] = name;
      if (kind !== 8) before[name] = { code: `${name}@1`, exports, deps: deps.filter((d) => Number(d.slice(1)) % 10 !== 8) };
      if (kind !== 9) after[name] = { code: kind >= 4 ? `${name}@2` : `${name}@1`, exports, deps: deps.filter((d) => Number(d.slice(1)) % 10 !== 9) };
    }
    const from = release('1.0.0', before, processes);
    const to = release('1.1.0', after, processes);
    const started = performance.now();
    const draft = draftAppup({ from, to, stateOf, command: 'relup appup draft 1.1.0' });
    const ms = performance.now() - started;
    expect(draft.counts).toEqual({ load: 200, update: 200, add: 100, delete: 100, restart: 0, unchanged: 400 });
    const parsed = parseAppup(draft.text, 'appups/1.1.0.yaml');
    expect(parsed.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    for (const [a, b] of [
      [from, to],
      [to, from],
    ] as const) {
      const result = plan({ from: a, to: b, appups: appups(parsed.value!) });
      const errors = result.diagnostics.filter((d) => d.severity === 'error');
      expect(new Set(errors.map((d) => d.code))).toEqual(new Set(['plan-migration-missing']));
      expect(errors).toHaveLength(200);
    }
    // With the stubs exported, both directions plan cleanly.
    const withStubs = release(
      '1.1.0',
      Object.fromEntries(Object.entries(after).map(([m, spec]) => [m, { ...spec, exports: [...(spec.exports ?? []), 'upgradeFrom_1_0_0', 'downgradeTo_1_0_0'] }])),
      processes,
    );
    expect(plan({ from, to: withStubs, appups: appups(parsed.value!) }).diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    expect(plan({ from: withStubs, to: from, appups: appups(parsed.value!) }).diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    console.log(`draft of 1,000 modules: ${ms.toFixed(1)} ms, ${draft.text.length} bytes`);
  });
});
