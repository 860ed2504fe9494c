import { Agent, request as httpRequest } from 'node:http';
import type { Socket } from 'node:net';
import { afterEach } from 'vitest';
import { startNode, type NodeLogEntry, type RelupNode } from '../../../src/runtime/node/relup-node.js';
import type { ReleaseImage } from '../../../src/runtime/node/release-image.js';

const running: RelupNode[] = [];
const agents: Agent[] = [];

afterEach(async () => {
  for (const a of agents.splice(0)) a.destroy();
  await Promise.all(running.splice(0).map((n) => n.stop()));
});

export interface Booted {
  node: RelupNode;
  port: number;
  logs: NodeLogEntry[];
  http: HttpClient;
}

/** Boot `image` on a free port; the node is stopped after the test. */
export async function boot(image: ReleaseImage, config: Record<string, unknown> = {}): Promise<Booted> {
  const logs: NodeLogEntry[] = [];
  const node = await startNode({ image, config: { port: 0, ...config }, log: (e) => logs.push(e) });
  running.push(node);
  const port = node.status().servers[0]?.port ?? 0;
  return { node, port, logs, http: new HttpClient(port) };
}

export interface Reply {
  status: number;
  text: string;
  json: unknown;
  /** Which TCP connection carried it: equal numbers mean the same keep-alive socket. */
  socket: number;
}

/**
 * A keep-alive HTTP client with one socket (maxSockets 1), so a test can see
 * that one connection opened before an upgrade carries requests after it.
 */
export class HttpClient {
  readonly agent = new Agent({ keepAlive: true, maxSockets: 1 });
  private readonly ids = new WeakMap<Socket, number>();
  private next = 1;

  constructor(readonly port: number) {
    agents.push(this.agent);
  }

  get(path: string): Promise<Reply> {
    return this.send('GET', path);
  }

  post(path: string, body: unknown): Promise<Reply> {
    return this.send('POST', path, body);
  }

  put(path: string, body: unknown): Promise<Reply> {
    return this.send('PUT', path, body);
  }

  send(method: string, path: string, body?: unknown): Promise<Reply> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = httpRequest(
        { host: '127.0.0.1', port: this.port, method, path, agent: this.agent, headers: payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let json: unknown;
            try {
              json = JSON.parse(text);
            } catch {
              json = undefined;
            }
            resolve({ status: res.statusCode ?? 0, text, json, socket: this.idOf(req.socket!) });
          });
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
  }

  private idOf(socket: Socket): number {
    let id = this.ids.get(socket);
    if (id === undefined) {
      id = this.next++;
      this.ids.set(socket, id);
    }
    return id;
  }
}

/** Keys and value types, recursively: the shape of a state without its values. */
export function shapeOf(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(shapeOf);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, shapeOf((value as Record<string, unknown>)[k])]));
  }
  return typeof value;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Poll `check` until it returns true (or fail after `ms`). */
export async function until(check: () => boolean | Promise<boolean>, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await sleep(5);
  }
}
