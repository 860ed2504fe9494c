import { join } from 'node:path';
import { afterEach } from 'vitest';
import { ControlServer, type TcpControlOptions } from '../../src/runtime/node-host/control-server.js';
import { NodeHost } from '../../src/runtime/node-host/node-host.js';
import { DEMO_RELEASES } from '../helpers/repo-paths.js';
import { testdir } from '../helpers/testdir.js';

export const SECRET = Buffer.from('correct horse battery staple 42');

const open: { host: NodeHost; server: ControlServer }[] = [];
afterEach(async () => {
  for (const { host, server } of open.splice(0)) {
    await server.close();
    await host.stop();
  }
});

/** The demo 1.2.2 on a real node host, controlled over TCP on loopback with SECRET; stopped after the test. */
export async function tcpNode(options: Partial<Omit<TcpControlOptions, 'host' | 'port' | 'secret'>> = {}) {
  const dir = await testdir();
  const host = await NodeHost.start({ release: join(DEMO_RELEASES, '1.2.2'), stateDir: join(dir, 'state'), config: { port: 0, tickMs: 3_600_000 } });
  const server = await ControlServer.listenTcp(host, { host: '127.0.0.1', port: 0, secret: SECRET, ...options });
  open.push({ host, server });
  return { host, port: server.address()!.port, dir };
}
