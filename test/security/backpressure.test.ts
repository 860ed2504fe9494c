import { readFile } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION } from '../../src/protocol/messages.js';
import { DEMO_RELEASES } from '../helpers/repo-paths.js';
import { startNodeProcess } from '../helpers/node-process.js';
import { testdir } from '../helpers/testdir.js';

/**
 * Issue 9 item 7: a client that pipelines 200,000 `status` requests and never
 * reads an answer must not grow the node without bound: the node stops
 * reading from a connection whose answers are not being taken. Measured on a
 * real node process (its RSS from /proc), over a real Unix socket.
 */
const REQUESTS = 200_000;
/** Generous: before the fix the node grew by about 550 MiB, linearly in the requests. */
const MAX_GROWTH_MIB = 150;

async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

/** user + system CPU ticks of a process. */
async function cpuTicks(pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

function frame(message: unknown): Buffer {
  const body = Buffer.from(JSON.stringify(message));
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length);
  return Buffer.concat([head, body]);
}

describe('backpressure on the control socket (issue 9 item 7)', { timeout: 180_000 }, () => {
  it(`bounds the node's memory when a client pipelines ${REQUESTS} status requests and never reads`, async () => {
    const dir = await testdir();
    const node = await startNodeProcess(dir, { release: join(DEMO_RELEASES, '1.2.2') });
    const pid = node.child.pid!;
    try {
      const sock = createConnection({ path: node.socket });
      await new Promise((r) => sock.once('connect', r));
      sock.on('error', () => undefined);
      let received = Buffer.alloc(0);
      const onData = (c: Buffer) => (received = Buffer.concat([received, c]));
      sock.on('data', onData);
      sock.write(frame({ type: 'hello', protocol: PROTOCOL_VERSION, client: 'never-reads' }));
      while (received.length === 0) await new Promise((r) => setTimeout(r, 10));
      // From here on this client reads nothing.
      sock.off('data', onData);
      sock.pause();
      received = Buffer.alloc(0);

      const before = await rssMiB(pid);
      const requests = Buffer.concat(Array.from({ length: REQUESTS }, (_, i) => frame({ type: 'request', id: i + 1, op: 'status', params: {} })));
      sock.write(requests);

      // Wait until the node stops working on them: CPU flat for a second (or 90 s at most).
      let last = await cpuTicks(pid);
      let flat = 0;
      let peak = before;
      for (let waited = 0; flat < 4 && waited < 360; waited++) {
        await new Promise((r) => setTimeout(r, 250));
        const now = await cpuTicks(pid);
        flat = now - last <= 2 ? flat + 1 : 0;
        last = now;
        peak = Math.max(peak, await rssMiB(pid));
      }
      const after = await rssMiB(pid);
      peak = Math.max(peak, after);
      console.log(`[backpressure] ${REQUESTS} pipelined status requests, never read: node RSS ${before.toFixed(1)} MiB before, ${after.toFixed(1)} MiB after, peak ${peak.toFixed(1)} MiB (+${(peak - before).toFixed(1)} MiB)`);
      expect(peak - before).toBeLessThan(MAX_GROWTH_MIB);

      // The node still serves everyone else.
      const other = await node.connect();
      expect(await other.request('status', {})).toMatchObject({ version: '1.2.2' });
      other.close();

      // Nothing was dropped: once the client reads, the answers come, in order.
      const ids: number[] = [];
      let buf = Buffer.alloc(0);
      sock.on('data', (c: Buffer) => {
        buf = Buffer.concat([buf, c]);
        while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
          const n = buf.readUInt32BE(0);
          ids.push((JSON.parse(buf.subarray(4, 4 + n).toString()) as { id: number }).id);
          buf = buf.subarray(4 + n);
        }
      });
      sock.resume();
      for (let i = 0; i < 3000 && ids.length < 3000; i++) await new Promise((r) => setTimeout(r, 10));
      expect(ids.slice(0, 3000)).toEqual(Array.from({ length: 3000 }, (_, i) => i + 1));
      sock.destroy();
      const again = await node.connect();
      expect(await again.request('status', {})).toMatchObject({ version: '1.2.2' });
      again.close();
    } finally {
      await node.stop();
    }
  });
});
