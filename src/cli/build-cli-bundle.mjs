// `npm run build` step 2 (after tsc): the CLI as shipped, in dist/cli/bundle/:
//
// - cli.cjs: dist/cli/main.js and every dependency, bundled by esbuild into
//   one CommonJS file. CommonJS because Node.js 20 can keep V8's compiled code
//   across runs only for scripts (`vm.Script` `cachedData`), not for ES
//   modules (`module.enableCompileCache` is 22.1+); one file because esbuild
//   splits only ES modules. Each command's modules stay lazy: esbuild turns
//   main.ts's `import('./commands/…')` into functions that evaluate them on
//   first use.
// - relup.js (package.json bin): src/cli/cli-launcher.ts, bundled as CommonJS
//   (package.json here says so), with the build id and the precomputed
//   `relup --help` text defined in. It runs cli.cjs with a V8 code cache
//   (src/cli/code-cache.ts).
//
// tsc still emits dist/ for the types and the library entry points (`relup`,
// `relup/node`). Every module keeps the `import.meta.url` it had in dist/ or
// node_modules/: code that finds files next to itself (the Lua runtime's
// vendor tree, yargs' locales) must see the same paths in the bundle. Only the
// entry gets the bundle's own URL: main.ts compares it with process.argv[1] to
// know it is the program being run.
import { execFileSync } from 'node:child_process';
import { chmod, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('../..', import.meta.url));
const entry = resolve(root, 'dist/cli/main.js');
// Built aside and swapped in with two renames: tests and benches may be running the CLI while someone builds.
const finaldir = resolve(root, 'dist/cli/bundle');
const outdir = resolve(root, `dist/cli/bundle.${process.pid}.tmp`);
const outfile = resolve(outdir, 'cli.cjs');
const launcher = resolve(outdir, 'relup.js');

// In a CommonJS file `import.meta` is empty: every module's `import.meta.url`
// becomes its old file's URL, computed from the bundle's (__relupBundleUrl,
// declared at the top of the file below; not `require(…)` inline, since some
// modules declare a `require` of their own), and the entry's becomes the
// bundle's own.
const bundleUrl = '__relupBundleUrl';
const keepImportMetaUrl = {
  name: 'keep-import-meta-url',
  setup(b) {
    b.onLoad({ filter: /\.(m|c)?js$/ }, async (args) => {
      const text = await readFile(args.path, 'utf8');
      if (!text.includes('import.meta.url')) return undefined;
      if (args.path === entry) return { contents: text.replaceAll('import.meta.url', bundleUrl), loader: 'js' };
      const rel = relative(dirname(outfile), args.path).split(sep).join('/');
      return { contents: text.replaceAll('import.meta.url', `new URL(${JSON.stringify(rel)}, ${bundleUrl}).href`), loader: 'js' };
    });
  },
};

// string-width (yargs, cliui and wrap-ansi each import a version) builds
// Unicode-property regular expressions (`\p{RGI_Emoji}` with the v flag) and
// an Intl.Segmenter when it loads: 25–40 ms of every run, for a function only
// help layout calls. Each import gets a stand-in that loads the real module on
// its first call (esbuild evaluates a module reached only by require() when
// it is first required).
const lazyStringWidth = {
  name: 'lazy-string-width',
  setup(b) {
    b.onResolve({ filter: /^string-width$/ }, async (args) => {
      if (args.pluginData === 'real') return undefined;
      const real = await b.resolve(args.path, { kind: args.kind, importer: args.importer, resolveDir: args.resolveDir, pluginData: 'real' });
      if (real.errors.length > 0) return { errors: real.errors };
      return { path: real.path, namespace: 'lazy-string-width' };
    });
    b.onLoad({ filter: /.*/, namespace: 'lazy-string-width' }, (args) => ({
      contents: `let width;\nexport default function stringWidth(text, options) {\n  width ??= require(${JSON.stringify(args.path)}).default;\n  return width(text, options);\n}\n`,
      loader: 'js',
      resolveDir: dirname(args.path),
    }));
  },
};

