import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa, type ResultPromise } from 'execa';
import { NodeError } from '../errors/errors.js';
import { Connection } from './connection.js';
import type { Target } from './target.js';

/** The CLI entry next to this module in dist/. */
const CLI = fileURLToPath(new URL('../cli/main.js', import.meta.url));

export interface ScratchNode {
  /** The control socket path (Unix), or host:port when the node listens on TCP. */
  socket: string;
  dir: string;
  connect(): Promise<Connection>;
  /** SIGTERM, wait, remove the scratch directory. */
  stop(): Promise<void>;
  output(): string;
}

/**
 * A throwaway node in its own temporary directory (mode 0700), as a real
 * child process, for `relup check --live`: the same code path as production.
 */
export interface ScratchOptions {
  /** Stop time: node-owned timers never fire (relup check --live compares states and must not depend on an app's timer settings). */
  pauseTimers?: boolean;
  /** Module and process states to boot with instead of the initial ones. */
  states?: { modules: Record<string, unknown>; processes: Record<string, unknown> };
  timeoutMs?: number;
  /**
   * Control over TCP loopback with a fresh random secret instead of a Unix
   * socket: for runtimes whose nodes have no Unix-socket listener (Lua/Silly).
   */
  tcp?: boolean;
}

async function freeLoopbackPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((r) => server.close(r));
  return typeof address === 'object' && address !== null ? address.port : 0;
}

export async function startScratchNode(release: string, settings: Record<string, unknown> = {}, options: ScratchOptions = {}): Promise<ScratchNode> {
  const timeoutMs = options.timeoutMs ?? 15_000;
  const dir = await mkdtemp(join(tmpdir(), 'relup-live-'));
  let socket = join(dir, 'node.sock');
  let control = ['--socket', socket];
  let target: Target = { kind: 'unix', path: socket };
  let connectOptions: { secret?: Uint8Array } = {};
  if (options.tcp === true) {
    const secret = randomBytes(32).toString('base64');
    const secretFile = join(dir, 'secret');
    await writeFile(secretFile, secret, { mode: 0o600 });
    const port = await freeLoopbackPort();
    socket = `127.0.0.1:${port}`;
    control = ['--listen', socket, '--secret-file', secretFile];
    target = { kind: 'tcp', host: '127.0.0.1', port };
    connectOptions = { secret: Buffer.from(secret) };
  }
  const sets = Object.entries(settings).flatMap(([k, v]) => ['--set', `${k}=${JSON.stringify(v)}`]);
  const extra = options.pauseTimers === true ? ['--pause-timers'] : [];
  if (options.states !== undefined) {
    const file = join(dir, 'states.json');
    await writeFile(file, JSON.stringify({ states: options.states }), { mode: 0o600 });
    extra.push('--states', file);
  }
  const child: ResultPromise = execa(process.execPath, [CLI, 'node', 'start', '--release', release, ...control, '--state-dir', join(dir, 'state'), '--port', '0', ...extra, ...sets], {
    reject: false,
    stdin: 'ignore',
    all: true,
    env: { NO_COLOR: '1' },
  });
  let output = '';
  child.all?.on('data', (d: Buffer) => (output += d.toString()));
  const stop = async () => {
    child.kill('SIGTERM');
    await Promise.race([child, new Promise((r) => setTimeout(r, 5000).unref())]);
    child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const c = await Connection.open(target, { timeoutMs: 1000, ...connectOptions });
      c.close();
      break;
    } catch {
      if (child.exitCode !== null || Date.now() > deadline) {
        await stop();
        throw new NodeError('scratch-node-failed', `the scratch node on ${release} did not start`, output.trim().split('\n').slice(-5).join('\n'));
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return { socket, dir, connect: () => Connection.open(target, connectOptions), stop, output: () => output };
}
