import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, test } from 'vitest';
import { REPO } from '../../helpers/repo-paths.js';
import { luaEnv, luaGate, luaPath } from './lua-env.js';

/**
 * relup's join (src/runtime/lua/relup/join.lua) under plain lua5.4: the
 * guide's three examples up and down, each silly.patch weakness of issue 11
 * (passing with relup, failing with plain silly.patch), and the cases of
 * Silly's own testpatch. Each Lua file lists its cases; each runs alone.
 */
const env = await luaEnv();
const ready = await luaGate('the Lua join tests (test/runtime/lua/join.test.ts)', env.missing);

const DIR = join(REPO, 'test', 'runtime', 'lua', 'join');

async function runLua(file: string, args: string[]) {
  return execa(env.lua!, [join(DIR, file), ...args], {
    reject: false,
    env: { LUA_PATH: luaPath([DIR, join(env.sillyDir!, 'lualib')]), RELUP_REPO: REPO },
  });
}

const FILES: Record<string, string[]> = {
  'guide-cases.lua': ['route up and down', 'game up and down', 'config up and down', 'a migration that throws rolls back byte-identical', '1000 switches do not grow memory'],
  'weakness-cases.lua': [
    'VERSION field: relup passes',
    'VERSION field: silly.patch fails',
    'local changes type: relup passes',
    'local changes type: silly.patch fails',
    'new locals reported absent: relup passes',
    'new locals reported absent: silly.patch fails',
    'router reaches new code: relup passes',
    'router reaches new code: silly.patch fails',
    'split state (local newly used): relup passes',
    'split state (local newly used): silly.patch fails',
    'split state (new function): relup passes',
    'split state (new function): silly.patch fails',
    'timer reaches new code: relup passes',
    'timer reaches new code: silly.patch fails',
    'rollback restores data: relup passes',
    'rollback restores data: silly.patch fails',
  ],
  'testpatch-cases.lua': ['case1 closure, new global', 'case2 closure, new local', 'case3 timer', 'case4 shared local newly used', 'case5 function gains globals'],
};

describe.runIf(ready)('relup.join under lua5.4', () => {
  for (const [file, cases] of Object.entries(FILES)) {
    describe(file, () => {
      test('lists exactly the cases this suite runs', async () => {
        const r = await runLua(file, []);
        expect(r.exitCode).toBe(0);
        expect(r.stdout.split('\n').filter(Boolean).sort()).toEqual([...cases].sort());
      });
      for (const name of cases) {
        test(name, async () => {
          const r = await runLua(file, [name]);
          expect(r.stderr).toBe('');
          expect(r.stdout.trim()).toBe(`ok ${name}`);
          expect(r.exitCode).toBe(0);
        });
      }
    });
  }
});
