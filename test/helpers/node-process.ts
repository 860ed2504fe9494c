import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { Connection } from '../../src/client/connection.js';
import { CLI } from './repo-paths.js';

export interface NodeProcess {
  child: ResultPromise;
  socket: string;
  port: number;
  output(): string;
  connect(): Promise<Connection>;
  /** SIGTERM and wait for a clean exit. */
  stop(): Promise<number | undefined>;
}

/** `relup node start` as a real child process in `dir`; resolves once its control socket answers. */
export async function startNodeProcess(dir: string, options: { release?: string; stateDir?: string; set?: Record<string, unknown>; publicKey?: string; env?: Record<string, string> } = {}): Promise<NodeProcess> {
  const run = join(dir, 'run');
  await mkdir(run, { recursive: true, mode: 0o700 });
  const socket = join(run, 'node.sock');
  const sets = Object.entries(options.set ?? {}).flatMap(([k, v]) => ['--set', `${k}=${JSON.stringify(v)}`]);
  const args = [CLI, 'node', 'start', '--socket', socket, '--state-dir', options.stateDir ?? join(dir, 'state'), '--port', '0', ...sets];
  if (options.release !== undefined) args.push('--release', options.release);
  if (options.publicKey !== undefined) args.push('--public-key', options.publicKey);
  const child = execa('node', args, { cwd: dir, reject: false, stdin: 'ignore', all: true, env: { NO_COLOR: '1', ...options.env } });
  let output = '';
  child.all?.on('data', (d: Buffer) => (output += d.toString()));
  const deadline = Date.now() + 15_000;
  let connection: Connection | undefined;
  while (connection === undefined) {
    try {
      connection = await Connection.open({ kind: 'unix', path: socket }, { timeoutMs: 1000 });
    } catch (e) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`node did not start: ${String(e)}\n${output}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const status = (await connection.request('status', {})) as { servers: { port: number }[] };
  connection.close();
  return {
    child,
    socket,
    port: status.servers[0]?.port ?? 0,
    output: () => output,
    connect: () => Connection.open({ kind: 'unix', path: socket }),
    stop: async () => {
      child.kill('SIGTERM');
      const r = await child;
      return r.exitCode;
    },
  };
}
