import { describe, expect, it } from 'vitest';
import { plan } from '../../src/planner/plan.js';
import { add, appup, appups, apply, del, entry, load, release, restart, update } from '../helpers/planner-fixtures.js';

const codes = (r: ReturnType<typeof plan>) => r.diagnostics.map((d) => d.code).sort();

const v1 = release('1.0.0', { a: {}, b: {}, c: {} }, { pa: 'a' });
const v2 = release('1.1.0', { a: { code: 'a@v2', exports: ['migrateUp', 'migrateDown'] }, b: {}, c: {} }, { pa: 'a' });

describe('planner diagnostics', () => {
  it('plans a covered change without diagnostics', () => {
    const r = plan({ from: v1, to: v2, appups: appups(appup('1.1.0', [entry('1.0.0', [update('a', { migration: 'migrateUp' })])])) });
    expect(r.diagnostics).toEqual([]);
    expect(r.script?.direction).toBe('up');
  });

  it('refuses a changed module with no instruction, located at the entry', () => {
    const e = entry('1.0.0', []);
    const r = plan({ from: v1, to: v2, appups: appups(appup('1.1.0', [e])) });
    expect(codes(r)).toEqual(['plan-changed-not-covered']);
    expect(r.diagnostics[0]).toMatchObject({ file: 'appups/1.1.0.yaml', line: e.line, severity: 'error' });
    expect(r.script).toBeUndefined();
  });

  it('refuses an instruction for a module in neither release, with a suggestion', () => {
    const ins = load('aa');
    const r = plan({ from: v1, to: v2, appups: appups(appup('1.1.0', [entry('1.0.0', [load('a'), ins])])) });
    expect(codes(r)).toEqual(['plan-unknown-module']);
    expect(r.diagnostics[0]!.line).toBe(ins.line);
    expect(r.diagnostics[0]!.message).toContain('"a"');
  });

  it('refuses an added module without add and a removed module without delete', () => {
    const to = release('1.1.0', { a: {}, b: {}, d: {} }, { pa: 'a' });
    const r = plan({ from: v1, to, appups: appups(appup('1.1.0', [entry('1.0.0', [])])) });
    expect(codes(r)).toEqual(['plan-added-not-covered', 'plan-removed-not-covered']);
  });

  it('accepts add and delete and rejects them when they do not match the releases', () => {
    const to = release('1.1.0', { a: {}, b: {}, d: {} }, { pa: 'a' });
    const ok = plan({ from: v1, to, appups: appups(appup('1.1.0', [entry('1.0.0', [add('d'), del('c')])])) });
    expect(ok.diagnostics).toEqual([]);
    const bad = plan({ from: v1, to, appups: appups(appup('1.1.0', [entry('1.0.0', [add('d'), add('a'), del('c'), del('b')])])) });
    expect(codes(bad)).toEqual(['plan-add-existing', 'plan-delete-kept']);
  });

  it('says to use add/delete when load/update names a new or removed module', () => {
    const to = release('1.1.0', { a: {}, b: {}, d: {} }, { pa: 'a' });
    const r = plan({ from: v1, to, appups: appups(appup('1.1.0', [entry('1.0.0', [load('d'), update('c')])])) });
    expect(codes(r)).toEqual(['plan-instruction-kind', 'plan-instruction-kind']);
  });

  it('refuses two releases claiming one version with different content, and a plan to the same release', () => {
    const twin = release('1.0.0', { a: { code: 'other' }, b: {}, c: {} }, { pa: 'a' });
    expect(codes(plan({ from: v1, to: twin, appups: appups() }))).toEqual(['plan-version-unchanged']);
    expect(codes(plan({ from: v1, to: v1, appups: appups() }))).toEqual(['plan-same-release']);
  });

  it('refuses a dependency on a module with no instruction, and on itself', () => {
    const r = plan({ from: v1, to: v2, appups: appups(appup('1.1.0', [entry('1.0.0', [load('a', { deps: ['b', 'a'] })])])) });
    expect(codes(r)).toEqual(['plan-dep-no-instruction', 'plan-dep-self']);
  });

  it('refuses a from version no entry matches, and a missing appup', () => {
    const a = appup('1.1.0', [entry('0.9.0', [load('a')]), entry('>=2.0.0', [load('a')])]);
    const r = plan({ from: v1, to: v2, appups: appups(a) });
    expect(codes(r)).toEqual(['plan-no-matching-entry']);
    expect(r.diagnostics[0]!.file).toBe('appups/1.1.0.yaml');
    expect(codes(plan({ from: v1, to: v2, appups: appups() }))).toEqual(['plan-no-appup']);
    expect(codes(plan({ from: v2, to: v1, appups: appups(appup('1.1.0', [entry('1.0.0', [load('a')])])) }))).toEqual(['plan-no-matching-entry']);
  });

  it('refuses a migration function the new release does not export, with a suggestion', () => {
    const ins = update('a', { migration: 'migrateUP' });
    const r = plan({ from: v1, to: v2, appups: appups(appup('1.1.0', [entry('1.0.0', [ins])])) });
    expect(codes(r)).toEqual(['plan-migration-missing']);
    expect(r.diagnostics[0]).toMatchObject({ line: ins.line });
    expect(r.diagnostics[0]!.message).toContain('migrateUp');
  });

  it('looks for a down migration in the newer code (dynamic) or the older code (static)', () => {
    const a = appup('1.1.0', [], [entry('1.0.0', [update('a', { migration: 'migrateDown' })])]);
    expect(plan({ from: v2, to: v1, appups: appups(a) }).diagnostics).toEqual([]);
    const s = appup('1.1.0', [], [entry('1.0.0', [update('a', { migration: 'migrateDown', mode: 'static' })])]);
    // 1.0.0's module "a" declares no exports, so a static down migration cannot be checked there.
    expect(codes(plan({ from: v2, to: v1, appups: appups(s) }))).toEqual(['plan-exports-undeclared']);
    const older = release('1.0.0', { a: { exports: ['other'] }, b: {}, c: {} }, { pa: 'a' });
    expect(codes(plan({ from: v2, to: older, appups: appups(s) }))).toEqual(['plan-migration-missing']);
  });

  it('checks apply functions and restart processes', () => {
    const r = plan({ from: v1, to: v2, appups: appups(appup('1.1.0', [entry('1.0.0', [load('a'), apply('a', 'nope'), apply('zz', 'f'), restart('px')])])) });
    expect(codes(r)).toEqual(['plan-function-missing', 'plan-unknown-module', 'plan-unknown-process']);
  });

  it('warns about reloading an unchanged module and about dependency cycles', () => {
    const r = plan({ from: v1, to: v2, appups: appups(appup('1.1.0', [entry('1.0.0', [load('a', { deps: ['b'] }), load('b', { deps: ['a'] })])])) });
    expect(codes(r)).toEqual(['plan-dep-cycle', 'plan-unchanged-module']);
    expect(r.script).toBeDefined();
  });

  it('refuses a process that changes module without a restart', () => {
    const to = release('1.1.0', { a: {}, b: {}, c: {} }, { pa: 'b' });
    expect(codes(plan({ from: v1, to, appups: appups(appup('1.1.0', [entry('1.0.0', [])])) }))).toEqual(['plan-process-module-changed']);
    expect(plan({ from: v1, to, appups: appups(appup('1.1.0', [entry('1.0.0', [restart('pa')])])) }).diagnostics).toEqual([]);
  });

  it('refuses releases of different applications or runtimes', () => {
    const other = { ...release('1.1.0', { a: {} }, {}, 'other'), runtime: 'lua' as const };
    expect(codes(plan({ from: v1, to: other, appups: appups() }))).toEqual(['plan-name-mismatch', 'plan-runtime-mismatch']);
  });

  it('matches entries in order, first match wins, with ranges', () => {
    const a = appup('1.1.0', [entry('>=1.0.0 <1.1.0', [load('a')]), entry('1.0.0', [update('a')])]);
    const r = plan({ from: v1, to: v2, appups: appups(a) });
    expect(r.script?.appup).toMatchObject({ entry: 0, versions: '>=1.0.0 <1.1.0' });
  });
});
