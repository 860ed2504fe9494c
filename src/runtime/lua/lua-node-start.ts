import { lstat, readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { checkFileTrust, checkPathTrust } from '../../fs/check-path-trust.js';
import { UserError } from '../../errors/errors.js';
import { readSecretFile } from '../../config/read-secret.js';
import { readReleaseFiles } from '../../release/release-files.js';
import { parseManifest } from '../../release/bundle-manifest.js';
import { readPublicKey } from '../../release/bundle-signature.js';
import { resolveIn } from '../../project/load-project.js';
import type { CommandIo } from '../../cli/io.js';
import { resolveSilly } from './silly-build.js';
import { startSillyNode, SillyNodeError } from './silly-node.js';

/**
 * `relup node start` for a `runtime: lua` release: boot a Silly process with
 * the relup agent and stay in the foreground until SIGINT or SIGTERM.
 * Dispatched from src/cli/commands/node-start-command.ts.
 */
export interface LuaNodeStartArgs {
  release?: string;
  stateDir?: string;
  listen?: string;
  secretFile?: string;
  silly?: string;
  port?: number;
  set?: string[];
  socket?: string;
  publicKey?: string;
  idleTimeout?: number;
}

/**
 * The runtime `relup node start` would boot: the --release's, or (a restart)
 * that of the permanent release installed in the state directory.
 */
export async function nodeStartRuntime(raw: Record<string, unknown>, cwd: string): Promise<string | undefined> {
  const args = raw as unknown as LuaNodeStartArgs;
  if (args.release !== undefined) {
    const path = resolveIn(cwd, args.release);
    const info = await stat(path).catch(() => undefined);
    if (info === undefined) return undefined;
    if (info.isDirectory()) {
      const yaml = await readFile(join(path, 'release.yaml'), 'utf8').catch(() => '');
      return /^runtime:\s*["']?(\w+)/m.exec(yaml)?.[1];
    }
    const read = await readReleaseFiles(path);
    const manifest = read.value?.files.get('manifest.json');
    return manifest === undefined ? undefined : parseManifest(manifest, path).value?.runtime;
  }
  const stateDir = resolveIn(cwd, args.stateDir ?? '.relup-state');
  try {
    const history = JSON.parse(await readFile(join(stateDir, 'history.json'), 'utf8')) as { name?: string; permanent?: string };
    const bundle = join(stateDir, 'releases', `${history.name}-${history.permanent}.tar.gz`);
    const read = await readReleaseFiles(bundle);
    const manifest = read.value?.files.get('manifest.json');
    return manifest === undefined ? undefined : parseManifest(manifest, bundle).value?.runtime;
  } catch {
    return undefined;
  }
}

async function trustedFile(path: string, what: string): Promise<void> {
  // A missing file is reported by the reader that follows, with its own hint.
  if (!(await lstat(path).then(() => true, () => false))) return;
  await checkPathTrust(dirname(path), `the directory of ${what}`);
  await checkFileTrust(path, what);
}

export async function run(raw: Record<string, unknown>, io: CommandIo, settings: Record<string, unknown>, listen: { host: string; port: number } | undefined, signals: NodeJS.EventEmitter = process): Promise<number> {
  const args = raw as unknown as LuaNodeStartArgs;
  if (listen === undefined || args.secretFile === undefined) {
    throw new UserError('a Lua node is controlled over TCP only (Silly has no Unix-socket listener): give --listen and --secret-file', 'e.g. relup node start --release releases/1.2.2 --listen 127.0.0.1:7070 --secret-file run/secret');
  }
  // Read here only to refuse a bad key before anything starts; the agent checks every bundle with it.
  const publicKeyFile = args.publicKey === undefined ? undefined : resolveIn(io.cwd, args.publicKey);
  if (publicKeyFile !== undefined) await readPublicKey(publicKeyFile);
  const secretFile = resolveIn(io.cwd, args.secretFile);
  // Whoever can replace the secret can drive the node, whoever can replace the key can sign for it: both must be
  // files only we or root can change, in directories only we or root can change (as for Node.js nodes).
  await trustedFile(secretFile, 'the secret file');
  if (args.publicKey !== undefined) await trustedFile(resolveIn(io.cwd, args.publicKey), 'the public key');
  await readSecretFile(secretFile); // mode 0600 and length, checked before anything starts
  const silly = await resolveSilly({ ...(args.silly === undefined ? {} : { path: resolveIn(io.cwd, args.silly) }) });
  if (silly === undefined) {
    throw new UserError('no Silly binary: a Lua node runs inside Silly', 'pass --silly PATH or set SILLY=PATH, or build the vendored one: node dist/runtime/lua/silly-build.js');
  }
  const stateDir = resolveIn(io.cwd, args.stateDir ?? '.relup-state');
  let node;
  try {
    node = await startSillyNode({
      silly,
      ...(args.release === undefined ? {} : { release: resolveIn(io.cwd, args.release) }),
      stateDir,
      listen,
      secretFile,
      ...(publicKeyFile === undefined ? {} : { publicKeyFile }),
      ...(args.idleTimeout === undefined ? {} : { idleTimeoutMs: args.idleTimeout }),
      config: settings,
      env: Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => e[1] !== undefined)),
      onOutput: (line, stream) => {
        if (line.startsWith('relup-lua: ')) return;
        (stream === 'stdout' ? io.stdout : io.stderr).write(`${line}\n`);
      },
    });
  } catch (e) {
    if (e instanceof SillyNodeError) throw new UserError(e.message, 'see docs/runtime-lua.md');
    throw e;
  }
  io.stdout.write(`${node.notice}\n`);
  io.stdout.write(`lua node running in Silly (pid ${node.pid})\n`);
  if (args.socket !== undefined) io.stdout.write(`  --socket ${args.socket} is not used: Silly has no Unix-socket listener\n`);
  io.stdout.write(`  control over TCP: ${node.address} (shared-secret challenge–response, sealed frames)\n  state directory: ${stateDir}\n`);
  io.stdout.write('  stop with Ctrl-C (SIGINT) or SIGTERM\n');
  const ended = await Promise.race([
    new Promise<string>((done) => {
      for (const name of ['SIGINT', 'SIGTERM']) signals.once(name, () => done(name));
    }),
    node.exited.then((code) => `exit ${code}`),
  ]);
  if (ended.startsWith('exit')) {
    io.stderr.write(`the Silly node stopped on its own (${ended})\n`);
    return 2;
  }
  io.stdout.write(`${ended}: stopping the Silly node\n`);
  await node.stop();
  io.stdout.write('stopped\n');
  return 0;
}
