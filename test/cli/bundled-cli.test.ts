import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, test } from 'vitest';
import { CLI, REPO } from '../helpers/repo-paths.js';

/**
 * The shipped CLI (package.json bin) is the esbuild bundle of dist/cli/main.js
 * behind a launcher that answers `relup --help` from text yargs printed at build
 * time (src/cli/build-cli-bundle.mjs). It must say exactly what the unbundled CLI says.
 */
const UNBUNDLED = join(REPO, 'dist', 'cli', 'main.js');
const run = (cli: string, args: string[], env: Record<string, string> = {}) =>
  execa(process.execPath, [cli, ...args], { cwd: REPO, reject: false, env: { NO_COLOR: '1', LC_ALL: '', LC_MESSAGES: '', LANG: 'en_US.UTF-8', LANGUAGE: '', ...env }, extendEnv: true });

describe('the bundled CLI', () => {
  test('relup --help and -h: the precomputed text is what yargs prints', async () => {
    const yargsHelp = await run(UNBUNDLED, ['--help']);
    expect(yargsHelp.exitCode).toBe(0);
    for (const flag of ['--help', '-h']) {
      const bundled = await run(CLI, [flag]);
      expect(bundled.exitCode).toBe(0);
      expect(bundled.stdout).toBe(yargsHelp.stdout);
    }
  });

  test('another locale is laid out by yargs in that locale, not answered from the English text', async () => {
    const env = { LC_ALL: 'de_DE.UTF-8' };
    const [bundled, unbundled, english] = await Promise.all([run(CLI, ['--help'], env), run(UNBUNDLED, ['--help'], env), run(CLI, ['--help'])]);
    expect(bundled.stdout).toBe(unbundled.stdout);
    // yargs ships German strings: the launcher must not have printed its English copy.
    expect(bundled.stdout).not.toBe(english.stdout);
  });

  test('commands run from the bundle as from tsc output: plan, a subcommand help, a usage error', async () => {
    for (const args of [['plan', '1.2.2', '1.2.3'], ['plan', '--help'], ['plan', '1.2.2']]) {
      const [bundled, unbundled] = await Promise.all([run(CLI, args), run(UNBUNDLED, args)]);
      expect({ args, code: bundled.exitCode, stdout: bundled.stdout, stderr: bundled.stderr }).toEqual({ args, code: unbundled.exitCode, stdout: unbundled.stdout, stderr: unbundled.stderr });
    }
  });
});
