import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { Connection } from '../../src/client/connection.js';
import { startNodeProcess, type NodeProcess } from '../helpers/node-process.js';
import { CLI, REPO } from '../helpers/repo-paths.js';
import { demoCopy } from '../helpers/run-cli.js';
import { startRelay, type SocketRelay } from './socket-relay.js';

export interface Fleet {
  dir: string;
  nodes: NodeProcess[];
  names: string[];
  /** Start node i again on its state directory (it boots its permanent release). */
  restart(i: number): Promise<NodeProcess>;
  /** Relays in front of the nodes named in `relayed`, by index. */
  relays: Map<number, SocketRelay>;
  stopAll(): Promise<void>;
}

export interface FleetOptions {
  /** RELUP_FAULTS of node i. */
  faults?: Record<number, string>;
  /** Nodes the config reaches through a relay the test can cut. */
  relayed?: number[];
  /** The project (default: a copy of the demo) and the release each node boots. */
  project?: string;
  releases?: Record<number, string>;
  /** Nodes that also listen on loopback TCP, each with its own secret; the config reaches them over TCP. */
  tcp?: number[];
}

/** `relup node start --listen 127.0.0.1:0 --secret-file …` as a child process; resolves with its TCP port once it runs. */
async function startTcpNode(dir: string, release: string): Promise<NodeProcess & { tcpPort: number; secretFile: string }> {
  const run = join(dir, 'run');
  await mkdir(run, { recursive: true, mode: 0o700 });
  const secretFile = join(run, 'secret');
  await writeFile(secretFile, `${dir}-secret-${process.pid}\n`, { mode: 0o600 });
  const socket = join(run, 'node.sock');
  const child = execa('node', [CLI, 'node', 'start', '--socket', socket, '--state-dir', join(dir, 'state'), '--port', '0', '--set', 'tickMs=3600000', '--release', release, '--listen', '127.0.0.1:0', '--secret-file', secretFile], { cwd: dir, reject: false, stdin: 'ignore', all: true, env: { NO_COLOR: '1' } });
  let output = '';
  const port = await new Promise<number>((resolve, reject) => {
    child.all?.on('data', (d: Buffer) => {
      output += d.toString();
      const m = /control over TCP: 127\.0\.0\.1:(\d+)/.exec(output);
      if (m !== null) resolve(Number(m[1]));
    });
    void child.then(() => reject(new Error(`node exited before listening:\n${output}`)));
  });
  return {
    child,
    socket,
    port: 0,
    tcpPort: port,
    secretFile,
    output: () => output,
    connect: () => Connection.open({ kind: 'unix', path: socket }),
    stop: async () => {
      child.kill('SIGTERM');
      return (await child).exitCode;
    },
  };
}

/**
 * A demo project with `count` real node processes on 1.2.2, each in its own
 * directory with its own socket and state, and a relup.config.yaml naming
 * them n1 … nN and a fleet `prod` of all of them. `faults[i]` is node i's
 * RELUP_FAULTS.
 */
export async function startFleet(count: number, fleet: Record<string, unknown>, options: FleetOptions = {}): Promise<Fleet> {
  const faults = options.faults ?? {};
  const dir = options.project ?? (await demoCopy());
  const names = Array.from({ length: count }, (_, i) => `n${i + 1}`);
  const start = (i: number) =>
    startNodeProcess(join(dir, names[i]!), {
      release: join(dir, 'releases', options.releases?.[i] ?? '1.2.2'),
      // The game clock would change scores under the test's feet; an hour is "never" here.
      set: { tickMs: 3_600_000 },
      ...(faults[i] === undefined ? {} : { env: { RELUP_FAULTS: faults[i]! } }),
    });
  const tcp = new Map<number, { tcpPort: number; secretFile: string }>();
  const nodes = await Promise.all(
    names.map(async (_, i) => {
      if (!(options.tcp ?? []).includes(i)) return start(i);
      const node = await startTcpNode(join(dir, names[i]!), join(dir, 'releases', options.releases?.[i] ?? '1.2.2'));
      tcp.set(i, node);
      return node;
    }),
  );
  const relays = new Map<number, SocketRelay>();
  for (const i of options.relayed ?? []) relays.set(i, await startRelay(join(dir, names[i]!, 'run', 'relay.sock'), nodes[i]!.socket));
  const targets = names
    .map((n, i) => {
      const t = tcp.get(i);
      return t === undefined ? `  ${n}:\n    socket: ${relays.get(i)?.path ?? nodes[i]!.socket}\n` : `  ${n}:\n    host: 127.0.0.1\n    port: ${t.tcpPort}\n    secretFile: ${t.secretFile}\n`;
    })
    .join('');
  await writeFile(join(dir, 'relup.config.yaml'), `releases: releases\nappups: appups\ntargets:\n${targets}fleets:\n  prod:\n    targets: [${names.join(', ')}]\n${Object.entries(fleet).map(([k, v]) => `    ${k}: ${JSON.stringify(v)}\n`).join('')}`);
  return {
    dir,
    nodes,
    names,
    restart: async (i) => (nodes[i] = await start(i)),
    relays,
    stopAll: async () => {
      await Promise.all([...relays.values()].map((r) => r.close()));
      await Promise.all(nodes.map((n) => (n.child.exitCode === null ? n.stop() : undefined)));
    },
  };
}

/** The index of a step of the demo upgrade, from its golden script. */
export async function demoStepIndex(op: string, target: string): Promise<number> {
  const script = JSON.parse(await readFile(join(REPO, 'test', 'golden', 'demo-1.2.2-to-1.2.3.json'), 'utf8')) as { steps: { op: string; module?: string; process?: string }[] };
  const i = script.steps.findIndex((s) => s.op === op && (s.module === target || s.process === target));
  if (i < 0) throw new Error(`no ${op} ${target} in the demo upgrade`);
  return i;
}
