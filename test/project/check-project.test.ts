import { cp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkProject } from '../../src/project/check-project.js';
import { loadProject } from '../../src/project/load-project.js';
import { demoCopy } from '../helpers/run-cli.js';

const codes = (r: ReturnType<typeof checkProject>) => r.diagnostics.map((d) => d.code).sort();

describe('checkProject', () => {
  it('plans the demo both ways with no diagnostics', async () => {
    const dir = await demoCopy();
    const r = checkProject(await loadProject({ cwd: dir, releases: 'releases', appups: 'appups' }));
    expect(r.diagnostics).toEqual([]);
    expect(r.transitions.map((t) => `${t.from}>${t.to}:${t.ok}`)).toEqual(['1.2.2>1.2.3:true', '1.2.3>1.2.2:true']);
  });

  it('reports an appup without a release, an entry matching nothing, and a release nothing reaches', async () => {
    const dir = await demoCopy();
    await writeFile(join(dir, 'appups', '2.0.0.yaml'), 'version: 2.0.0\nup:\n  - from: 1.2.3\n    instructions: []\n');
    const appup = join(dir, 'appups', '1.2.3.yaml');
    await writeFile(appup, (await readFile(appup, 'utf8')).replace('up:\n', 'up:\n  - from: 1.0.0\n    instructions: []\n'));
    await cp(join(dir, 'releases', '1.2.3'), join(dir, 'releases', '1.3.0'), { recursive: true });
    const manifest = join(dir, 'releases', '1.3.0', 'release.yaml');
    await writeFile(manifest, (await readFile(manifest, 'utf8')).replace('version: 1.2.3', 'version: 1.3.0'));
    const r = checkProject(await loadProject({ cwd: dir, releases: 'releases', appups: 'appups' }));
    expect(codes(r)).toEqual(['check-appup-without-release', 'check-entry-matches-no-release', 'check-release-unreachable']);
    expect(r.diagnostics.find((d) => d.code === 'check-entry-matches-no-release')).toMatchObject({ file: 'appups/1.2.3.yaml', line: 4 });
  });
});