await rm(outdir, { recursive: true, force: true });
// Built-ins that cost a few ms to load and that many runs never use: node:tls
// (~5 ms, more under load) is imported by the client's connection and the
// node's control server, but only TCP targets with TLS need it; node:crypto
// (~3–7 ms) by the client's authentication, which a Unix socket skips, so
// `relup status` paid for both. Imports of these (only the functions named
// here: another one fails the build) get functions that load the built-in on
// first call.
const lazyBuiltins = {
  'node:tls': ['connect', 'createServer'],
  'node:crypto': ['createHash', 'createHmac', 'createPrivateKey', 'createPublicKey', 'generateKeyPairSync', 'randomBytes', 'randomUUID', 'sign', 'timingSafeEqual', 'verify'],
};
const lazyBuiltin = {
  name: 'lazy-builtin',
  setup(b) {
    const filter = new RegExp(`^(${Object.keys(lazyBuiltins).join('|')})$`);
    b.onResolve({ filter }, (args) => (args.kind === 'import-statement' && args.namespace === 'file' ? { path: args.path, namespace: 'lazy-builtin' } : undefined));
    b.onLoad({ filter: /.*/, namespace: 'lazy-builtin' }, (args) => ({
      contents: [
        'let loaded;',
        `const load = () => (loaded ??= require(${JSON.stringify(args.path)}));`,
        ...lazyBuiltins[args.path].map((name) => `export function ${name}(...args) {\n  return load().${name}(...args);\n}`),
      ].join('\n'),
      loader: 'js',
    }));
  },
};

const minify = process.env.RELUP_BUILD_NO_MINIFY === undefined;
const result = await build({
  entryPoints: [entry],
  outfile,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  charset: 'ascii', // esbuild's default: strings and names escaped, so a minified file is ASCII (read as latin1)
  plugins: [lazyStringWidth, lazyBuiltin, keepImportMetaUrl],
  legalComments: 'none',
  minify,
  keepNames: false,
  metafile: true,
  logLevel: 'warning',
});
let sourceEncoding = 'utf8';
// The launcher compiles cli.cjs inside a function wrapper, where a hashbang is
// a syntax error; the URL declaration goes after esbuild's "use strict", which
// is a directive only as the first statement.
{
  let code = await readFile(outfile, 'utf8');
  if (code.startsWith('#!')) code = code.slice(code.indexOf('\n') + 1);
  const strict = /^"use strict";\n?/.exec(code)?.[0] ?? '';
  const declaration = 'var __relupBundleUrl = require("node:url").pathToFileURL(__filename).href;\n';
  // An ASCII file (minified: esbuild escapes the rest; not so the comments an
  // unminified build keeps) is read as latin1, which skips UTF-8 decoding.
  sourceEncoding = /[^\x00-\x7f]/.test(code) ? 'utf8' : 'latin1';
  await writeFile(outfile, `${strict}${declaration}${code.slice(strict.length)}`);
}
const bytes = (await readFile(outfile)).length;
// Names the code cache files: a cache is valid for one build of cli.cjs only.
const buildId = createHash('sha256').update(await readFile(outfile)).digest('hex').slice(0, 16);

// `relup --help` is answered by the launcher from text yargs itself printed
// here, at the two widths main.ts lays help out at (100 columns when not a
// terminal, 110 in a wide one), so that it costs a Node.js start and one
// write: loading yargs and laying the help out took most of its 200–300 ms.
// Any other width, locale or argument loads the CLI.
const helpAt = (columns) =>
  execFileSync(process.execPath, ['--import', `data:text/javascript,process.stdout.columns=${columns}`, outfile, '--help'], { encoding: 'utf8', env: { ...process.env, LC_ALL: 'en_US.UTF-8', NO_COLOR: '1' } });
const help = { 100: helpAt(100), 110: helpAt(110) };
await build({
  entryPoints: [resolve(root, 'dist/cli/cli-launcher.js')],
  outfile: launcher,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  define: { RELUP_BUILD_ID: JSON.stringify(buildId), RELUP_HELP: JSON.stringify(help), RELUP_SOURCE_ENCODING: JSON.stringify(sourceEncoding) },
  banner: { js: '// Generated by src/cli/build-cli-bundle.mjs from src/cli/cli-launcher.ts and src/cli/code-cache.ts: the `relup` command.' },
  legalComments: 'none',
  logLevel: 'warning',
});
await chmod(launcher, 0o755);
// relup.js (package.json bin, so it keeps its name) is CommonJS: see cli-launcher.ts.
await writeFile(resolve(outdir, 'package.json'), '{ "type": "commonjs" }\n');
const old = `${finaldir}.${process.pid}.old`;
await rename(finaldir, old).catch(() => undefined);
await rename(outdir, finaldir);
await rm(old, { recursive: true, force: true });
process.stdout.write(`dist/cli/bundle/cli.cjs: ${(bytes / 1024).toFixed(0)} KiB from ${Object.keys(result.metafile.inputs).length} modules (build ${buildId}); launcher dist/cli/bundle/relup.js\n`);
