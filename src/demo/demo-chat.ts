import { createRequire } from 'node:module';

/** The part of the `ws` client the demo uses. */
interface WsClient {
  send(data: string): void;
  close(): void;
  on(event: 'message', f: (data: Buffer) => void): void;
  on(event: 'open' | 'close', f: () => void): void;
  on(event: 'error', f: (e: Error) => void): void;
}

/**
 * A chat-room member for `npm run demo`: one WebSocket, kept open for the
 * whole demo, with the messages it received in order and whether it was
 * ever closed (it must not be: the socket belongs to the node).
 */
export class ChatMember {
  readonly received: string[] = [];
  closed = false;
  private waiters: (() => void)[] = [];

  private constructor(private readonly socket: WsClient) {
    socket.on('message', (data) => {
      this.received.push(data.toString('utf8'));
      for (const w of this.waiters.splice(0)) w();
    });
    socket.on('close', () => (this.closed = true));
  }

  static async join(port: number, name: string): Promise<ChatMember> {
    const { WebSocket } = createRequire(import.meta.url)('ws') as { WebSocket: new (url: string) => WsClient };
    const socket = new WebSocket(`ws://127.0.0.1:${port}/chat?name=${encodeURIComponent(name)}`);
    await new Promise<void>((resolve, reject) => {
      socket.on('open', resolve);
      socket.on('error', reject);
    });
    return new ChatMember(socket);
  }

  say(text: string): void {
    this.socket.send(text);
  }

  /** The first message received from now on (or already received after `from`) that `match` accepts; rejects after `ms`. */
  async next(match: (text: string) => boolean, from = 0, ms = 5000): Promise<string> {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = this.received.slice(from).find(match);
      if (found !== undefined) return found;
      if (Date.now() > deadline) throw new Error(`no matching chat message within ${ms} ms; received: ${JSON.stringify(this.received.slice(from))}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 50);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  close(): void {
    this.socket.close();
  }
}
