import { cp, readFile, writeFile, chmod } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { Connection } from '../../../src/client/connection.js';
import { startSillyNode, freePort, type SillyNode } from '../../../src/runtime/lua/silly-node.js';
import { REPO } from '../../helpers/repo-paths.js';
import { testdir } from '../../helpers/testdir.js';

/** Real Silly nodes for the Lua runtime's tests: a scratch copy of examples/silly, a secret, nodes stopped after each test. */
export const SECRET = 'lua-test-secret-0123456789abcdef';

const nodes: SillyNode[] = [];
afterEach(async () => {
  await Promise.all(nodes.splice(0).map((n) => n.kill().catch(() => undefined)));
});

export interface Project {
  dir: string;
  secretFile: string;
  stateDir: string;
}

/** examples/silly copied, plus release 1.2.4 whose up migration changes the players and then throws. */
export async function sillyProject(): Promise<Project> {
  const dir = await testdir();
  await cp(join(REPO, 'examples', 'silly', 'releases'), join(dir, 'releases'), { recursive: true });
  await cp(join(REPO, 'examples', 'silly', 'appups'), join(dir, 'appups'), { recursive: true });
  await cp(join(dir, 'releases', '1.2.3'), join(dir, 'releases', '1.2.4'), { recursive: true });
  const yaml = (await readFile(join(dir, 'releases', '1.2.4', 'release.yaml'), 'utf8')).replace('version: 1.2.3', 'version: 1.2.4').replace('drop_levels]', 'drop_levels, explode]');
  await writeFile(join(dir, 'releases', '1.2.4', 'release.yaml'), yaml);
  const game = (await readFile(join(dir, 'releases', '1.2.4', 'game.lua'), 'utf8'))
    .replace('VERSION = "1.2.3"', 'VERSION = "1.2.4"')
    .replace(
      'return M\n',
      `-- A migration that breaks half-way: every player's score is changed, then it throws.
function M.explode(info)
	for _, player in pairs(player_data) do
		player.score = -1
		player.exploded = true
	end
	error("explode: failed after changing the players")
end

return M
`,
    );
  await writeFile(join(dir, 'releases', '1.2.4', 'game.lua'), game);
  await writeFile(
    join(dir, 'appups', '1.2.4.yaml'),
    `version: 1.2.4
up:
  - from: 1.2.3
    instructions:
      - update: game
        migration: explode
down:
  - to: 1.2.3
    instructions:
      - update: game
`,
  );
  const secretFile = join(dir, 'secret');
  await writeFile(secretFile, SECRET, { mode: 0o600 });
  await chmod(secretFile, 0o600);
  return { dir, secretFile, stateDir: join(dir, 'state') };
}

export interface StartedNode {
  node: SillyNode;
  /** host:port of the control socket. */
  target: string;
  /** Port of the demo's tcp_api. */
  apiPort: number;
}

export async function startNode(silly: string, project: Project, options: { version?: string; env?: Record<string, string>; apiPort?: number; idleTimeoutMs?: number } = {}): Promise<StartedNode> {
  const apiPort = options.apiPort ?? (await freePort());
  const node = await startSillyNode({
    silly,
    ...(options.version === undefined ? {} : { release: join(project.dir, 'releases', options.version) }),
    stateDir: project.stateDir,
    listen: { host: '127.0.0.1', port: 0 },
    secretFile: project.secretFile,
    config: { port: apiPort },
    ...(options.env === undefined ? {} : { env: options.env }),
    ...(options.idleTimeoutMs === undefined ? {} : { idleTimeoutMs: options.idleTimeoutMs }),
  });
  nodes.push(node);
  return { node, target: node.address, apiPort };
}

export async function open(target: string, secret = SECRET): Promise<Connection> {
  const [host, port] = target.split(':');
  return Connection.open({ kind: 'tcp', host: host!, port: Number(port) }, { secret: Buffer.from(secret) });
}

/** One open connection to the demo's tcp_api: JSON lines in, JSON lines out. */
export async function apiClient(port: number): Promise<{ ask(req: Record<string, unknown>): Promise<any>; close(): void }> {
  const socket = connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  let buffer = '';
  const waiting: ((line: string) => void)[] = [];
  socket.on('data', (chunk) => {
    buffer += chunk.toString('utf8');
    let i;
    while ((i = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, i);
      buffer = buffer.slice(i + 1);
      waiting.shift()?.(line);
    }
  });
  return {
    ask(req) {
      return new Promise((resolve) => {
        waiting.push((line) => resolve(JSON.parse(line)));
        socket.write(`${JSON.stringify(req)}\n`);
      });
    },
    close() {
      socket.destroy();
    },
  };
}
