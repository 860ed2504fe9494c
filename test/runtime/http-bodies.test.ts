import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNode, type NodeLogEntry, type RelupNode } from '../../src/runtime/node/relup-node.js';
import { imageFromFiles } from './helpers/release-image.js';

/**
 * Issue 12 item 4, over real loopback sockets: streamed request and response
 * bodies, binary bodies byte for byte, 413 over the limit, several values of
 * one header, and an unsupported body type refused with a logged reason.
 */
const WEB = `
exports.start = () => { relup.listen({ port: 0, handler: 'handle', maxBodyBytes: 1000 }); };
exports.handle = async (req) => {
  switch (new URL(req.url, 'http://x').pathname) {
    case '/echo-bytes': return { status: 200, body: await req.bytes() };
    case '/count-stream': {
      let n = 0;
      for await (const chunk of req.body) n += chunk.length;
      return { status: 200, json: { n } };
    }
    case '/text': return { status: 200, body: await req.text() };
    case '/stream': {
      async function* parts() { for (let i = 0; i < 3; i++) { await new Promise((r) => setTimeout(r, 5)); yield 'part' + i + ';'; } yield new Uint8Array([0, 255]); }
      return { status: 200, body: parts() };
    }
    case '/readable': return { status: 200, body: new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode('from a ReadableStream')); c.close(); } }) };
    case '/cookies': return { status: 204, headers: { 'set-cookie': ['a=1; Path=/', 'b=2; HttpOnly'] } };
    case '/bad-body': return { status: 200, body: { not: 'a body' } };
    case '/bad-stream': { async function* g() { yield 'ok;'; yield 42; } return { status: 200, body: g() }; }
  }
  return { status: 404, body: 'no' };
};
`;

let node: RelupNode;
let port: number;
const logs: NodeLogEntry[] = [];

beforeAll(async () => {
  node = await startNode({ image: imageFromFiles({ 'release.yaml': 'name: h\nversion: 1.0.0\nruntime: node\nstart:\n  main: web\nmodules:\n  web:\n    file: web.js\n', 'web.js': WEB }), log: (e) => logs.push(e) });
  port = node.status().servers[0]!.port;
});
afterAll(() => node.stop());

/** A raw request: the body sent in the given chunks, the answer read whole with its raw header lines. */
function send(path: string, chunks: Uint8Array[] = [], method = 'POST'): Promise<{ status: number; raw: string[]; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, raw: res.rawHeaders, body: Buffer.concat(parts) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    for (const c of chunks) req.write(c);
    req.end();
  });
}

describe('HTTP as people use it', () => {
  it('echoes a binary body byte for byte (every byte value, invalid UTF-8 included)', async () => {
    const all = new Uint8Array(256).map((_, i) => i);
    const res = await send('/echo-bytes', [all.subarray(0, 100), all.subarray(100)]);
    expect(res.status).toBe(200);
    expect([...res.body]).toEqual([...all]);
  });

  it('streams a request body to the handler (past the buffered limit) and a response body to the client', async () => {
    const big = Array.from({ length: 5 }, () => new Uint8Array(700).fill(7));
    expect(JSON.parse((await send('/count-stream', big)).body.toString())).toEqual({ n: 3500 });
    const streamed = await send('/stream', [], 'GET');
    expect(streamed.status).toBe(200);
    expect([...streamed.body]).toEqual([...Buffer.from('part0;part1;part2;'), 0, 255]);
    expect((await send('/readable', [], 'GET')).body.toString()).toBe('from a ReadableStream');
  });

  it('answers 413 for a buffered body over the limit, declared or not', async () => {
    expect((await send('/text', [new Uint8Array(1001)])).status).toBe(413);
    expect((await send('/text', [new Uint8Array(600), new Uint8Array(600)])).status).toBe(413);
    expect((await send('/text', [Buffer.from('small')])).body.toString()).toBe('small');
  });

  it('sends each value of a multi-valued header on its own line', async () => {
    const res = await send('/cookies', [], 'GET');
    expect(res.status).toBe(204);
    const cookies = res.raw.filter((_, i) => i % 2 === 1 && res.raw[i - 1]!.toLowerCase() === 'set-cookie');
    expect(cookies).toEqual(['a=1; Path=/', 'b=2; HttpOnly']);
  });

  it('refuses a body of an unsupported type with 500 and a logged reason; a stream that goes wrong is cut and logged', async () => {
    const bad = await send('/bad-body', [], 'GET');
    expect(bad.status).toBe(500);
    expect(bad.body.toString()).not.toContain('[object Object]');
    expect(logs.some((e) => e.level === 'error' && e.source === 'http' && e.module === 'web' && e.message.includes('body of type Object'))).toBe(true);
    await expect(send('/bad-stream', [], 'GET')).rejects.toThrow();
    expect(logs.some((e) => e.source === 'http' && e.message.includes('streamed a number'))).toBe(true);
  });
});
