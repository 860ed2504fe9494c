import { Agent, request } from 'node:http';

export interface DemoReply {
  status: number;
  body: string;
  /** The client-side port of the TCP connection that carried it: the same number means the same open connection. */
  connection: number;
}

/** An HTTP client holding one keep-alive connection to the demo service. */
export class DemoHttp {
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 1 });
  constructor(private readonly port: number) {}

  send(method: string, path: string, body?: unknown): Promise<DemoReply> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: this.port, method, path, agent: this.agent, headers: payload === undefined ? {} : { 'content-type': 'application/json' } }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, connection: req.socket?.localPort ?? 0 }));
      });
      req.on('error', reject);
      req.end(payload);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

/** Steady background traffic on its own connection; counts answers and failures. */
export class Traffic {
  sent = 0;
  failed = 0;
  private running = true;
  private readonly done: Promise<void>;
  private readonly http: DemoHttp;

  constructor(port: number, intervalMs: number) {
    this.http = new DemoHttp(port);
    this.done = this.loop(intervalMs);
  }

  private async loop(intervalMs: number): Promise<void> {
    while (this.running) {
      this.sent += 1;
      try {
        const r = await this.http.send('GET', '/hello?name=traffic');
        if (r.status !== 200) this.failed += 1;
      } catch {
        this.failed += 1;
      }
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
    this.http.close();
  }
}
