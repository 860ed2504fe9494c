import { cp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { runCli } from '../../helpers/run-cli.js';
import { testdir } from '../../helpers/testdir.js';
import { luaGate, sillyBinary } from './lua-env.js';

/**
 * `relup check --live` for Lua releases: the scratch node is a real Silly
 * node on TCP loopback with a secret of its own; the fixture's calls run
 * against its processes; a down migration that loses data is found.
 */
const found = await sillyBinary();
const ready = await luaGate('relup check --live for Lua releases (test/runtime/lua/silly-live-check.test.ts)', found.missing);
const env: Record<string, string> = found.binary === undefined ? {} : { SILLY: found.binary };
const APP = new URL('../../conformance/app/', import.meta.url).pathname;

/** The conformance app at 1.0.0 and 1.1.0 only, with a fixture that counts to 3. */
async function project(): Promise<string> {
  const dir = await testdir();
  for (const v of ['1.0.0', '1.1.0']) await cp(join(APP, 'lua', v), join(dir, 'releases', v), { recursive: true });
  await cp(join(APP, 'appups', '1.1.0.yaml'), join(dir, 'appups', '1.1.0.yaml'));
  const incr = { process: 'counter', message: { op: 'incr' } };
  await writeFile(join(dir, 'fixture.json'), JSON.stringify({ calls: [incr, incr, incr] }));
  return dir;
}

describe.runIf(ready)('relup check --live on Lua releases', { timeout: 90_000 }, () => {
  test('the round trip on a scratch Silly node keeps the state the fixture built', async () => {
    const dir = await project();
    const r = await runCli(['check', '--live', '--fixture', 'fixture.json', '--json'], dir, env);
    expect(r.exitCode, r.stderr + r.stdout).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.live).toEqual([expect.objectContaining({ from: '1.0.0', to: '1.1.0', ok: true, up: 'committed', down: 'committed', stateChecked: 'fixture', differences: [] })]);
  });

  test('a down migration that loses data is an error naming the path', async () => {
    const dir = await project();
    const file = join(dir, 'releases', '1.1.0', 'counter.lua');
    await writeFile(file, (await readFile(file, 'utf8')).replace('state.step = nil', 'state.step = nil\n\tstate.count = 0'));
    const r = await runCli(['check', '--live', '--fixture', 'fixture.json', '--json'], dir, env);
    expect(r.exitCode).toBe(1);
    const out = JSON.parse(r.stdout);
    expect(out.live[0]).toMatchObject({ ok: false, differences: ['processes.counter.count: 3 → 0'] });
    expect(out.diagnostics.map((d: { code: string }) => d.code)).toContain('live-roundtrip-state-differs');
  });
});
