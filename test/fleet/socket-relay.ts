import { createConnection, createServer, type Server, type Socket } from 'node:net';

export interface SocketRelay {
  path: string;
  /** Drop every connection relayed so far (both ends), as a network cut would; new connections still pass. */
  cut(): void;
  close(): Promise<void>;
}

/** A Unix-socket relay in front of a node's control socket, so a test can cut the control channel mid-upgrade. */
export async function startRelay(path: string, to: string): Promise<SocketRelay> {
  const live = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = createConnection(to);
    for (const s of [client, upstream]) {
      live.add(s);
      s.on('close', () => live.delete(s));
      s.on('error', () => undefined);
    }
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  return {
    path,
    cut: () => {
      for (const s of [...live]) s.destroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of [...live]) s.destroy();
        server.close(() => resolve());
      }),
  };
}
