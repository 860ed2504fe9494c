import { cp, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startSillyNode } from '../../../src/runtime/lua/silly-node.js';
import { sillyBinary } from '../../runtime/lua/lua-env.js';
import { openNode, type ConformanceRuntime, type RunningNode, type StartNodeOptions } from '../harness.js';

const APP = new URL('../app/', import.meta.url).pathname;
/** The shared secret of the suite's Lua nodes (a test value; the agent requires at least 16 bytes). */
const SECRET = 'conformance-lua-secret-0123456789';

/**
 * The Lua runtime: a Silly process running the relup agent (the pid is the
 * Silly process itself). Silly has no Unix-socket listener, so the node
 * listens on TCP loopback with the HMAC challenge (RunningNode.secret), and
 * its transaction holds the whole node (harness.ts, `transaction`).
 */
export const luaRuntime: ConformanceRuntime = {
  name: 'lua',
  transaction: 'holds-node',
  available: async () => {
    const found = await sillyBinary();
    return found.binary !== undefined
      ? { ok: true }
      : { ok: false, reason: found.missing ?? 'no Silly binary', install: 'apt-get install -y lua5.4 gcc make libssl-dev, and the vendored Silly in ../shared/vendor (built on first use into .cache/silly), or SILLY=<binary>' };
  },
  async writeProject(dir) {
    await cp(join(APP, 'lua'), join(dir, 'releases'), { recursive: true });
    await cp(join(APP, 'appups'), join(dir, 'appups'), { recursive: true });
  },
  async startNode(options: StartNodeOptions): Promise<RunningNode> {
    const silly = (await sillyBinary()).binary!;
    const run = join(options.projectDir, 'run');
    await mkdir(run, { recursive: true, mode: 0o700 });
    const secretFile = join(run, 'lua-secret');
    await writeFile(secretFile, SECRET, { mode: 0o600 });
    // A fresh state directory boots `version`; a used one boots its permanent release (like a real restart).
    const node = await startSillyNode({
      silly,
      release: join(options.projectDir, 'releases', options.version),
      stateDir: options.stateDir,
      listen: { host: '127.0.0.1', port: 0 },
      secretFile,
      ...(options.env === undefined ? {} : { env: options.env }),
    });
    const [host, port] = node.address.split(':');
    const running: RunningNode = {
      target: { kind: 'tcp', host: host!, port: Number(port) },
      secret: SECRET,
      pid: node.pid,
      output: node.output,
      stop: node.stop,
      kill: node.kill,
    };
    (await openNode(running)).close();
    return running;
  },
};
