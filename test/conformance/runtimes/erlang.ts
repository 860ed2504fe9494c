import { cp, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Connection } from '../../../src/client/connection.js';
import { erlangAvailable, startErlangNode } from '../../../src/runtime/erlang/erlang-driver.js';
import type { ConformanceRuntime, RunningNode, StartNodeOptions } from '../harness.js';

const APP = new URL('../app/', import.meta.url).pathname;

/** The Erlang/OTP runtime: `erl -noshell` with the relup agent (the pid is the BEAM itself). */
export const erlangRuntime: ConformanceRuntime = {
  name: 'erlang',
  available: async () => {
    const a = await erlangAvailable();
    return a.ok ? { ok: true } : a;
  },
  async writeProject(dir) {
    await cp(join(APP, 'erlang'), join(dir, 'releases'), { recursive: true });
    await cp(join(APP, 'appups'), join(dir, 'appups'), { recursive: true });
  },
  async startNode(options: StartNodeOptions): Promise<RunningNode> {
    await mkdir(join(options.socket, '..'), { recursive: true, mode: 0o700 });
    // A fresh state directory boots `version`; a used one boots its permanent release (like a real restart).
    const node = await startErlangNode({ release: join(options.projectDir, 'releases', options.version), socket: options.socket, stateDir: options.stateDir, ...(options.env === undefined ? {} : { env: options.env }) });
    const target = { kind: 'unix' as const, path: options.socket };
    const c = await Connection.open(target, { timeoutMs: 10_000 });
    c.close();
    return {
      target,
      pid: node.pid,
      output: node.output,
      stop: async () => {
        node.child.kill('SIGTERM');
        return (await node.child).exitCode;
      },
      kill: async () => {
        node.child.kill('SIGKILL');
        await node.child;
      },
    };
  },
};
