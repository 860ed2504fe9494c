import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { demoCopy, runCli } from '../helpers/run-cli.js';

type D = { code: string; severity: string; file?: string; line?: number; column?: number };

async function append(dir: string, file: string, text: string): Promise<void> {
  const path = join(dir, 'releases', '1.2.3', file);
  await writeFile(path, (await readFile(path, 'utf8')) + text);
}

/**
 * Issue 8 item 6: a module a node cannot load must fail `relup check` at
 * file:line:col with the compiler's message, and `release pack` must refuse it.
 */
describe('relup check compiles every module', { timeout: 60_000 }, () => {
  it('reports a syntax error, ESM syntax, TypeScript syntax and a denied require, each located', async () => {
    const dir = await demoCopy();
    await append(dir, 'route.js', '\nfoo(1, 2;\n'); // line 23 after the demo's 21 lines + blank
    await append(dir, 'game.js', '\nconst _ = require("lodash");\n');
    await append(dir, 'config.js', '\nexport const x = 1;\n');
    const httpApi = join(dir, 'releases', '1.2.3', 'http_api.js');
    await writeFile(httpApi, `const port: number = 1;\n${await readFile(httpApi, 'utf8')}`);

    const r = await runCli(['check', '--json'], dir);
    expect(r.exitCode).toBe(1);
    const ds = (JSON.parse(r.stdout).diagnostics as D[]).filter((d) => d.code.startsWith('module-'));
    const routeLines = (await readFile(join(dir, 'releases', '1.2.3', 'route.js'), 'utf8')).split('\n');
    expect(ds).toContainEqual(expect.objectContaining({ code: 'module-compile-error', severity: 'error', file: 'releases/1.2.3/route.js', line: routeLines.indexOf('foo(1, 2;') + 1, column: 8 }));
    expect(ds).toContainEqual(expect.objectContaining({ code: 'module-require-denied', file: 'releases/1.2.3/game.js', column: 11 }));
    expect(ds).toContainEqual(expect.objectContaining({ code: 'module-compile-error', file: 'releases/1.2.3/config.js', column: 1 }));
    expect(ds).toContainEqual(expect.objectContaining({ code: 'module-compile-error', file: 'releases/1.2.3/http_api.js', line: 1, column: 7 }));
    expect(ds.every((d) => d.line !== undefined)).toBe(true);

    const text = await runCli(['check'], dir);
    expect(text.exitCode).toBe(1);
    expect(text.stdout).toMatch(/^releases\/1\.2\.3\/route\.js:\d+:8: error module-compile-error: .*missing \) after argument list/m);
  });

  it('release pack refuses a release that check refuses, and writes nothing', async () => {
    const dir = await demoCopy();
    await append(dir, 'route.js', '\nimport x from "y";\n');
    const r = await runCli(['release', 'pack', '1.2.3', '--json'], dir);
    expect(r.exitCode).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, diagnostics: [expect.objectContaining({ code: 'module-compile-error', file: 'releases/1.2.3/route.js' })] });
    expect((await readdir(join(dir, 'releases'))).filter((n) => n.endsWith('.tar.gz'))).toEqual([]);
    const good = await runCli(['release', 'pack', '1.2.2'], dir);
    expect(good.exitCode, good.stderr).toBe(0);
  });

  it('release verify of a release directory applies the same module checks', async () => {
    const dir = await demoCopy();
    await append(dir, 'route.js', '\nexport default 1;\n');
    const r = await runCli(['release', 'verify', '1.2.3', '--json'], dir);
    expect(r.exitCode).toBe(1);
    expect(JSON.parse(r.stdout).diagnostics).toContainEqual(expect.objectContaining({ code: 'module-compile-error', file: 'releases/1.2.3/route.js' }));
    expect((await runCli(['release', 'verify', '1.2.2'], dir)).exitCode).toBe(0);
  });

  it('check --live names a transition it cannot run because a module does not load, instead of failing to start a node', async () => {
    const dir = await demoCopy();
    const route = join(dir, 'releases', '1.2.2', 'route.js');
    await writeFile(route, `${await readFile(route, 'utf8')}\nfoo(;\n`);
    const r = await runCli(['check', '--live', '--json'], dir);
    expect(r.exitCode).toBe(1);
    const report = JSON.parse(r.stdout);
    expect(report.liveSkipped).toEqual([expect.objectContaining({ from: '1.2.2', to: '1.2.3' })]);
    expect(report.diagnostics.map((d: D) => d.code)).toContain('module-compile-error');
    const text = await runCli(['check', '--live'], dir);
    expect(text.stdout).toMatch(/✗ live 1\.2\.2 → 1\.2\.3 → 1\.2\.2 not run: a module/);
  });

  it('passes the demo with no module finding', async () => {
    const dir = await demoCopy();
    const r = await runCli(['check', '--json'], dir);
    expect(r.exitCode).toBe(0);
    expect((JSON.parse(r.stdout).diagnostics as D[]).filter((d) => d.code.startsWith('module-'))).toEqual([]);
    expect(JSON.parse(r.stdout).modulesCompiled).toBe(10);
    expect((await runCli(['check'], dir)).stdout).toContain('2 releases (10 modules compiled)');
  });
});
