import { lstat, mkdir, readFile, stat } from 'node:fs/promises';
import { lockDirectory } from '../../fs/directory-lock.js';
import { dirname, resolve } from 'node:path';
import { checkFileTrust, checkPathTrust } from '../../fs/check-path-trust.js';
import { NodeError, UserError } from '../../errors/errors.js';
import { ControlServer } from '../../runtime/node-host/control-server.js';
import { NodeHost } from '../../runtime/node-host/node-host.js';
import { injectFaults, injectWriteFaults, parseFaults, parseWriteFaults } from '../../runtime/node-host/fault-injection.js';
import type { NodeLogEntry } from '../../runtime/node/relup-node.js';
import { messageOf } from '../../runtime/node/runtime-error.js';
import { resolveIn } from '../../project/load-project.js';
import type { CommandIo } from '../io.js';
import { readSecretFile } from '../../config/read-secret.js';
import { readPublicKey } from '../../release/bundle-signature.js';
import { readStatesFile } from '../read-states-file.js';

export interface NodeStartArgs {
  release?: string;
  socket?: string;
  stateDir?: string;
  port?: number;
  set?: string[];
  idleTimeout?: number;
  listen?: string;
  secretFile?: string;
  tlsCert?: string;
  tlsKey?: string;
  publicKey?: string;
  pauseTimers?: boolean;
  states?: string;
}

/**
 * `relup node start`: run a Node.js node in the foreground until SIGINT or
 * SIGTERM, then stop it cleanly (servers, timers, processes, control socket).
 */
