#!/usr/bin/env node
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { commandKey, defaultCacheDirs, runWithCodeCache } from './code-cache.js';

/**
 * The `relup` command (package.json bin): src/cli/build-cli-bundle.mjs bundles
 * this file into dist/cli/bundle/relup.js, next to the CLI itself (cli.cjs),
 * and defines the constants below. tsc's dist/cli/cli-launcher.js is not meant
 * to be run.
 *
 * It runs as CommonJS (the build puts a package.json of type commonjs in
 * dist/cli/bundle/), hence `__filename`: an ES module entry costs Node.js its
 * ES module loader, which reads the file through fs/promises and builds a
 * facade of node:fs whose getters load fs streams (~10 ms, profiled).
 *
 * `relup --help` alone is answered from the text yargs printed at build time
 * (loading yargs and laying the help out took most of its 200–300 ms); any
 * other command runs cli.cjs with a V8 code cache (code-cache.ts).
 */
declare const RELUP_BUILD_ID: string;
declare const RELUP_HELP: Record<string, string>;
declare const RELUP_SOURCE_ENCODING: 'latin1' | 'utf8';

const args = process.argv.slice(2);
const env = process.env;
const english = [env['LC_ALL'], env['LC_MESSAGES'], env['LANG'], env['LANGUAGE']].every((v) => v === undefined || v === '' || /^(C|POSIX|en)([._@-]|$)/i.test(v));
const help = RELUP_HELP[Math.min(110, process.stdout.columns ?? 100)];

if (english && help !== undefined && args.length === 1 && (args[0] === '--help' || args[0] === '-h')) {
  process.stdout.write(help);
} else {
  const here = dirname(__filename);
  const file = join(here, 'cli.cjs');
  // The CLI runs only as the program itself (main.ts compares its URL with argv[1]).
  process.argv[1] = file;
  if (env['RELUP_CODE_CACHE'] === '0') {
    createRequire(__filename)(file);
  } else {
    const dirs = env['RELUP_CODE_CACHE_DIR'] !== undefined && env['RELUP_CODE_CACHE_DIR'] !== '' ? [env['RELUP_CODE_CACHE_DIR']] : defaultCacheDirs(here);
    const debug = env['RELUP_DEBUG_CODE_CACHE'] === '1';
    runWithCodeCache({
      file,
      sourceEncoding: RELUP_SOURCE_ENCODING,
      cacheName: `${RELUP_BUILD_ID}-${commandKey(args)}-${process.version}-${process.arch}.v8`,
      cacheDirs: dirs,
      // A usage error or a crash may have run little of the command: its cache would be a poor one for good.
      writeOnExit: (code) => code === 0 || code === 1,
      ...(debug ? { report: (event, detail) => process.stderr.write(`relup code cache: ${event} ${detail}\n`) } : {}),
    });
  }
}
