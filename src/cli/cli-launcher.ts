#!/usr/bin/env node
import { fileURLToPath } from 'node:url';
import { commandKey, defaultCacheDirs, runWithCodeCache } from './code-cache.js';

/**
 * The `relup` command (package.json bin): src/cli/build-cli-bundle.mjs bundles
 * this file into dist/cli/bundle/relup.js, next to the CLI itself (cli.cjs),
 * and defines the constants below. tsc's dist/cli/cli-launcher.js is not meant
 * to be run.
 *
 * `relup --help` alone is answered from the text yargs printed at build time
 * (loading yargs and laying the help out took most of its 200–300 ms); any
 * other command runs cli.cjs with a V8 code cache (code-cache.ts).
 */
declare const RELUP_BUILD_ID: string;
declare const RELUP_HELP: Record<string, string>;

const args = process.argv.slice(2);
const env = process.env;
const english = [env['LC_ALL'], env['LC_MESSAGES'], env['LANG'], env['LANGUAGE']].every((v) => v === undefined || v === '' || /^(C|POSIX|en)([._@-]|$)/i.test(v));
const help = RELUP_HELP[Math.min(110, process.stdout.columns ?? 100)];

if (english && help !== undefined && args.length === 1 && (args[0] === '--help' || args[0] === '-h')) {
  process.stdout.write(help);
} else {
  const file = fileURLToPath(new URL('./cli.cjs', import.meta.url));
  // The CLI runs only as the program itself (main.ts compares its URL with argv[1]).
  process.argv[1] = file;
  if (env['RELUP_CODE_CACHE'] === '0') {
    const { createRequire } = await import('node:module');
    createRequire(import.meta.url)(file);
  } else {
    const dirs = env['RELUP_CODE_CACHE_DIR'] !== undefined && env['RELUP_CODE_CACHE_DIR'] !== '' ? [env['RELUP_CODE_CACHE_DIR']] : defaultCacheDirs(fileURLToPath(new URL('.', import.meta.url)));
    const debug = env['RELUP_DEBUG_CODE_CACHE'] === '1';
    runWithCodeCache({
      file,
      cacheName: `${RELUP_BUILD_ID}-${commandKey(args)}-${process.version}-${process.arch}.v8`,
      cacheDirs: dirs,
      // A usage error or a crash may have run little of the command: its cache would be a poor one for good.
      writeOnExit: (code) => code === 0 || code === 1,
      ...(debug ? { report: (event, detail) => process.stderr.write(`relup code cache: ${event} ${detail}\n`) } : {}),
    });
  }
}