export async function run(raw: Record<string, unknown>, io: CommandIo, signals: NodeJS.EventEmitter = process): Promise<number> {
  const args = raw as unknown as NodeStartArgs;
  const config = parseSettings(args.set ?? []);
  if (args.port !== undefined) config['port'] = args.port;
  // A `runtime: lua` release runs inside Silly, booted by the Lua runtime (src/runtime/lua/lua-node-start.ts).
  const lua = await import('../../runtime/lua/lua-node-start.js');
  const runtime = await lua.nodeStartRuntime(raw, io.cwd);
  if (runtime === 'lua') return guardedStateDir(args, io, () => lua.run(raw, io, config, args.listen === undefined ? undefined : parseListen(args.listen), signals));
  // A `runtime: erlang` release runs in `erl -noshell` with the relup agent (src/runtime/erlang/erlang-node-start.ts).
  if (runtime === 'erlang') return guardedStateDir(args, io, async () => (await import('../../runtime/erlang/erlang-node-start.js')).run(raw, io, config, signals));
  if (args.socket === undefined) throw new UserError('--socket is required for a Node.js node', 'e.g. relup node start --release releases/1.2.2 --socket run/demo.sock');
  const stateDir = resolveIn(io.cwd, args.stateDir ?? '.relup-state');
  // Bad TCP or key options are refused before anything starts.
  // Whoever can replace the public key can sign bundles this node accepts; whoever can replace the secret can drive
  // it over TCP: both must be files only we or root can change, in directories only we or root can change.
  if (args.publicKey !== undefined) await trustedFile(resolveIn(io.cwd, args.publicKey), 'the public key');
  if (args.secretFile !== undefined) await trustedFile(resolveIn(io.cwd, args.secretFile), 'the secret file');
  const tls = await tlsFor(args, io);
  const tcp = args.listen === undefined ? undefined : { ...parseListen(args.listen), secret: await secretFor(args, io), ...(tls === undefined ? {} : { tls }) };
  if (args.listen === undefined && args.secretFile !== undefined) throw new UserError('--secret-file is only used with --listen', 'add --listen 127.0.0.1:PORT, or drop --secret-file');
  const publicKey = args.publicKey === undefined ? undefined : await readPublicKey(resolveIn(io.cwd, args.publicKey));
  const log = (e: NodeLogEntry) => io.stderr.write(`[${new Date(e.time).toISOString()}] ${e.level} ${e.source}${e.module === undefined ? '' : ` ${e.module}${e.release === undefined ? '' : `@${e.release}`}`}: ${e.message}\n`);
  // Chaos drills and the fault-injection tests only; never reachable through the control socket.
  const faults = process.env['RELUP_FAULTS'];
  const intercept = faults === undefined || faults === '' ? undefined : injectFaults(parseFaults(faults));
  const writeFaults = faults === undefined || faults === '' ? new Map() : parseWriteFaults(faults);
  if (intercept !== undefined) io.stderr.write(`RELUP_FAULTS=${faults}: faults will be injected into upgrades of this node\n`);
  const durableWrite = writeFaults.size === 0 ? undefined : injectWriteFaults(writeFaults);
  // The socket's directory is checked before the node boots: no module code runs for a node that cannot serve.
  const socket = resolve(io.cwd, args.socket);
  await checkPathTrust(dirname(socket), "the control socket's directory").catch((e: unknown) => {
    throw withCode(e);
  });
  const host = await NodeHost.start({
    ...(args.release === undefined ? {} : { release: resolveIn(io.cwd, args.release) }),
    stateDir,
    config,
    log,
    ...(intercept === undefined ? {} : { intercept }),
    ...(durableWrite === undefined ? {} : { durableWrite }),
    ...(publicKey === undefined ? {} : { publicKey }),
    ...(args.pauseTimers === true ? { timers: 'paused' as const } : {}),
    ...(args.states === undefined ? {} : { states: await readStatesFile(resolveIn(io.cwd, args.states)) }),
  }).catch((e: unknown) => {
    // A fresh state directory and no --release is a usage mistake (exit 2), not a failed node (exit 1).
    if (e instanceof NodeError && e.code === 'invalid-release' && args.release === undefined) throw new UserError(e.message, e.hint);
    throw withCode(e);
  });
  const limits = args.idleTimeout === undefined ? {} : { idleTimeoutMs: args.idleTimeout };
  const servers: ControlServer[] = [];
  try {
    servers.push(await ControlServer.listen(host, { socket, ...limits }));
    if (tcp !== undefined) servers.push(await ControlServer.listenTcp(host, { ...tcp, ...limits }));
  } catch (e) {
    for (const s of servers) await s.close();
    await host.stop();
    throw withCode(e);
  }
  const status = host.status();
  io.stdout.write(`${host.bootNotice}\n`);
  io.stdout.write(`node ${status.name} ${status.version} running (pid ${process.pid})\n`);
  io.stdout.write(`  control socket: ${args.socket}\n  state directory: ${stateDir}\n`);
  const tcpAddress = servers[1]?.address();
  if (tcpAddress !== undefined) io.stdout.write(`  control over TCP: ${tcpAddress.host.includes(':') ? `[${tcpAddress.host}]` : tcpAddress.host}:${tcpAddress.port} (${tls === undefined ? '' : 'TLS 1.3, '}shared-secret challenge–response, sealed frames)\n`);
  if (publicKey !== undefined) io.stdout.write(`  bundles must be signed by ${args.publicKey}\n`);
  for (const s of status.servers) io.stdout.write(`  http: ${JSON.stringify(s)}\n`);
  io.stdout.write('  stop with Ctrl-C (SIGINT) or SIGTERM\n');

  const signal = await new Promise<string>((done) => {
    for (const name of ['SIGINT', 'SIGTERM']) signals.once(name, () => done(name));
  });
  io.stdout.write(`${signal}: stopping (a running upgrade finishes or rolls back first)\n`);
  const real = signals === process;
  // From here on, module code that escaped the node (a plain setInterval, a callback of its own) may still run and
  // throw — e.g. touching relup.state of a node that has stopped. It cannot change the outcome: it is logged, not fatal.
  const escaped = (e: unknown) => log({ time: Date.now(), level: 'error', source: 'module', message: `after stop: ${messageOf(e)}` });
  if (real) {
    process.on('uncaughtException', escaped);
    process.on('unhandledRejection', escaped);
  }
  for (const s of servers) await s.close();
  await host.stop();
  io.stdout.write('stopped\n');
  if (real) {
    // Everything relup owns is closed and the state directory is released. Handles module code made behind the
    // node's back (timers, sockets of its own) would keep the process alive forever: once the CLI has returned its
    // exit code, end the process. Unref'd: when nothing else is left it never fires and the process ends by itself.
    setTimeout(() => process.exit(process.exitCode ?? 0), EXIT_GRACE_MS).unref();
  }
  return 0;
}

/** Time left after a clean stop for the CLI to print and return before lingering module handles are cut off. */
const EXIT_GRACE_MS = 100;

/** A start-up refusal says its code, so operators and scripts can tell them apart (state-dir-locked, untrusted-path, …). */
function withCode(e: unknown): unknown {
  if (!(e instanceof NodeError) || e.message.startsWith(`${e.code}:`)) return e;
  const coded = new NodeError(e.code, `${e.code}: ${e.message}`, e.hint);
  coded.stack = e.stack;
  return coded;
}

