import { createHash, type KeyObject } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { existsSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa, type ResultPromise } from 'execa';
import { error, hasErrors, warning, type Checked, type Diagnostic } from '../../diagnostics/diagnostic.js';
import { UserError } from '../../errors/errors.js';
import { formatDiagnostic } from '../../diagnostics/format-diagnostic.js';
import { BUNDLE_BUILD_DIR } from '../../release/release-hash.js';
import type { Release } from '../../release/release-model.js';
import { ReleaseStore } from '../node-host/release-store.js';
import { packedBundleBytes, releaseFileDisplay } from '../runtime-driver.js';
import { beamModuleName } from './beam-module-name.js';

/**
 * The Erlang/OTP runtime seen from TypeScript: compile and check `.erl`
 * modules (erlc +deterministic, so hashes are reproducible), compile the
 * agent (src/runtime/erlang/agent/src/*.erl), and boot an Erlang node
 * (`erl -noshell`) running a release with the agent inside. The node itself
 * evaluates upgrades (docs/runtime-erlang.md); this file never does.
 */

/**
 * The agent's Erlang sources (src/runtime/erlang/agent/src), found by walking
 * up from this file: it runs from src/ (tests), dist/ (tsc) or the CLI bundle.
 */
export const AGENT_SOURCE_DIR = findAgentSources(fileURLToPath(new URL('.', import.meta.url)));

function findAgentSources(from: string): string {
  const relative = join('src', 'runtime', 'erlang', 'agent', 'src');
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, relative, 'relup_agent.erl'))) return join(dir, relative);
    if (dirname(dir) === dir) return join(from, relative);
  }
}

export const INSTALL_HINT = 'install Erlang/OTP 25 or later: apt-get install -y --no-install-recommends erlang-nox';

/** Whether `erl` and `erlc` run here; when not, why. */
export async function erlangAvailable(): Promise<{ ok: true; version: string } | { ok: false; reason: string; install: string }> {
  try {
    const r = await execa('erl', ['-noshell', '-eval', 'io:format("~s", [erlang:system_info(otp_release)]), halt().'], { timeout: 20_000, stdin: 'ignore' });
    await execa('erlc', ['-help'], { timeout: 20_000, stdin: 'ignore', reject: false });
    return { ok: true, version: r.stdout.trim() };
  } catch (e) {
    return { ok: false, reason: `erl is not runnable: ${(e as Error).message.split('\n')[0]}`, install: INSTALL_HINT };
  }
}

/**
 * Compile every `.erl` module of an Erlang release with `erlc +deterministic`
 * and report each compile error as a located diagnostic (file:line:col); a
 * `.beam` module must define the module it is named after.
 * `readFile` reads a file of the release by its release path.
 */
export async function checkModules(release: Release, readFile: (path: string) => Promise<Uint8Array>): Promise<Diagnostic[]> {
  return (await compileModules(release, readFile)).diagnostics;
}

/**
 * The `.beam` of every `.erl` module, compiled with `erlc +deterministic` (the
 * same source and OTP give the same bytes), as `relup-build/<module>.beam`:
 * bundles carry them and nodes load them instead of compiling
 * (docs/runtime-erlang.md). Without erlc the bundle gets none and says so (a
 * warning): its nodes then compile the sources themselves. A `.beam` module
 * of the release needs no artifact: it is loaded as it is.
 */
export async function buildArtifacts(release: Release, files: ReadonlyMap<string, Uint8Array>): Promise<Checked<Map<string, Uint8Array>>> {
  if (release.runtime !== 'erlang') return { value: new Map(), diagnostics: [] };
  const compiled = await compileModules(release, async (p) => files.get(p) ?? new Uint8Array());
  if (hasErrors(compiled.diagnostics)) return { value: undefined, diagnostics: compiled.diagnostics };
  const notInstalled = compiled.diagnostics.filter((d) => d.code === 'erlang-not-installed');
  if (notInstalled.length > 0) {
    return {
      value: new Map(),
      diagnostics: [warning('erlang-beams-not-built', `${release.name} ${release.version} is packed without .beam files (erlc is not installed here): its nodes will compile the sources while staging`, { file: release.manifestFile }, INSTALL_HINT)],
    };
  }
  const artifacts = new Map<string, Uint8Array>();
  for (const [name, beam] of [...compiled.beams].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) artifacts.set(beamArtifactPath(name), beam);
  return { value: artifacts, diagnostics: [] };
}

