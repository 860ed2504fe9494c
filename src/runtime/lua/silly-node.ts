import { once } from 'node:events';
import { mkdir, stat, writeFile, chmod } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { formatDiagnostic } from '../../diagnostics/format-diagnostic.js';
import { hasErrors } from '../../diagnostics/diagnostic.js';
import { bundleBytes } from '../../release/bundle-bytes.js';
import { readReleaseFiles } from '../../release/release-files.js';
import { verifyFiles } from '../../release/verify-release.js';
import { LUA_LIB_DIR } from './silly-build.js';

/**
 * Boot a Silly process running the relup agent (relup.agent.start) on a Lua
 * release: what `relup node start` does for a `runtime: lua` release, and
 * what the tests and the demo use. The agent inside the process owns the
 * node (its history, bundles and transactions); this side only starts it,
 * relays its output and stops it.
 */
export interface SillyNodeOptions {
  /** The silly binary. */
  silly: string;
  /** Release directory or bundle to boot when the state directory is fresh. */
  release?: string;
  stateDir: string;
  /** host:port of the control socket (TCP; port 0 picks a free one). */
  listen: { host: string; port: number };
  /** A file holding the shared secret (read by the agent). */
  secretFile: string;
  /** Accept only bundles signed by this ed25519 public key (PEM file). */
  publicKeyFile?: string;
  /** Close control connections idle this many ms (default 300000). */
  idleTimeoutMs?: number;
  /** Handed to start(config) of the release's start.main module. */
  config?: Record<string, unknown>;
  /** Extra environment (RELUP_FAULTS, …). */
  env?: Record<string, string>;
  /** Where the node's output goes, line by line. */
  onOutput?: (line: string, stream: 'stdout' | 'stderr') => void;
  /** How long to wait for the agent to listen. Default 30 s. */
  startTimeoutMs?: number;
}

export interface SillyNode {
  /** host:port of the control socket. */
  address: string;
  pid: number;
  notice: string;
  output(): string;
  /** SIGTERM, then SIGKILL after a grace period; resolves with the exit code. */
  stop(): Promise<number | undefined>;
  kill(): Promise<void>;
  exited: Promise<number | undefined>;
}

const BOOT_SCRIPT = `-- Written by relup node start: boot the relup agent in this Silly process.
local lib = os.getenv("RELUP_LUA_LIB")
package.path = lib .. "/?.lua;" .. package.path
local json = require "silly.encoding.json"
local agent = require "relup.agent"
local opts = json.decode(os.getenv("RELUP_LUA_BOOT"))
-- An error raised inside (a bug, not a refusal) must stop the process too, not leave it idle.
local ok, node, err = pcall(agent.start, opts)
if not ok then
	node, err = nil, node
end
if not node then
	io.stderr:write("relup agent: " .. tostring(err) .. "\\n")
	io.stderr:flush()
	os.exit(2)
end
-- SIGTERM stops the node like SIGINT (Silly only handles SIGINT by default).
require("silly.signal")("SIGTERM", function()
	require("silly").exit(0)
end)
print("relup-lua: " .. node.notice)
print("relup-lua: listening " .. node.listen)
io.stdout:flush()
`;

export class SillyNodeError extends Error {
  constructor(
    message: string,
    readonly output: string,
  ) {
    super(message);
  }
}