/** `--set key=value`: value parsed as JSON when it is JSON (numbers, booleans), else kept as text. */
export function parseSettings(pairs: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UserError(`--set expects key=value, got "${pair}"`, 'e.g. --set tickMs=100');
    const value = pair.slice(eq + 1);
    try {
      out[pair.slice(0, eq)] = JSON.parse(value);
    } catch {
      out[pair.slice(0, eq)] = value;
    }
  }
  return out;
}

/** `7070`, `:7070` → 127.0.0.1:7070 (loopback unless told otherwise); `0.0.0.0:7070`, `[::1]:7070` as written. */
export function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:(?:\[([^\]]+)\]|([^:]*)):)?(\d{1,5})$/.exec(text.trim());
  const port = Number(m?.[3]);
  if (m === null || port < 0 || port > 65535) throw new UserError(`--listen "${text}" is not [host:]port`, 'e.g. --listen 127.0.0.1:7070 (loopback) or --listen 0.0.0.0:7070 (every interface)');
  const host = m[1] ?? (m[2] === undefined || m[2] === '' ? '127.0.0.1' : m[2]);
  return { host, port };
}

/** --tls-cert and --tls-key: both or neither, only with --listen; the key readable by its owner only, like the secret. */
async function tlsFor(args: NodeStartArgs, io: CommandIo): Promise<{ cert: Buffer; key: Buffer } | undefined> {
  if (args.tlsCert === undefined && args.tlsKey === undefined) return undefined;
  if (args.listen === undefined) throw new UserError('--tls-cert and --tls-key are only used with --listen', 'add --listen 127.0.0.1:PORT, or drop the TLS options');
  if (args.tlsCert === undefined || args.tlsKey === undefined) throw new UserError('--tls-cert and --tls-key go together', 'e.g. openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout run/tls.key -out run/tls.crt -days 365 -subj /CN=relup-node');
  const keyPath = resolveIn(io.cwd, args.tlsKey);
  const keyInfo = await stat(keyPath).catch((e: Error) => {
    throw new UserError(`cannot read the TLS key ${keyPath}: ${e.message}`, 'check --tls-key');
  });
  if ((keyInfo.mode & 0o077) !== 0) throw new UserError(`the TLS key ${keyPath} is readable by others (mode ${(keyInfo.mode & 0o777).toString(8)})`, `chmod 600 ${keyPath}`);
  const certPath = resolveIn(io.cwd, args.tlsCert);
  const cert = await readFile(certPath).catch((e: Error) => {
    throw new UserError(`cannot read the TLS certificate ${certPath}: ${e.message}`, 'check --tls-cert');
  });
  return { cert, key: await readFile(keyPath) };
}

/**
 * The state-directory rules of a Node.js node (path trust for it and the
 * socket's directory, one node per directory) for the runtimes whose node
 * runs outside this process: checked and locked here, for as long as the
 * runtime's `run` lasts. Their agents verify bundles themselves.
 */
async function guardedStateDir(args: NodeStartArgs, io: CommandIo, start: () => Promise<number>): Promise<number> {
  const stateDir = resolveIn(io.cwd, args.stateDir ?? '.relup-state');
  try {
    if (args.socket !== undefined) await checkPathTrust(dirname(resolve(io.cwd, args.socket)), "the control socket's directory");
    await mkdir(stateDir, { recursive: true, mode: 0o700 });
    await checkPathTrust(stateDir, 'the state directory');
  } catch (e) {
    throw withCode(e);
  }
  const lock = await lockDirectory(stateDir, { what: `the state directory ${stateDir}` }).catch((e: unknown) => {
    throw withCode(e);
  });
  try {
    return await start();
  } finally {
    await lock.release();
  }
}

async function trustedFile(path: string, what: string): Promise<void> {
  // A missing file is reported by the reader that follows, with its own hint.
  if (!(await lstat(path).then(() => true, () => false))) return;
  await checkPathTrust(dirname(path), `the directory of ${what}`).catch((e: unknown) => {
    throw withCode(e);
  });
  await checkFileTrust(path, what).catch((e: unknown) => {
    throw withCode(e);
  });
}

async function secretFor(args: NodeStartArgs, io: CommandIo): Promise<Buffer> {
  if (args.secretFile === undefined) {
    throw new UserError('--listen needs --secret-file: TCP control connections must authenticate', 'create one: head -c 32 /dev/urandom | base64 > secret && chmod 600 secret');
  }
  return readSecretFile(resolveIn(io.cwd, args.secretFile));
}
