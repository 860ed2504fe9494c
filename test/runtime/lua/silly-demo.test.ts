import { execa } from 'execa';
import { describe, expect, test } from 'vitest';
import { REPO } from '../../helpers/repo-paths.js';
import { luaGate, sillyBinary } from './lua-env.js';

/** `npm run demo -- --runtime silly` end to end: a real Silly node, every printed claim checked by the demo itself. */
const found = await sillyBinary();
const ready = await luaGate('the Silly demo test (test/runtime/lua/silly-demo.test.ts)', found.missing);

describe.runIf(ready)('the Silly demo', () => {
  test('runs unattended and every check passes', { timeout: 120_000 }, async () => {
    const r = await execa('node', ['dist/demo/run-demo.js', '--runtime', 'silly'], { cwd: REPO, reject: false, env: { NO_COLOR: '1' } });
    expect(r.stdout).toContain('Every check passed.');
    expect(r.stdout).not.toContain('✗');
    expect(r.exitCode).toBe(0);
  });
});
