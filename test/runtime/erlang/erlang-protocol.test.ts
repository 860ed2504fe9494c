/**
 * The Erlang agent against hostile or broken clients on its control socket:
 * every bad frame or message gets its protocol error code and never takes
 * the agent down (status still answers afterwards).
 */
import { createConnection, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Connection } from '../../../src/client/connection.js';
import { FrameDecoder, encodeFrame, frameOf } from '../../../src/protocol/framing.js';
import { startErlangNode, type ErlangNode } from '../../../src/runtime/erlang/erlang-driver.js';
import { REPO } from '../../helpers/repo-paths.js';
import { erlangGate } from './erlang-gate.js';
import { testdir } from '../../helpers/testdir.js';

const ok = await erlangGate('Erlang agent protocol tests (test/runtime/erlang)');

const nodes: ErlangNode[] = [];
afterEach(async () => {
  for (const n of nodes.splice(0)) {
    n.child.kill('SIGKILL');
    await n.child;
  }
});

/** A raw client: write bytes, collect decoded frames until the node closes or `ms` pass. */
async function raw(path: string, bytes: Buffer[], ms = 1500): Promise<{ frames: Record<string, unknown>[]; closed: boolean }> {
  const socket: Socket = createConnection({ path });
  const decoder = new FrameDecoder();
  const frames: Record<string, unknown>[] = [];
  let closed = false;
  socket.on('data', (d) => frames.push(...(decoder.push(d) as Record<string, unknown>[])));
  socket.on('close', () => (closed = true));
  socket.on('error', () => (closed = true));
  await new Promise((r) => socket.once('connect', r));
  for (const b of bytes) socket.write(b);
  const end = Date.now() + ms;
  while (!closed && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  socket.destroy();
  return { frames, closed };
}

const hello = encodeFrame({ type: 'hello', protocol: 2, client: 'test' });

describe.runIf(ok)('Erlang agent: protocol errors', { timeout: 60_000 }, () => {
  it('answers each broken input with its error code and keeps serving', async () => {
    const dir = await testdir();
    const socket = join(dir, 'node.sock');
    nodes.push(await startErlangNode({ release: join(REPO, 'test', 'conformance', 'app', 'erlang', '1.0.0'), socket, stateDir: join(dir, 'state') }));

    const notJson = await raw(socket, [frameOf(Buffer.from('{not json'))]);
    expect(notJson.frames[0]).toMatchObject({ type: 'error', code: 'bad_frame' });
    expect(notJson.closed).toBe(true);

    const noHello = await raw(socket, [encodeFrame({ type: 'request', id: 1, op: 'status', params: {} })]);
    expect(noHello.frames[0]).toMatchObject({ type: 'error', code: 'bad_message' });

    const oldProtocol = await raw(socket, [encodeFrame({ type: 'hello', protocol: 99, client: 'test' })]);
    expect(oldProtocol.frames[0]).toMatchObject({ type: 'error', code: 'protocol_mismatch' });
    expect(oldProtocol.closed).toBe(true);

    const unknownOp = await raw(socket, [hello, encodeFrame({ type: 'request', id: 3, op: 'format_disk', params: {} })], 500);
    expect(unknownOp.frames[1]).toMatchObject({ type: 'error', id: 3, code: 'unknown_op' });

    const badParams = await raw(socket, [hello, encodeFrame({ type: 'request', id: 4, op: 'apply', params: { script: 'x' } })], 500);
    expect(badParams.frames[1]).toMatchObject({ type: 'error', id: 4, code: 'bad_request' });

    const unknownProcess = await raw(socket, [hello, encodeFrame({ type: 'request', id: 5, op: 'call', params: { process: 'no_such_process_anywhere', message: {} } })], 500);
    expect(unknownProcess.frames[1]).toMatchObject({ type: 'error', id: 5, code: 'bad_request' });

    // A length header past the node's limit is refused as soon as it arrives.
    const header = Buffer.alloc(4);
    header.writeUInt32BE(0x7fffffff);
    const oversized = await raw(socket, [hello, header]);
    expect(oversized.closed).toBe(true);
    expect(oversized.frames.at(-1)).toMatchObject({ type: 'error', code: 'bad_frame' });

    const c = await Connection.open({ kind: 'unix', path: socket });
    expect(await c.request('status', {})).toMatchObject({ name: 'conf', version: '1.0.0' });
    c.close();
  });
});
