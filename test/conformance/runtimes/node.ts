import { cp } from 'node:fs/promises';
import { join } from 'node:path';
import { startNodeProcess } from '../../helpers/node-process.js';
import type { ConformanceRuntime, RunningNode, StartNodeOptions } from '../harness.js';

const APP = new URL('../app/', import.meta.url).pathname;

/** The Node.js runtime: `relup node start` as a child process (it is the node itself). */
export const nodeRuntime: ConformanceRuntime = {
  name: 'node',
  available: async () => ({ ok: true }),
  async writeProject(dir) {
    await cp(join(APP, 'node'), join(dir, 'releases'), { recursive: true });
    await cp(join(APP, 'appups'), join(dir, 'appups'), { recursive: true });
  },
  async startNode(options: StartNodeOptions): Promise<RunningNode> {
    const node = await startNodeProcess(options.projectDir, { release: `releases/${options.version}`, stateDir: options.stateDir, ...(options.env === undefined ? {} : { env: options.env }) });
    return {
      target: { kind: 'unix', path: node.socket },
      pid: node.child.pid!,
      output: node.output,
      stop: node.stop,
      kill: async () => {
        node.child.kill('SIGKILL');
        await node.child;
      },
    };
  },
};
