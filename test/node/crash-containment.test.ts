import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNodeProcess, type NodeProcess } from '../helpers/node-process.js';
import { testdir } from '../helpers/testdir.js';

/**
 * Issue 12 item 1, on a real `relup node start` process: errors module code
 * lets escape are logged with their module and release and the node keeps
 * serving; a process whose handler crashes is restarted per its declared
 * policy (permanent / transient / temporary, with an intensity limit), and the
 * calls waiting in its mailbox fail at once instead of hanging.
 */
const RELEASE = `name: crashy
version: 1.0.0
runtime: node
start:
  main: web
modules:
  web:
    file: web.js
    exports: [initialState, start, handle]
  worker:
    file: worker.js
    exports: [init, handleCall, handleCast]
processes:
  perm:
    module: worker
    restart: permanent
    intensity: { maxRestarts: 2, periodMs: 600000 }
  trans:
    module: worker
    restart: transient
  temp:
    module: worker
    restart: temporary
  plain:
    module: worker
`;

const WEB = `
exports.initialState = () => ({ hits: 0 });
exports.start = () => { relup.listen({ port: relup.config.port ?? 0, handler: 'handle' }); };
const outcome = (p) => p.then((reply) => ({ reply }), (e) => ({ error: e.code ?? e.message }));
exports.handle = async (req) => {
  const url = new URL(req.url, 'http://x');
  const p = url.searchParams.get('p');
  switch (url.pathname) {
    case '/hit': relup.state.hits += 1; return { status: 200, json: { hits: relup.state.hits } };
    case '/reject': Promise.reject(new Error('boom-reject')); return { status: 200, body: 'ok' };
    case '/reject-string': Promise.reject('just a string'); return { status: 200, body: 'ok' };
    case '/throw-later': setTimeout(() => { throw new Error('boom-timer'); }, 1); return { status: 200, body: 'ok' };
    case '/call': return { status: 200, json: await outcome(relup.call(p, { op: url.searchParams.get('op') })) };
    case '/crash-with-queue': {
      // Both calls are in the mailbox before the first is handled: the second must fail, not hang.
      const first = outcome(relup.call(p, { op: 'crash' }));
      const queued = outcome(relup.call(p, { op: 'get' }));
      return { status: 200, json: { first: await first, queued: await queued } };
    }
  }
  return { status: 404, body: 'no' };
};
`;

const WORKER = `
exports.init = () => ({ n: 0 });
exports.handleCall = (msg, state) => {
  if (msg.op === 'crash') throw new Error('crash on purpose');
  if (msg.op === 'exit') relup.exit('normal');
  if (msg.op === 'incr') state.n += 1;
  return { reply: state.n, state };
};
exports.handleCast = (msg, state) => state;
`;

describe('crash containment on a real node', { timeout: 60_000 }, () => {
  let node: NodeProcess;
  let base: string;
  const get = async (path: string): Promise<unknown> => {
    const res = await fetch(`${base}${path}`);
    expect(res.status).toBe(200);
    return res.headers.get('content-type')?.includes('json') === true ? res.json() : res.text();
  };
  const call = (p: string, op: string) => get(`/call?p=${p}&op=${op}`);

  beforeAll(async () => {
    const dir = await testdir({ 'rel/release.yaml': RELEASE, 'rel/web.js': WEB, 'rel/worker.js': WORKER });
    node = await startNodeProcess(dir, { release: 'rel' });
    base = `http://127.0.0.1:${node.port}`;
  });
  afterAll(async () => {
    await node?.stop();
  });

  it('logs unhandled rejections and uncaught exceptions with module and release, and keeps serving with its state', async () => {
    expect(await get('/hit')).toEqual({ hits: 1 });
    await get('/reject');
    await get('/throw-later');
    await get('/reject-string');
    // Module state survived: the process did not die and was not restarted.
    await new Promise((r) => setTimeout(r, 50));
    expect(await get('/hit')).toEqual({ hits: 2 });
    const out = node.output();
    expect(out).toMatch(/error module web@1\.0\.0: unhandled rejection in module web@1\.0\.0 \(relup:crashy@1\.0\.0\/web\.js:\d+:\d+\): boom-reject/);
    expect(out).toMatch(/error module web@1\.0\.0: uncaught exception in module web@1\.0\.0 \(relup:crashy@1\.0\.0\/web\.js:\d+:\d+\): boom-timer/);
    expect(out).toMatch(/unhandled rejection of unknown origin .*just a string/);
    expect(node.child.exitCode).toBeNull();
  });

  it('permanent: a crash fails the queued callers, restarts the process from init, and stops at the intensity limit', async () => {
    await call('perm', 'incr');
    expect(await call('perm', 'incr')).toEqual({ reply: 2 });
    expect(await get('/crash-with-queue?p=perm')).toEqual({ first: { error: 'crash on purpose' }, queued: { error: 'process-crashed' } });
    // Restarted: a fresh init(args), so the state starts again.
    expect(await call('perm', 'get')).toEqual({ reply: 0 });
    expect(await call('perm', 'crash')).toEqual({ error: 'crash on purpose' });
    expect(await call('perm', 'get')).toEqual({ reply: 0 });
    // Third crash within the period: past maxRestarts (2), the process stays down.
    expect(await call('perm', 'crash')).toEqual({ error: 'crash on purpose' });
    expect(await call('perm', 'get')).toEqual({ error: 'unknown-process' });
    expect(node.output()).toMatch(/process perm crashed in worker@1\.0\.0: crash on purpose .*intensity limit 2/);
  });

  it('transient: restarted after a crash, not after a normal exit', async () => {
    await call('trans', 'incr');
    expect(await call('trans', 'crash')).toEqual({ error: 'crash on purpose' });
    expect(await call('trans', 'get')).toEqual({ reply: 0 });
    expect(await call('trans', 'exit')).toEqual({ error: 'process exited: normal' });
    expect(await call('trans', 'get')).toEqual({ error: 'unknown-process' });
  });

  it('temporary: never restarted', async () => {
    expect(await call('temp', 'crash')).toEqual({ error: 'crash on purpose' });
    expect(await call('temp', 'get')).toEqual({ error: 'unknown-process' });
  });

  it("no policy: a handler error is only its caller's; the process keeps its state", async () => {
    await call('plain', 'incr');
    expect(await call('plain', 'crash')).toEqual({ error: 'crash on purpose' });
    expect(await call('plain', 'get')).toEqual({ reply: 1 });
  });

  it('stops cleanly afterwards', async () => {
    expect(await node.stop()).toBe(0);
  });
});