/** A free TCP port on `host` (for --listen :0: Silly does not report the port it bound). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const server = createServer();
  server.listen(0, host);
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  await new Promise((r) => server.close(r));
  return port;
}

/** The release as a bundle file the agent can read: a bundle as given, a directory packed into the state directory. */
async function releaseBundle(release: string, stateDir: string, signedOnly: boolean): Promise<string> {
  if ((await stat(release)).isFile()) return release;
  if (signedOnly) throw new SillyNodeError(`${release} is a directory, and this node only accepts signed bundles: pack and sign it (relup release pack, then relup release sign)`, '');
  const read = await readReleaseFiles(release);
  const report = read.value === undefined ? undefined : verifyFiles(read.value, release);
  const diagnostics = [...read.diagnostics, ...(report?.diagnostics ?? [])];
  if (report?.release === undefined || hasErrors(diagnostics)) {
    throw new SillyNodeError(`${release} is not a valid release:\n${diagnostics.map((d) => formatDiagnostic(d, { color: false })).join('\n')}`, '');
  }
  if (report.release.runtime !== 'lua') throw new SillyNodeError(`${release} is a ${report.release.runtime} release, not lua`, '');
  const { bytes } = await bundleBytes(report.release, read.value!.files);
  const path = join(stateDir, `boot-${report.release.name}-${report.release.version}.tar.gz`);
  await writeFile(path, bytes, { mode: 0o600 });
  return path;
}

export async function startSillyNode(options: SillyNodeOptions): Promise<SillyNode> {
  await mkdir(options.stateDir, { recursive: true, mode: 0o700 });
  await chmod(options.stateDir, 0o700);
  const port = options.listen.port === 0 ? await freePort(options.listen.host) : options.listen.port;
  const address = `${options.listen.host.includes(':') ? `[${options.listen.host}]` : options.listen.host}:${port}`;
  const script = join(options.stateDir, 'relup-boot.lua');
  await writeFile(script, BOOT_SCRIPT, { mode: 0o600 });
  const boot = {
    state_dir: options.stateDir,
    secret_file: options.secretFile,
    listen: address,
    config: options.config ?? {},
    ...(options.publicKeyFile === undefined ? {} : { public_key_file: options.publicKeyFile }),
    ...(options.idleTimeoutMs === undefined ? {} : { idle_timeout_ms: options.idleTimeoutMs }),
    ...(options.release === undefined ? {} : { release: await releaseBundle(options.release, options.stateDir, options.publicKeyFile !== undefined) }),
  };
  let text = '';
  const child: ResultPromise = execa(options.silly, [script], {
    reject: false,
    buffer: false,
    stdin: 'ignore',
    cwd: options.stateDir,
    env: { ...options.env, RELUP_LUA_LIB: LUA_LIB_DIR, RELUP_LUA_BOOT: JSON.stringify(boot) },
  });
  const exited = child.then((r) => (typeof r.exitCode === 'number' ? r.exitCode : undefined));
  let notice = '';
  const listening = new Promise<void>((resolve, reject) => {
    const take = (stream: 'stdout' | 'stderr') => (chunk: Buffer) => {
      const s = chunk.toString('utf8');
      text += s;
      for (const line of s.split('\n')) {
        if (line === '') continue;
        options.onOutput?.(line, stream);
        const m = /relup-lua: (booting .*)$/.exec(line);
        if (m !== null) notice = m[1]!;
        if (line.includes('relup-lua: listening')) resolve();
      }
    };
    child.stdout?.on('data', take('stdout'));
    child.stderr?.on('data', take('stderr'));
    void exited.then((code) => reject(new SillyNodeError(`the Silly node exited (code ${code}) before it listened:\n${tail(text)}`, text)));
  });
  const timeout = options.startTimeoutMs ?? 30_000;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      listening,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new SillyNodeError(`the Silly node did not listen within ${timeout} ms:\n${tail(text)}`, text)), timeout);
      }),
    ]);
  } catch (e) {
    child.kill('SIGKILL');
    await exited;
    throw e;
  } finally {
    clearTimeout(timer);
  }
  const pid = child.pid!;
  return {
    address,
    pid,
    notice,
    output: () => text,
    exited,
    async stop() {
      child.kill('SIGTERM');
      const grace = setTimeout(() => child.kill('SIGKILL'), 5000);
      const code = await exited;
      clearTimeout(grace);
      return code;
    },
    async kill() {
      child.kill('SIGKILL');
      await exited;
    },
  };
}

function tail(text: string): string {
  return text
    .split('\n')
    .filter((l) => !/ I \[(socket|timer|worker|monitor)\]/.test(l))
    .slice(-15)
    .join('\n');
}
