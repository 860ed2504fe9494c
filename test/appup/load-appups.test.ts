import { mkdir, symlink } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadAppups, versionInName } from '../../src/appup/load-appups.js';
import { DEMO_APPUPS } from '../helpers/repo-paths.js';
import { testdir } from '../helpers/testdir.js';

const appup = (version: string, from = '0.1.0') => `# header\nversion: ${version}\nup:\n  - from: ${from}\n    instructions: []\n`;

describe('loadAppups', () => {
  it('loads the demo appups', async () => {
    const { appups, diagnostics } = await loadAppups(DEMO_APPUPS);
    expect(diagnostics).toEqual([]);
    expect([...appups.keys()]).toEqual(['1.2.3']);
    expect(appups.get('1.2.3')).toMatchObject({ file: join(DEMO_APPUPS, '1.2.3.yaml'), version: '1.2.3' });
  });

  it('reads *.yaml and *.yml, with or without a leading v, and nothing else', async () => {
    const dir = await testdir({
      '1.0.0.yaml': appup('1.0.0'),
      'v1.1.0.yml': appup('1.1.0'),
      'README.md': 'not an appup',
      '.1.2.0.yaml': 'ignored: dot file',
      'nested/1.3.0.yaml': appup('1.3.0'),
    });
    const { appups, diagnostics } = await loadAppups(dir);
    expect(diagnostics).toEqual([]);
    expect([...appups.keys()]).toEqual(['1.0.0', '1.1.0']);
    expect(appups.get('1.1.0')!.file).toBe(join(dir, 'v1.1.0.yml'));
  });

  it('keeps file paths relative when the directory is relative', async () => {
    const dir = await testdir({ '1.0.0.yaml': 'version: 1.0.0\nup: [{from: 1.0.0, instructions: []}]\n' });
    const rel = relative(process.cwd(), dir);
    const { diagnostics } = await loadAppups(rel);
    expect(diagnostics).toMatchObject([{ code: 'appup-direction', file: join(rel, '1.0.0.yaml'), line: 2 }]);
  });

  it('reports paths under the display directory when one is given', async () => {
    const dir = await testdir({ '1.0.0.yaml': 'version: 1.0.0\n' });
    const { diagnostics } = await loadAppups(dir, 'appups');
    expect(diagnostics).toMatchObject([{ code: 'appup-empty', file: join('appups', '1.0.0.yaml'), line: 1 }]);
  });

  it('refuses a file whose name and version disagree, at the version key (appup-file-name-mismatch)', async () => {
    const dir = await testdir({ '1.2.4.yaml': appup('1.2.3'), 'next.yaml': appup('1.3.0') });
    const { appups, diagnostics } = await loadAppups(dir);
    expect(diagnostics.map((d) => ({ code: d.code, file: d.file, line: d.line, column: d.column }))).toEqual([
      { code: 'appup-file-name-mismatch', file: join(dir, '1.2.4.yaml'), line: 2, column: 1 },
      { code: 'appup-file-name-mismatch', file: join(dir, 'next.yaml'), line: 2, column: 1 },
    ]);
    expect(appups.size).toBe(0);
  });

  it('refuses a second file for the same version and keeps the first (appup-duplicate-version)', async () => {
    const dir = await testdir({ '1.2.3.yaml': appup('1.2.3', '1.2.2'), 'v1.2.3.yml': appup('1.2.3', '1.2.1') });
    const { appups, diagnostics } = await loadAppups(dir);
    expect(diagnostics.map((d) => ({ code: d.code, file: d.file, line: d.line }))).toEqual([
      { code: 'appup-duplicate-version', file: join(dir, 'v1.2.3.yml'), line: 2 },
    ]);
    expect(appups.get('1.2.3')!.up[0]!.versions).toBe('1.2.2');
  });

  it('passes on the diagnostics of each file and leaves out files with errors', async () => {
    const dir = await testdir({ '1.0.0.yaml': 'version: 1.0.0\nup: [\n', '1.1.0.yaml': 'version: 1.1.0\nup: [{form: 1.0.0, instructions: []}]\n', '1.2.0.yaml': appup('1.2.0') });
    const { appups, diagnostics } = await loadAppups(dir);
    expect([...appups.keys()]).toEqual(['1.2.0']);
    expect(diagnostics.map((d) => [d.code, d.file])).toEqual(
      expect.arrayContaining([
        ['yaml-syntax', join(dir, '1.0.0.yaml')],
        ['appup-unknown-key', join(dir, '1.1.0.yaml')],
      ]),
    );
  });

  it('reports a missing directory and unreadable files instead of throwing', async () => {
    const dir = await testdir();
    expect(await loadAppups(join(dir, 'nope'))).toEqual({
      appups: new Map(),
      diagnostics: [expect.objectContaining({ code: 'appup-dir-unreadable', file: join(dir, 'nope') })],
    });
    await mkdir(join(dir, 'appups'));
    await symlink(join(dir, 'missing.yaml'), join(dir, 'appups', '1.0.0.yaml'));
    const { diagnostics } = await loadAppups(join(dir, 'appups'));
    expect(diagnostics).toMatchObject([{ code: 'appup-file-unreadable', file: join(dir, 'appups', '1.0.0.yaml') }]);
  });

  it('takes the version out of a file name', () => {
    expect(['1.2.3.yaml', 'v1.2.3.yml', '1.2.3-rc.1.YAML', 'vv1.yaml'].map(versionInName)).toEqual(['1.2.3', '1.2.3', '1.2.3-rc.1', 'v1']);
  });
});
