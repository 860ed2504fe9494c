import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, test } from 'vitest';
import { LUA_LIB_DIR } from '../../../src/runtime/lua/silly-build.js';
import { REPO } from '../../helpers/repo-paths.js';
import { luaGate, sillyBinary } from './lua-env.js';

/**
 * The agent's pieces that need Silly's C modules (HMAC against the
 * protocol's worked example, bundle refusals, release.yaml, JSON) and
 * Silly's testpatch case 3 with real timers, in one real Silly process.
 */
const found = await sillyBinary();
const ready = await luaGate('the Lua agent unit tests (test/runtime/lua/agent.test.ts)', found.missing);

const CASES = [
  "session key and tags match docs/protocol.md's worked example",
  'constant-time equal',
  'bundles with hostile entries are refused',
  'a bundle whose file differs from its manifest is refused; a good one reads',
  'release.yaml reader: the documented layout, and refusals with a line',
  'json: objects and arrays as marked, numbers and escapes',
  'testpatch case3: a running timer reaches the new code',
];

describe.runIf(ready)('the Lua agent inside Silly', () => {
  let run: Promise<{ lines: string[]; exitCode: number | undefined }> | undefined;
  const results = () =>
    (run ??= execa(found.binary!, [join(REPO, 'test', 'runtime', 'lua', 'silly', 'agent-cases.lua'), '-L', join(LUA_LIB_DIR, '?.lua')], { reject: false, timeout: 60_000 }).then((r) => ({
      lines: r.stdout.split('\n').filter((l) => /^(not )?ok /.test(l)),
      exitCode: r.exitCode,
    })));
  test('runs exactly these cases', { timeout: 60_000 }, async () => {
    const { lines } = await results();
    expect(lines.map((l) => CASES.find((c) => l === `ok ${c}` || l.startsWith(`not ok ${c}: `)))).toEqual(CASES);
  });
  for (const name of CASES) {
    test(name, { timeout: 60_000 }, async () => {
      const { lines } = await results();
      expect(lines.find((l) => l.includes(name))).toBe(`ok ${name}`);
    });
  }
});
