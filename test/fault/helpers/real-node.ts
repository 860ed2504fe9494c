import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { Connection } from '../../../src/client/connection.js';
import { CLI } from '../../helpers/repo-paths.js';
import type { NodeView, ProcessInfo } from './traffic.js';

/**
 * `relup node start` as a real child process, with RELUP_FAULTS, whose
 * stderr the test reads line by line (the `pause` fault announces itself
 * there), and that it may SIGKILL or SIGUSR2.
 */
export class RealNode {
  readonly lines: string[] = [];
  private waiters: (() => void)[] = [];
  port = 0;
  private control: Connection | undefined;
  readonly exited: Promise<{ exitCode: number | undefined; signal: string | undefined }>;

  private constructor(
    readonly child: ResultPromise,
    readonly socket: string,
    readonly stateDir: string,
    readonly faults: string,
  ) {
    let partial = '';
    child.stderr?.on('data', (d: Buffer) => {
      partial += d.toString();
      const parts = partial.split('\n');
      partial = parts.pop()!;
      this.lines.push(...parts);
      for (const w of this.waiters.splice(0)) w();
    });
    child.stdout?.on('data', (d: Buffer) => {
      this.lines.push(...d.toString().split('\n').filter(Boolean).map((l) => `stdout: ${l}`));
      for (const w of this.waiters.splice(0)) w();
    });
    this.exited = child.then(
      (r) => ({ exitCode: r.exitCode, signal: r.signal }),
      (e: { exitCode?: number; signal?: string }) => ({ exitCode: e.exitCode, signal: e.signal }),
    );
    void this.exited.then(() => {
      for (const w of this.waiters.splice(0)) w();
    });
  }

  /** Start a node in `dir` (socket in dir/run, state in `stateDir`); resolves once its control socket answers. */
  static async start(dir: string, options: { stateDir: string; release?: string; faults?: string }): Promise<RealNode> {
    const run = join(dir, 'run');
    await mkdir(run, { recursive: true, mode: 0o700 });
    const socket = join(run, 'node.sock');
    const args = [CLI, 'node', 'start', '--socket', socket, '--state-dir', options.stateDir, '--port', '0', '--set', 'tickMs=3600000'];
    if (options.release !== undefined) args.push('--release', options.release);
    const child = execa('node', args, { cwd: dir, reject: false, stdin: 'ignore', env: { NO_COLOR: '1', RELUP_FAULTS: options.faults ?? '' } });
    const node = new RealNode(child, socket, options.stateDir, options.faults ?? '');
    const deadline = Date.now() + 15_000;
    for (;;) {
      try {
        node.control = await Connection.open({ kind: 'unix', path: socket }, { timeoutMs: 1000 });
        break;
      } catch (e) {
        if (child.exitCode !== null || Date.now() > deadline) {
          child.kill('SIGKILL');
          throw new Error(`node did not start: ${String(e)}\n${node.lines.join('\n')}`);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    const status = (await node.request('status', {})) as { servers: { port: number }[] };
    node.port = status.servers[0]?.port ?? 0;
    return node;
  }

  request(op: string, params: unknown, onEvent?: (e: Record<string, unknown>) => void): Promise<unknown> {
    return this.control!.request(op, params, onEvent);
  }

  /** A new control connection (the node must accept one after a client died). */
  connect(): Promise<Connection> {
    return Connection.open({ kind: 'unix', path: this.socket }, { timeoutMs: 5000 });
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Wait for a stderr line matching `pattern` at or after line `from`; its index. Fails when the node exits or after `ms`. */
  async waitForLine(pattern: RegExp, from = 0, ms = 10_000): Promise<number> {
    const end = Date.now() + ms;
    for (;;) {
      const i = this.lines.findIndex((l, k) => k >= from && pattern.test(l));
      if (i >= 0) return i;
      if (!this.alive) throw new Error(`node exited while waiting for ${pattern}`);
      const left = end - Date.now();
      if (left <= 0) throw new Error(`no ${pattern} from the node within ${ms} ms:\n${this.lines.slice(-20).join('\n')}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  view(): NodeView {
    return {
      port: this.port,
      tick: () => this.request('invoke', { module: 'game', function: 'tick', args: [] }),
      call: (message) => this.request('call', { process: 'game', message }),
      invoke: (module, fn, args) => this.request('invoke', { module, function: fn, args }),
      processes: async () => ((await this.request('status', {})) as { processes: ProcessInfo[] }).processes,
    };
  }

  signal(name: 'SIGUSR2' | 'SIGKILL' | 'SIGTERM'): void {
    this.child.kill(name);
  }

  /** SIGTERM and wait; SIGKILL if it does not stop within 5 s. */
  async stop(): Promise<void> {
    this.control?.close();
    if (!this.alive) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await this.exited;
    clearTimeout(timer);
  }

  closeControl(): void {
    this.control?.close();
  }
}
