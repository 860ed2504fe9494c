import { describe, expect, it } from 'vitest';
import { entryMatches, isExactVersion, isVersionPattern, matchEntry } from '../../src/appup/match-entry.js';

const entries = (...versions: string[]) => versions.map((v, i) => ({ versions: v, name: `entry${i}` }));

describe('isExactVersion and isVersionPattern', () => {
  it('tells exact versions from ranges', () => {
    for (const v of ['1.2.3', '0.0.0', '10.20.30', '1.3.0-rc.1', '1.2.3+build.5', '1.0.0-alpha+001']) expect(isExactVersion(v), v).toBe(true);
    for (const v of ['v1.2.3', '=1.2.3', '1.2', '1', '1.2.x', '^1.2.3', '>=1.2.0 <1.2.3', '*', '01.2.3', ' 1.2.3', '']) expect(isExactVersion(v), v).toBe(false);
  });

  it('accepts exact versions and semver ranges, not blanks or words', () => {
    for (const p of ['1.2.2', '>=1.2.0 <1.2.3', '^1.1.0', '1.1.x', '~1.2', '1.2.0 - 1.2.2', '<1.0.0 || >=1.1.0 <1.2.0', '*', 'v1.2.2']) {
      expect(isVersionPattern(p), p).toBe(true);
    }
    for (const p of ['', '  ', 'latest', '1.2.2 || nope', '>=one']) expect(isVersionPattern(p), p).toBe(false);
  });
});

describe('entryMatches', () => {
  it('matches an exact version by string equality only', () => {
    expect(entryMatches('1.2.2', '1.2.2')).toBe(true);
    expect(entryMatches('1.2.2', '1.2.3')).toBe(false);
    expect(entryMatches('1.2.2+build.1', '1.2.2')).toBe(false);
    expect(entryMatches('1.2.2', '1.2.2+build.1')).toBe(false);
  });

  it('matches a range with semver.satisfies, pre-releases only when the range names one', () => {
    expect(entryMatches('>=1.2.0 <1.2.3', '1.2.2')).toBe(true);
    expect(entryMatches('>=1.2.0 <1.2.3', '1.2.3')).toBe(false);
    expect(entryMatches('^1.1.0', '1.9.9')).toBe(true);
    expect(entryMatches('1.1.x', '1.2.0')).toBe(false);
    expect(entryMatches('<1.3.0', '1.3.0-rc.1')).toBe(false);
    expect(entryMatches('>=1.3.0-rc.0 <1.3.0', '1.3.0-rc.1')).toBe(true);
  });

  it('never throws on garbage', () => {
    expect(entryMatches('latest', '1.2.2')).toBe(false);
    expect(entryMatches('^1.0.0', 'not a version')).toBe(false);
  });
});

describe('matchEntry', () => {
  it('returns the first matching entry and its index', () => {
    const list = entries('1.2.2', '>=1.2.0 <1.2.3', '^1.0.0');
    expect(matchEntry(list, '1.2.2')).toEqual({ entry: list[0], index: 0 });
    expect(matchEntry(list, '1.2.1')).toEqual({ entry: list[1], index: 1 });
    expect(matchEntry(list, '1.0.5')).toEqual({ entry: list[2], index: 2 });
    expect(matchEntry(list, '2.0.0')).toBeUndefined();
    expect(matchEntry([], '1.0.0')).toBeUndefined();
  });

  it('lets a range listed first shadow a later exact version: order decides, not specificity', () => {
    const list = entries('>=1.2.0 <1.2.3', '1.2.2');
    expect(matchEntry(list, '1.2.2')?.index).toBe(0);
  });
});