/** Where a bundle keeps the compiled code of module `name` (relup_release.erl looks there). */
export function beamArtifactPath(name: string): string {
  return `${BUNDLE_BUILD_DIR}/${name}.beam`;
}

/** What erlc made of one source: its output and, when it compiled, the .beam. */
interface ErlcRun {
  exitCode: number | undefined;
  missing: boolean;
  output: string;
  beam?: Uint8Array;
}

/** One erlc run per module name and source content in this process: `relup release pack` checks, then builds, the same sources. */
const erlcRuns = new Map<string, Promise<ErlcRun>>();

function erlc(name: string, source: Uint8Array): Promise<ErlcRun> {
  const key = `${name}\0${createHash('sha256').update(source).digest('hex')}`;
  let run = erlcRuns.get(key);
  if (run === undefined) {
    // Bounded, for a long-lived process that packs many releases: forgetting only costs a compile.
    if (erlcRuns.size >= 4096) erlcRuns.clear();
    run = compileOne(name, source);
    erlcRuns.set(key, run);
    // Failures are not kept: a missing erlc may be installed while a long-lived process runs.
    run.then((r) => r.beam === undefined && erlcRuns.delete(key), () => erlcRuns.delete(key));
  }
  return run;
}

async function compileOne(name: string, source: Uint8Array): Promise<ErlcRun> {
  const dir = await mkdtemp(join(tmpdir(), 'relup-erlc-'));
  try {
    await writeFile(join(dir, `${name}.erl`), source);
    // Run in the scratch directory on the bare file name, so erlc's messages name `<module>.erl`.
    const r = await execa('erlc', ['+deterministic', '-o', dir, `${name}.erl`], { cwd: dir, reject: false, stdin: 'ignore', all: true });
    const missing = (r as { code?: string }).code === 'ENOENT' || (r.failed && r.exitCode === undefined);
    const output = String(r.all ?? '');
    if (r.exitCode !== 0) return { exitCode: r.exitCode, missing, output };
    return { exitCode: 0, missing: false, output, beam: await readFile(join(dir, `${name}.beam`)) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Compile (or, for `.beam` files, read) every module: the findings, and the .beam of each `.erl` that compiled. */
async function compileModules(release: Release, readFile: (path: string) => Promise<Uint8Array>): Promise<{ diagnostics: Diagnostic[]; beams: Map<string, Uint8Array> }> {
  const diagnostics: Diagnostic[] = [];
  const beams = new Map<string, Uint8Array>();
  if (release.runtime !== 'erlang') return { diagnostics, beams };
  for (const m of release.modules) {
    const shown = releaseFileDisplay(release, m.file);
    if (m.file.endsWith('.beam')) {
      const found = beamModuleName(await readFile(m.file));
      if ('problem' in found) {
        diagnostics.push(error('erlang-beam-invalid', `${m.file} cannot be loaded as module ${m.name}: ${found.problem}`, { file: shown }, `give a .beam made by erlc (erlc +deterministic ${m.name}.erl), or the ${m.name}.erl source`));
      } else if (found.name !== m.name) {
        diagnostics.push(error('erlang-module-name', `${m.file} holds module ${found.name}, but release.yaml names it ${m.name}`, { file: release.manifestFile, line: m.line }, `rename the module entry to ${found.name}, or ship the .beam of ${m.name}`));
      }
      continue;
    }
    if (!m.file.endsWith('.erl')) {
      diagnostics.push(error('erlang-module-file', `module ${m.name} is ${m.file}; an Erlang module is a .erl source or a .beam file`, { file: release.manifestFile, line: m.line }, `rename it to ${m.name}.erl`));
      continue;
    }
    if (basename(m.file, '.erl') !== m.name) {
      diagnostics.push(error('erlang-module-name', `module ${m.name} is in ${m.file}; Erlang requires the file to be named after its module`, { file: release.manifestFile, line: m.line }, `rename the file to ${m.name}.erl or the module entry to ${basename(m.file, '.erl')}`));
      continue;
    }
    const r = await erlc(m.name, await readFile(m.file));
    if (r.beam !== undefined) {
      beams.set(m.name, r.beam);
      continue;
    }
    if (r.missing) {
      // Not installed here: say the modules were not checked, rather than pretend they were.
      diagnostics.push(warning('erlang-not-installed', `the Erlang modules of ${release.name} ${release.version} were not compiled: erlc is not installed here`, { file: release.manifestFile }, INSTALL_HINT));
      break;
    }
    const found = parseErlcErrors(r.output, `${m.name}.erl`, shown);
    diagnostics.push(...(found.length > 0 ? found : [error('erlang-compile-error', `${m.file} does not compile: ${r.output.trim() || `erlc exited with ${r.exitCode}`}`, { file: shown }, INSTALL_HINT)]));
  }
  return { diagnostics, beams };
}

/** erlc prints `file:line:col: message` (warnings say `Warning:`); only errors are findings. */
export function parseErlcErrors(output: string, compiledPath: string, shownPath: string): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const line of output.split('\n')) {
    const m = /^(.*?):(\d+)(?::(\d+))?: (.*)$/.exec(line.trim());
    if (m === null || m[1] !== compiledPath || m[4]!.startsWith('Warning:')) continue;
    out.push(error('erlang-compile-error', m[4]!, { file: shownPath, line: Number(m[2]), ...(m[3] === undefined ? {} : { column: Number(m[3]) }) }, 'fix the Erlang source; `relup check` compiles it with erlc +deterministic'));
  }
  return out;
}

/** Compile the agent once per source content into `cacheDir/<hash>/`; returns the ebin directory. */
export async function compileAgent(cacheDir: string): Promise<string> {
  const names = (await readdir(AGENT_SOURCE_DIR)).filter((n) => n.endsWith('.erl')).sort();
  const hash = createHash('sha256');
  for (const n of names) hash.update(n).update(await readFile(join(AGENT_SOURCE_DIR, n)));
  const ebin = join(cacheDir, hash.digest('hex').slice(0, 16));
  if (await exists(join(ebin, 'relup_agent.beam'))) return ebin;
  const tmp = `${ebin}.tmp-${process.pid}`;
  await mkdir(tmp, { recursive: true, mode: 0o700 });
  await execa('erlc', ['+deterministic', '-o', tmp, ...names.map((n) => join(AGENT_SOURCE_DIR, n))], { stdin: 'ignore' });
  await rm(ebin, { recursive: true, force: true });
  await rename(tmp, ebin);
  return ebin;
}

export interface ErlangNodeOptions {
  /** Release directory or bundle to boot when the state directory is fresh. */
  release?: string;
  socket: string;
  stateDir: string;
  /** Seen by the main module's start/1. */
  config?: Record<string, unknown>;
  env?: Record<string, string>;
  /** Stop the node when our stdin closes (the CLI wrapper's death). Default true. */
  watchStdin?: boolean;
  /** Accept only bundles signed by this ed25519 key (boot, upload and restart), like a Node.js node's --public-key. */
  publicKey?: KeyObject;
}

export interface ErlangNode {
  child: ResultPromise;
  pid: number;
  release: Release;
  output(): string;
}

/** Write boot.json and start `erl -noshell` with the agent; resolves once the control socket exists. */
export async function startErlangNode(options: ErlangNodeOptions): Promise<ErlangNode> {
  await mkdir(options.stateDir, { recursive: true, mode: 0o700 });
  const store = new ReleaseStore(options.stateDir, options.publicKey);
  const source = options.release ?? (await bootReleaseOf(options.stateDir));
  const loaded = await store.load(source);
  if (loaded.image === undefined || hasErrors(loaded.diagnostics)) {
    throw new Error(`${source} is not a valid release:\n${loaded.diagnostics.map((d) => formatDiagnostic(d, { color: false })).join('\n')}`);
  }
  const { release, files } = loaded.image;
  if (release.runtime !== 'erlang') throw new Error(`${source} is a ${release.runtime} release, not erlang`);
  const problems = await checkModules(release, async (p) => files.get(p) ?? new Uint8Array());
  if (hasErrors(problems)) throw new Error(problems.map((d) => formatDiagnostic(d, { color: false })).join('\n'));
  // The boot bundle: the agent installs it into its state directory on a fresh start.
  const bootBundle = join(options.stateDir, 'boot-release.tar.gz');
  if (options.release !== undefined || !(await exists(bootBundle))) {
    // A bundle is kept byte for byte (its manifest.sig included); a directory is packed.
    const isBundle = (await stat(source)).isFile();
    await writeFile(bootBundle, isBundle ? await readFile(source) : await packedBundleBytes(release, files), { mode: 0o600 });
  }
  const boot = {
    socket: options.socket,
    stateDir: options.stateDir,
    release: bootBundle,
    processes: release.processes.map((p) => ({ name: p.name, module: p.module, args: p.args ?? null })),
    start: release.start,
    config: options.config ?? {},
    // The raw 32-byte ed25519 key: the last 32 bytes of its SPKI DER encoding.
    publicKey: options.publicKey === undefined ? null : options.publicKey.export({ type: 'spki', format: 'der' }).subarray(-32).toString('base64'),
  };
  const bootFile = join(options.stateDir, 'boot.json');
  await writeFile(bootFile, `${JSON.stringify(boot, null, 2)}\n`, { mode: 0o600 });
  const ebin = await compileAgent(join(options.stateDir, 'agent'));
  const watch = options.watchStdin ?? true;
  const child = execa('erl', ['-noshell', '-pa', ebin, '-run', 'relup_boot', 'main', bootFile], {
    reject: false,
    stdin: watch ? 'pipe' : 'ignore',
    all: true,
    env: { ...options.env, RELUP_WATCH_STDIN: watch ? '1' : '0' },
  });
  let output = '';
  child.all?.on('data', (d: Buffer) => (output += d.toString()));
  const deadline = Date.now() + 20_000;
  while (!output.includes('relup agent')) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new UserError(`the Erlang node did not start: ${output.trim() || `erl exited with ${child.exitCode}`}`, 'the line above says why; `relup check` and `relup release verify` find most causes before a start');
    }
    await new Promise((r) => setTimeout(r, 30));
  }
  return { child, pid: child.pid!, release, output: () => output };
}

/** A restart without --release boots from the state directory (the agent picks the permanent release). */
async function bootReleaseOf(stateDir: string): Promise<string> {
  const bundle = join(stateDir, 'boot-release.tar.gz');
  if (await exists(bundle)) return bundle;
  throw new Error(`${stateDir} holds no Erlang release yet: pass --release <dir|bundle> for the first start`);
}

/** Whether a state directory belongs to an Erlang node (it holds the agent's boot.json). */
export async function isErlangStateDir(stateDir: string): Promise<boolean> {
  return exists(join(stateDir, 'boot.json'));
}

/** The runtime of a release directory or bundle, without booting it. */
export async function releaseRuntime(path: string): Promise<string | undefined> {
  const loaded = await new ReleaseStore(join(tmpdir(), 'relup-unused')).load(path).catch(() => undefined);
  return loaded?.image?.release.runtime;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}


/** The Erlang entry of src/runtime/runtime-driver.ts. */
export const erlangDriver = { runtime: 'erlang' as const, checkModules, buildArtifacts };
