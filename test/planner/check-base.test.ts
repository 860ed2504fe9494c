import { describe, expect, it } from 'vitest';
import { checkBase } from '../../src/planner/check-base.js';
import type { BasePackage, Release } from '../../src/release/release-model.js';

const release = (version: string, packages?: string[], base?: BasePackage[]): Release => ({
  name: 'x',
  version,
  runtime: 'node',
  modules: [],
  processes: [],
  start: {},
  hash: version.padEnd(64, '0'),
  origin: `releases/${version}`,
  manifestFile: `releases/${version}/release.yaml`,
  ...(packages === undefined ? {} : { packages, packagesLine: 7 }),
  ...(base === undefined ? {} : { base }),
});

const ws = (version: string, hash = 'a'.repeat(64)): BasePackage => ({ name: 'ws', version, hash });

describe('checkBase (issue 12.2: a base change is refused by the planner)', () => {
  it('passes when both releases declare the same packages with the same record', () => {
    expect(checkBase(release('1.0.0', ['ws'], [ws('8.21.0')]), release('1.0.1', ['ws'], [ws('8.21.0')]))).toEqual([]);
    expect(checkBase(release('1.0.0'), release('1.0.1'))).toEqual([]);
  });

  it('refuses an added, removed, upgraded or re-installed package, located at packages: of the target', () => {
    const added = checkBase(release('1.0.0'), release('1.0.1', ['ws']));
    expect(added).toEqual([expect.objectContaining({ code: 'plan-base-changed', severity: 'error', file: 'releases/1.0.1/release.yaml', line: 7 })]);
    expect(added[0]!.message).toContain('ws added');
    expect(checkBase(release('1.0.0', ['ws']), release('1.0.1', []))[0]!.code).toBe('plan-base-changed');
    const upgraded = checkBase(release('1.0.0', ['ws'], [ws('8.20.0')]), release('1.0.1', ['ws'], [ws('8.21.0')]));
    expect(upgraded[0]!.message).toContain('ws 8.20.0 → 8.21.0');
    expect(checkBase(release('1.0.0', ['ws'], [ws('8.21.0')]), release('1.0.1', ['ws'], [ws('8.21.0', 'b'.repeat(64))]))[0]!.code).toBe('plan-base-changed');
  });
});
